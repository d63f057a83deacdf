//! CQL (ScyllaDB's protocol) through the `scylla` driver, against the live server in
//! `CREDENCE_TEST_CQL` (host:port; Cassandra 5.0 on the local stack). See docs/STACK.md.
#![cfg(feature = "cql")]

#[path = "common/stack.rs"]
mod common;

use common::{TestResult, endpoint, unique};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::value::CqlDate;

const TTL_SECONDS: i32 = 86_400 * 30;
/// 2026-11-21 as days since 1970-01-01; CqlDate counts from 2^31 = the epoch.
const DAY: u32 = (1 << 31) + 20_413;

async fn count_partition(
    s: &Session,
    ks: &str,
    subject: &str,
) -> Result<i64, Box<dyn std::error::Error + Send + Sync>> {
    let rows = s
        .query_unpaged(
            format!("SELECT COUNT(*) FROM {ks}.events WHERE subject = ? AND day = ?"),
            (subject, CqlDate(DAY)),
        )
        .await?
        .into_rows_result()?;
    let (n,): (i64,) = rows.single_row()?;
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cql_keyspace_ttl_table_prepared_inserts_partition_read_idempotent() -> TestResult {
    let Some(node) = endpoint("CREDENCE_TEST_CQL", "cql round trip") else {
        return Ok(());
    };
    let session: Session = SessionBuilder::new().known_node(&node).build().await?;
    let ks = format!("credence_test_{}", unique());

    session
        .query_unpaged(
            format!(
                "CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
            ),
            &[],
        )
        .await?;
    // Partitioned by (subject, day), clustered by event time; rows expire after 30 days.
    session
        .query_unpaged(
            format!(
                "CREATE TABLE {ks}.events (subject text, day date, at bigint, kind text, score int, \
                 PRIMARY KEY ((subject, day), at)) WITH CLUSTERING ORDER BY (at DESC) \
                 AND default_time_to_live = {TTL_SECONDS}"
            ),
            &[],
        )
        .await?;

    let mut insert = session
        .prepare(format!(
            "INSERT INTO {ks}.events (subject, day, at, kind, score) VALUES (?, ?, ?, ?, ?)"
        ))
        .await?;
    // Writes are by key, so a retry cannot double-count: say so to the driver.
    insert.set_is_idempotent(true);
    for i in 0..20_i64 {
        let subject = if i % 2 == 0 { "alice" } else { "bob" };
        session
            .execute_unpaged(
                &insert,
                (subject, CqlDate(DAY), 1_000 + i, "login", i as i32),
            )
            .await?;
    }

    // A partition read, newest first.
    let select = session
        .prepare(format!(
            "SELECT at, kind, score, TTL(score) FROM {ks}.events WHERE subject = ? AND day = ?"
        ))
        .await?;
    let rows = session
        .execute_unpaged(&select, ("alice", CqlDate(DAY)))
        .await?
        .into_rows_result()?;
    let alice: Vec<(i64, String, i32, Option<i32>)> = rows
        .rows::<(i64, String, i32, Option<i32>)>()?
        .collect::<Result<_, _>>()?;
    assert_eq!(alice.len(), 10);
    assert!(
        alice.windows(2).all(|w| w[0].0 > w[1].0),
        "clustering order is at DESC"
    );
    assert_eq!(alice[0], (1_018, "login".to_owned(), 18, alice[0].3));
    for (_, _, _, ttl) in &alice {
        let ttl = ttl.expect("default_time_to_live gives every cell a TTL");
        assert!(ttl > 0 && ttl <= TTL_SECONDS, "ttl {ttl}");
    }

    // Idempotent re-insert of the same key: still one row, with the new values.
    session
        .execute_unpaged(&insert, ("alice", CqlDate(DAY), 1_018_i64, "login", 18))
        .await?;
    session
        .execute_unpaged(&insert, ("alice", CqlDate(DAY), 1_018_i64, "payment", 99))
        .await?;
    assert_eq!(count_partition(&session, &ks, "alice").await?, 10);
    let (kind, score): (String, i32) = session
        .query_unpaged(
            format!("SELECT kind, score FROM {ks}.events WHERE subject = ? AND day = ? AND at = ?"),
            ("alice", CqlDate(DAY), 1_018_i64),
        )
        .await?
        .into_rows_result()?
        .single_row()?;
    assert_eq!((kind.as_str(), score), ("payment", 99));
    assert_eq!(count_partition(&session, &ks, "bob").await?, 10);

    session
        .query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
        .await?;
    Ok(())
}
