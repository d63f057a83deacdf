//! RunAnalytics: Arrow IPC answers with the right content; writes, DDL and file access refused;
//! row limits; a slow query cancelled at its time limit with a clear error.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::{Duration, Instant};

use credence_proto::v1 as pb;
use credence_tests::analytics::{run_sql, single_int, str_at};
use credence_tests::events::event;
use credence_tests::{Node, wait};
use serde_json::json;
use tonic::Code;

const EVENTS: usize = 25;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_answers_in_arrow_and_refuses_what_is_not_a_read() {
    let node = Node::start().await.unwrap();
    let events: Vec<_> = (0..EVENTS)
        .map(|i| {
            let subject = format!("SUBJ-SQL-{}", i % 5);
            let at = format!("2026-07-01T{:02}:00:00Z", i % 24);
            event(
                &format!("sql-{i:03}"),
                &subject,
                "social",
                "volunteer_work",
                &at,
                &json!({"hours": 2}),
            )
        })
        .collect();
    let r = node
        .ingestion()
        .publish_events(pb::PublishEventsRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted as usize, EVENTS);
    for i in 0..5 {
        wait::scored(&node, &format!("SUBJ-SQL-{i}"), 5)
            .await
            .unwrap();
    }

    // the count, through Arrow IPC (the archive may trail the snapshot a little)
    let count = wait::until(
        "the events view to hold every event",
        wait::SCORING_TIMEOUT,
        || async {
            let batches = run_sql(&node, "select count(*) from events", 0, None).await?;
            Ok(single_int(&batches).filter(|n| *n == EVENTS as i64))
        },
    )
    .await
    .unwrap();
    assert_eq!(count, EVENTS as i64);
    let batches = run_sql(
        &node,
        "select subject_id, count(*) as n from events group by subject_id order by subject_id",
        0,
        None,
    )
    .await
    .unwrap();
    let rows: Vec<_> = batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(move |i| {
                (
                    str_at(b, 0, i).unwrap(),
                    credence_tests::analytics::int_at(b, 1, i).unwrap(),
                )
            })
        })
        .collect();
    assert_eq!(rows.len(), 5);
    assert!(
        rows.iter()
            .all(|(s, n)| s.starts_with("SUBJ-SQL-") && *n == 5),
        "{rows:?}"
    );
    let other_views = [
        "score_changes",
        "snapshots",
        "profiles",
        "relations",
        "list_entries",
    ];
    for view in other_views {
        let result = run_sql(&node, &format!("select count(*) from {view}"), 0, None).await;
        assert!(result.is_ok(), "view {view}: {result:?}");
    }
    let changes = single_int(
        &run_sql(&node, "select count(*) from score_changes", 0, None)
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        changes > 0 && changes <= EVENTS as i64,
        "volunteer_work is capped at 2 per 7 days per subject: {changes}"
    );

    // row limit
    let limited = run_sql(&node, "select * from range(1000)", 10, None)
        .await
        .unwrap();
    assert_eq!(
        limited
            .iter()
            .map(arrow::array::RecordBatch::num_rows)
            .sum::<usize>(),
        10
    );
    let empty = run_sql(&node, "select * from events where 1 = 0", 0, None)
        .await
        .unwrap();
    assert_eq!(
        empty
            .iter()
            .map(arrow::array::RecordBatch::num_rows)
            .sum::<usize>(),
        0,
        "schema only"
    );

    // writes and DDL: INVALID_ARGUMENT, naming the problem
    for sql in [
        "delete from events",
        "create table t (x integer)",
        "insert into events select * from events",
        "drop view events",
        "select 1; delete from events",
        "attach '/tmp/other.db' as other",
        // DuckDB ends a `--` comment at a carriage return; the old guard's own lexer did
        // not, and let a hidden COMMIT end the rolled-back transaction before a DELETE.
        "select 1 --\r; commit; delete from store.events; select 1",
        "select 1 --\r; commit; create table store.pwned as select 1; select 1",
        "select 1 --\rcommit\n; delete from store.events",
    ] {
        let err = run_sql(&node, sql, 0, None).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{sql}: {err:?}");
        assert!(!err.message().is_empty(), "{sql}: the error says why");
    }
    let still = single_int(
        &run_sql(&node, "select count(*) from events", 0, None)
            .await
            .unwrap(),
    );
    assert_eq!(still, Some(EVENTS as i64), "nothing was deleted");
    let created = single_int(
        &run_sql(
            &node,
            "select count(*) from duckdb_tables() where table_name = 'pwned'",
            0,
            None,
        )
        .await
        .unwrap(),
    );
    assert_eq!(created, Some(0), "nothing was created");

    // files and the network are out of reach
    for sql in [
        "select * from read_csv('/etc/passwd')",
        "select * from read_text('/etc/hostname')",
        "select * from '/etc/passwd'",
        "copy (select 1) to '/tmp/credence-e2e-out.csv'",
        "select * from read_parquet('http://127.0.0.1:9/x.parquet')",
    ] {
        let err = run_sql(&node, sql, 0, None).await.unwrap_err();
        assert_ne!(
            err.code(),
            Code::DataLoss,
            "{sql}: the server answered with something unreadable: {err:?}"
        );
        assert!(!err.message().is_empty(), "{sql}");
    }
    assert!(!std::path::Path::new("/tmp/credence-e2e-out.csv").exists());

    // a slow query, cancelled at its time limit
    let started = Instant::now();
    let err = run_sql(
        &node,
        "select sum(a.range * b.range) from range(200000) a, range(200000) b",
        0,
        Some(Duration::from_millis(300)),
    )
    .await
    .unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            err.code(),
            Code::DeadlineExceeded | Code::Cancelled | Code::ResourceExhausted
        ),
        "{err:?}"
    );
    let msg = err.message().to_lowercase();
    assert!(
        ["time", "cancel", "deadline"]
            .iter()
            .any(|w| msg.contains(w)),
        "the error says the time limit struck: {msg:?}"
    );
    assert!(
        took < Duration::from_secs(15),
        "the query was cancelled, not run to the end ({took:?})"
    );
    // and the server still answers
    let again = single_int(
        &run_sql(&node, "select count(*) from events", 0, None)
            .await
            .unwrap(),
    );
    assert_eq!(again, Some(EVENTS as i64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_the_memory_limit_is_refused_and_the_node_goes_on() {
    let node = Node::start_with(credence_tests::NodeOptions {
        env: vec![("CREDENCE__ANALYTICS__MEMORY_LIMIT".into(), "100MB".into())],
        ..credence_tests::NodeOptions::default()
    })
    .await
    .unwrap();
    // One string of about a gigabyte cannot be built in 100 MB.
    let err = run_sql(
        &node,
        "select length(string_agg(repeat('x', 1000), ',')) from range(1000000)",
        0,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("analytics.memory_limit") && !err.message().contains("SET "),
        "{}",
        err.message()
    );
    let small = single_int(&run_sql(&node, "select 41 + 1", 0, None).await.unwrap());
    assert_eq!(small, Some(42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_limit_past_the_server_ceiling_is_refused() {
    let node = Node::start_with(credence_tests::NodeOptions {
        env: vec![
            ("CREDENCE__ANALYTICS__MAX_ROWS_LIMIT".into(), "1000".into()),
            (
                "CREDENCE__ANALYTICS__DEFAULT_MAX_ROWS".into(),
                "1000".into(),
            ),
        ],
        ..credence_tests::NodeOptions::default()
    })
    .await
    .unwrap();
    let err = run_sql(&node, "select * from range(10)", 1_001, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("max_rows: 1001") && err.message().contains("max_rows_limit"),
        "{}",
        err.message()
    );
    let at_limit = run_sql(&node, "select * from range(5000)", 1_000, None)
        .await
        .unwrap();
    assert_eq!(
        at_limit
            .iter()
            .map(arrow::array::RecordBatch::num_rows)
            .sum::<usize>(),
        1_000
    );
}

/// A result is streamed under a byte limit and queries run a few at a time: past either
/// limit the answer is RESOURCE_EXHAUSTED naming the config key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_past_the_byte_limit_and_queries_past_the_concurrency_limit_are_refused() {
    let node = Node::start_with(credence_tests::NodeOptions {
        env: vec![
            (
                "CREDENCE__ANALYTICS__MAX_RESULT_BYTES".into(),
                (1 << 20).to_string(),
            ),
            (
                "CREDENCE__ANALYTICS__MAX_CONCURRENT_QUERIES".into(),
                "1".into(),
            ),
        ],
        ..credence_tests::NodeOptions::default()
    })
    .await
    .unwrap();
    // About 100 MB of strings: the stream stops after 1 MiB.
    let err = run_sql(
        &node,
        "select repeat('x', 1000) as s from range(100000)",
        0,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("analytics.max_result_bytes"),
        "{}",
        err.message()
    );

    // A result nobody reads holds the one slot.
    let request = |sql: &str| credence_proto::v1::RunAnalyticsRequest {
        sql: sql.into(),
        max_rows: 0,
        timeout: None,
    };
    let held = node
        .query()
        .run_analytics(request("select * from range(100000000)"))
        .await
        .unwrap();
    let err = run_sql(&node, "select 1", 0, None).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("analytics.max_concurrent_queries"),
        "{}",
        err.message()
    );
    // Dropping it frees the slot.
    drop(held);
    let answer =
        credence_tests::wait::until("the slot to be free", Duration::from_secs(20), || async {
            match run_sql(&node, "select 42", 0, None).await {
                Ok(batches) => Ok(single_int(&batches)),
                Err(s) if s.code() == Code::ResourceExhausted => Ok(None),
                Err(s) => Err(s.into()),
            }
        })
        .await
        .unwrap();
    assert_eq!(answer, 42);
}
