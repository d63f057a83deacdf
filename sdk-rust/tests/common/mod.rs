//! What the SDK's end-to-end tests share: a node (the `credence-tests` harness), a client on
//! it, and waiting for scoring.

#![allow(dead_code, reason = "each test file uses a part")]

use std::time::Duration;

use chrono::{DateTime, Utc};
use credence::{Client, Error, Event, ScoreSnapshot};
use credence_tests::Node;
use credence_tests::wait::{SCORING_TIMEOUT, until};

/// A node and a client on it, with gzip on (the node must take compressed calls to every
/// service; the tests that build their own clients cover plain ones).
pub(crate) async fn node_and_client() -> (Node, Client) {
    let node = Node::start().await.expect("the node starts");
    let client = Client::builder(&node.endpoint())
        .gzip(true)
        .connect()
        .await
        .expect("the client connects");
    (node, client)
}

/// RFC 3339 text as a time.
pub(crate) fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("tests write valid times")
        .with_timezone(&Utc)
}

/// A `financial / late_payment` event of `days_late` days.
pub(crate) fn late(id: &str, subject: &str, when: &str, days_late: u32) -> Event {
    Event::new(id, subject, "financial", at(when))
        .subtype("late_payment")
        .payload(serde_json::json!({ "days_late": days_late }))
}

/// Waits until `subject` has at least `applied` events applied.
pub(crate) async fn scored(client: &Client, subject: &str, applied: u64) -> ScoreSnapshot {
    until(
        &format!("{subject} to have {applied} applied events"),
        SCORING_TIMEOUT,
        || async {
            match client.get_score(subject).await {
                Ok(s) if s.applied_events >= applied => Ok(Some(s)),
                Ok(_) | Err(Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            }
        },
    )
    .await
    .expect("scored in time")
}

/// One number from an analytics query answering one BIGINT cell.
pub(crate) async fn count(client: &Client, sql: &str) -> i64 {
    let result = client.run_analytics(sql, None, None).await.expect(sql);
    let batches = result.record_batches().expect("valid Arrow");
    let column = batches[0].column(0);
    let ints = column
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .expect("a BIGINT column");
    ints.value(0)
}

/// A short pause for things with no observable readiness (a watcher registering).
pub(crate) async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}
