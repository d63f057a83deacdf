//! Nodes on the cluster backends of the local stack (`deploy/local/stack.sh`), for the
//! end-to-end tests that run once embedded and once on the cluster config: the same test
//! with other `CREDENCE__*` variables, never a copy of it.
//!
//! The endpoints come from the `CREDENCE_TEST_*` variables that `deploy/local/stack.sh env`
//! prints. Unset, the test is skipped with a loud line on stderr, unless
//! `CREDENCE_TEST_REQUIRE_STACK=1` (as `make test-stack` sets it): then it fails.

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// The `CREDENCE__*` variables that put a node's bus on the Kafka broker of
/// `CREDENCE_TEST_KAFKA`, on a topic and consumer group of its own (so runs never share
/// one), with static membership (a restarted node takes its partitions back at once, as
/// `deploy/local/cluster.toml` does). `None`, after saying so loudly, when there is no broker.
pub fn kafka_bus_env(test: &str) -> Option<Vec<(String, String)>> {
    let brokers = endpoint("CREDENCE_TEST_KAFKA", "kafka", test)?;
    let name = format!("credence-e2e-{}", unique());
    Some(
        [
            ("CREDENCE__STORAGE__BUS", "kafka".to_owned()),
            ("CREDENCE__STORAGE__KAFKA__BROKERS", brokers),
            ("CREDENCE__STORAGE__KAFKA__TOPIC", name.clone()),
            (
                "CREDENCE__STORAGE__KAFKA__GROUP_ID",
                format!("{name}-group"),
            ),
            (
                "CREDENCE__STORAGE__KAFKA__INSTANCE_ID",
                format!("{name}-node"),
            ),
            // The broker's smallest: a member that went away for good frees its partitions soon.
            ("CREDENCE__STORAGE__KAFKA__SESSION_TIMEOUT", "6s".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
    )
}

/// The `CREDENCE__*` variables that put a node's graph on the Dgraph alpha of
/// `CREDENCE_TEST_DGRAPH`, under a predicate prefix of its own (so runs never see each
/// other's subjects). `None`, after saying so loudly, when there is no alpha.
pub fn dgraph_graph_env(test: &str) -> Option<Vec<(String, String)>> {
    let url = endpoint("CREDENCE_TEST_DGRAPH", "dgraph", test)?;
    Some(vec![
        ("CREDENCE__STORAGE__GRAPH".into(), "dgraph".into()),
        ("CREDENCE__STORAGE__DGRAPH__URL".into(), url),
        (
            "CREDENCE__STORAGE__DGRAPH__PREFIX".into(),
            format!("e2e_{}", unique()),
        ),
    ])
}

/// The `CREDENCE__*` variables that put a node's document roles (profiles, rules and
/// configs, lists, audit) on the MongoDB server of `CREDENCE_TEST_MONGO`, in a database of
/// its own. `None`, after saying so loudly, when there is no server.
pub fn mongo_documents_env(test: &str) -> Option<Vec<(String, String)>> {
    let uri = endpoint("CREDENCE_TEST_MONGO", "ferretdb", test)?;
    Some(vec![
        ("CREDENCE__STORAGE__DOCUMENTS".into(), "mongodb".into()),
        ("CREDENCE__STORAGE__MONGODB__URI".into(), uri),
        (
            "CREDENCE__STORAGE__MONGODB__DATABASE".into(),
            format!("e2e_{}", unique()),
        ),
    ])
}

/// The endpoint in `var`, or `None` after saying loudly that `test` is skipped (a failure
/// when `CREDENCE_TEST_REQUIRE_STACK=1`); `service` is the stack's name for its server.
fn endpoint(var: &str, service: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
        _ => {
            let required = std::env::var("CREDENCE_TEST_REQUIRE_STACK").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{test}: {var} is unset but CREDENCE_TEST_REQUIRE_STACK=1"
            );
            // Straight to stderr: the harness swallows eprintln! of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! SKIPPED {test}: {var} is unset. Start it with \
                 `deploy/local/stack.sh up {service}` and \
                 `eval \"$(deploy/local/stack.sh env)\"`, or run `make test-stack`.\n"
            );
            None
        }
    }
}

/// A suffix that makes names unique per run: the process id and the clock.
fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}_{}", std::process::id(), nanos % 1_000_000_000_000)
}
