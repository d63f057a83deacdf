//! Analytics: read-only SQL answered as Arrow IPC, limits, classified errors.

#![allow(clippy::wildcard_imports, reason = "the suite's shared helpers")]

use super::*;

/// Decodes an analytics result: (column names, rows as text).
pub(super) fn decode(ipc: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    use arrow::util::display::array_value_to_string;
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None)
        .expect("an Arrow IPC stream");
    let names = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.expect("a record batch");
        for r in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|c| array_value_to_string(c, r).expect("displayable"))
                    .collect(),
            );
        }
    }
    (names, rows)
}

pub(super) fn limits(max_rows: u64, timeout: Duration) -> QueryLimits {
    QueryLimits { max_rows, timeout }
}

/// Queries over the views answer Arrow IPC that decodes, with the schema even for no rows,
/// cut at `max_rows`.
pub async fn analytics_answers_arrow_ipc(stores: Stores) {
    stores
        .profiles
        .upsert_profiles(vec![profile("s2", "south"), profile("s1", "north")])
        .await
        .expect("profiles");
    stores
        .archive
        .append_events(vec![archived(
            event("e1", "s1", "financial", T0 + 1),
            0,
            0,
            true,
        )])
        .await
        .expect("archive");
    let a = &stores.analytics;
    let long = Duration::from_secs(30);
    let result = a
        .run_sql(
            "SELECT subject_id, region FROM profiles ORDER BY subject_id",
            limits(100, long),
        )
        .await
        .expect("select");
    assert_eq!((result.rows, result.truncated), (2, false));
    assert_eq!(
        decode(&result.ipc),
        (
            vec!["subject_id".to_owned(), "region".to_owned()],
            vec![
                vec!["s1".to_owned(), "north".to_owned()],
                vec!["s2".to_owned(), "south".to_owned()]
            ]
        )
    );
    let result = a
        .run_sql(
            "SELECT event_id, occurred_at FROM events",
            limits(100, long),
        )
        .await
        .expect("events view");
    let (_, rows) = decode(&result.ipc);
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0][1].starts_with("2026-01-01T00:00:00.000000001"),
        "a timestamp: {}",
        rows[0][1]
    );

    let empty = a
        .run_sql(
            "SELECT subject_id FROM profiles WHERE false",
            limits(100, long),
        )
        .await
        .expect("no rows");
    assert_eq!((empty.rows, empty.truncated), (0, false));
    assert_eq!(decode(&empty.ipc), (vec!["subject_id".to_owned()], vec![]));

    let cut = a
        .run_sql("SELECT range AS n FROM range(100000)", limits(5, long))
        .await
        .expect("cut");
    assert_eq!((cut.rows, cut.truncated), (5, true));
    assert_eq!(decode(&cut.ipc).1.len(), 5);
    let exact = a
        .run_sql("SELECT * FROM range(5)", limits(5, long))
        .await
        .expect("exact");
    assert_eq!((exact.rows, exact.truncated), (5, false));

    for view in [
        "events",
        "score_changes",
        "score_points",
        "snapshots",
        "profiles",
        "relations",
        "list_entries",
        "rules",
    ] {
        let r = a
            .run_sql(
                &format!("SELECT count(*) AS n FROM {view}"),
                limits(10, long),
            )
            .await
            .unwrap_or_else(|e| panic!("view {view}: {e}"));
        assert_eq!(r.rows, 1, "view {view}");
    }
}

/// Only one read-only statement runs, files are out of reach, and slow queries are cancelled.
pub async fn analytics_refuses_writes_files_and_slow_queries(stores: Stores) {
    stores
        .profiles
        .upsert_profiles(vec![profile("s1", "north")])
        .await
        .expect("profiles");
    let a = &stores.analytics;
    let long = Duration::from_secs(30);
    for sql in [
        "DELETE FROM profiles",
        "SELECT 1; DELETE FROM profiles",
        "DROP VIEW profiles",
        "COPY profiles TO '/tmp/credence-conformance.csv'",
        "SET memory_limit = '100GB'",
        "",
    ] {
        match a.run_sql(sql, limits(10, long)).await {
            Err(StorageError::Invalid(msg)) => assert!(msg.contains("read-only"), "{sql}: {msg}"),
            other => panic!("{sql:?} should be refused, got {other:?}"),
        }
    }
    let files = a
        .run_sql("SELECT * FROM read_csv('/etc/passwd')", limits(10, long))
        .await;
    match files {
        Err(StorageError::Invalid(msg)) => assert!(msg.contains("/etc/passwd"), "{msg}"),
        other => panic!("reading a file must fail, got {other:?}"),
    }
    let still = a
        .run_sql("SELECT count(*) FROM profiles", limits(10, long))
        .await
        .expect("count");
    assert_eq!(
        decode(&still.ipc).1,
        vec![vec!["1".to_owned()]],
        "nothing was deleted"
    );

    let started = Instant::now();
    let slow = a
        .run_sql(
            "SELECT count(*) FROM range(1000000000) a, range(1000000000) b WHERE a.range + b.range = 7",
            limits(10, Duration::from_millis(200)),
        )
        .await;
    match slow {
        Err(StorageError::LimitExceeded(msg)) => assert!(msg.contains("cancelled"), "{msg}"),
        other => panic!("expected a cancelled query, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cancelled promptly: {:?}",
        started.elapsed()
    );
    // The store still answers after a cancelled query.
    a.run_sql("SELECT 1", limits(10, long))
        .await
        .expect("after cancel");
}
