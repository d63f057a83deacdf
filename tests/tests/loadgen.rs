//! The load generator (`credence-loadgen`) against a real node: its rate controller sends
//! the rate asked for, its report's figures are those the node counted, and its end-to-end
//! probes time real events.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use credence_tests::{Node, loadgen_binary};

const RATE: u64 = 2_000;
const SECONDS: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_run_sends_the_rate_asked_and_reports_what_the_node_counted() {
    let node = Node::start().await.unwrap();
    let metrics_url = node
        .metrics_url()
        .expect("the node serves metrics")
        .to_owned();
    let before = node.metrics().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let output = tokio::process::Command::new(loadgen_binary().unwrap())
        .args(["--target", &node.endpoint(), "--metrics-url", &metrics_url])
        .args(["--subjects", "500", "--batch", "50", "--connections", "1"])
        .args([
            "--inflight",
            "4",
            "--warmup",
            "0s",
            "--probe-every",
            "200ms",
        ])
        .args([
            "--rate",
            &RATE.to_string(),
            "--duration",
            &format!("{SECONDS}s"),
        ])
        .args(["--run-id", "0badcafe", "--quiet", "--report"])
        .arg(&report_path)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "credence-loadgen failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let int = |key: &str| {
        report[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} in {report}"))
    };

    // The rate controller: a batch due every batch/rate seconds, so RATE x SECONDS events
    // within a few percent (the schedule is exact; the edges cost at most a batch or two).
    let planned = RATE * SECONDS;
    let sent = int("sent");
    assert!(
        sent.abs_diff(planned) <= planned / 20,
        "sent {sent} events, planned {planned}: {stdout}"
    );
    assert_eq!(int("accepted"), sent, "a healthy node accepts every event");

    // The report's figures are the node's: every event it counted as accepted is one the
    // report counts (the load's, and the probes').
    let probes = int("probes");
    assert!(
        probes >= 5,
        "a probe every 200 ms over {SECONDS} s: {report}"
    );
    assert_eq!(int("probes_lost"), 0, "{report}");
    let after = node.metrics().await.unwrap();
    let accepted = |m: &credence_loadgen::metrics::Metrics| {
        m.sum("credence_events_received_total", &[("outcome", "accepted")])
    };
    assert_eq!(
        accepted(&after) - accepted(&before),
        (int("accepted") + probes) as f64,
        "the node's accepted events against the report's: {report}"
    );
    // Latencies come from measured histograms: ordered quantiles, an exact maximum.
    for key in ["publish_latency", "end_to_end"] {
        let l = &report[key];
        let q = |k: &str| {
            l[k].as_f64()
                .unwrap_or_else(|| panic!("{key}.{k} in {report}"))
        };
        assert!(
            0.0 < q("p50_ms") && q("p50_ms") <= q("p99_ms") && q("p99_ms") <= q("max_ms"),
            "{key}: {l}"
        );
    }
    assert!(stdout.contains("publish-to-visible (probes)"), "{stdout}");
}

/// `--kafka` (`make test-stack`): the events go straight to the node's Kafka topic through
/// the SDK's `KafkaProducer`, and the node scores every one the report counts as
/// acknowledged (the load's and the probes', which still go over gRPC).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_through_kafka_is_scored_whole_on_kafka_bus() {
    let Some(env) = credence_tests::cluster::kafka_bus_env("the load generator through Kafka")
    else {
        return;
    };
    let value = |key: &str| env.iter().find(|(k, _)| k == key).unwrap().1.clone();
    let kafka = format!(
        "{}/{}",
        value("CREDENCE__STORAGE__KAFKA__BROKERS"),
        value("CREDENCE__STORAGE__KAFKA__TOPIC")
    );
    let node = Node::start_with(credence_tests::NodeOptions {
        env,
        ..Default::default()
    })
    .await
    .unwrap();
    let metrics_url = node.metrics_url().expect("metrics").to_owned();
    let before = node.metrics().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let output = tokio::process::Command::new(loadgen_binary().unwrap())
        .args(["--target", &node.endpoint(), "--kafka", &kafka])
        .args(["--metrics-url", &metrics_url, "--subjects", "300"])
        .args(["--batch", "100", "--rate", "1000", "--duration", "3s"])
        .args([
            "--warmup",
            "0s",
            "--probe-every",
            "300ms",
            "--quiet",
            "--report",
        ])
        .arg(&report_path)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "credence-loadgen failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Kafka produce latency"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let int = |key: &str| {
        report[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key}: {report}"))
    };
    assert!(int("sent") >= 2_000, "{report}");
    assert_eq!(
        int("accepted"),
        int("sent"),
        "Kafka acknowledged every event: {report}"
    );
    assert!(
        report["target"].as_str().unwrap().starts_with("kafka://"),
        "{report}"
    );

    // The node scores all of them (it drains what the topic holds).
    let scored =
        |m: &credence_loadgen::metrics::Metrics| m.sum("credence_events_scored_total", &[]);
    let expected = (int("accepted") + int("probes")) as f64;
    credence_tests::wait::until(
        "the node to score every event of the run",
        credence_tests::wait::SCORING_TIMEOUT,
        || async {
            let now = node.metrics().await?;
            Ok((scored(&now) - scored(&before) >= expected).then_some(()))
        },
    )
    .await
    .unwrap();
    let after = node.metrics().await.unwrap();
    assert_eq!(
        scored(&after) - scored(&before),
        expected,
        "scored once each"
    );
}
