//! WatchAlerts: a tier change and a threshold crossing caused by published events arrive on
//! the stream, filtered by subject and by new tier.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::Duration;

use credence_proto::v1 as pb;
use credence_tests::Node;
use credence_tests::events::{event, ts};
use serde_json::json;

const S: &str = "SUBJ-ALERT-1";
const OTHER: &str = "SUBJ-ALERT-2";

async fn next(stream: &mut tonic::Streaming<pb::WatchAlertsResponse>) -> pb::Alert {
    tokio::time::timeout(Duration::from_secs(20), stream.message())
        .await
        .expect("an alert within 20 s")
        .expect("the stream is healthy")
        .expect("the stream is still open")
        .alert
        .expect("the response holds an alert")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_changes_and_threshold_crossings_are_streamed() {
    let node = Node::start().await.unwrap();
    let mut scoring = node.scoring();
    let mut mine = scoring
        .watch_alerts(pb::WatchAlertsRequest {
            subject_ids: vec![S.into()],
            new_tiers: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    let mut only_e = scoring
        .watch_alerts(pb::WatchAlertsRequest {
            subject_ids: vec![],
            new_tiers: vec!["E".into()],
        })
        .await
        .unwrap()
        .into_inner();
    // give the server a moment to register both watchers before anything happens
    tokio::time::sleep(Duration::from_millis(300)).await;

    // OTHER changes tier too (C -> D), but `mine` only watches S
    let publish = |e: pb::Event| {
        let mut ingestion = node.ingestion();
        async move {
            let r = ingestion
                .publish_events(pb::PublishEventsRequest { events: vec![e] })
                .await
                .unwrap();
            assert_eq!(r.into_inner().accepted, 1);
        }
    };
    publish(event(
        "a-0",
        OTHER,
        "financial",
        "bankruptcy",
        "2026-06-01T00:00:00Z",
        &json!({}),
    ))
    .await;
    // S: 1000 (C) -> 600 (D): a tier change, no threshold crossed
    publish(event(
        "a-1",
        S,
        "financial",
        "bankruptcy",
        "2026-06-01T00:00:00Z",
        &json!({}),
    ))
    .await;
    let alert = next(&mut mine).await;
    assert_eq!(alert.subject_id, S, "the subject filter holds: {alert:?}");
    assert_eq!(alert.event_id, "a-1");
    assert_eq!((alert.old_score, alert.new_score), (1000.0, 600.0));
    assert_eq!(
        (alert.old_tier.as_str(), alert.new_tier.as_str()),
        ("C", "D")
    );
    assert!(alert.thresholds_crossed.is_empty(), "{alert:?}");
    assert_eq!(alert.at, Some(ts("2026-06-01T00:00:00Z")));

    // S: 600 -> ~200 (E), crossing the 500 threshold of the example config
    publish(event(
        "a-2",
        S,
        "financial",
        "bankruptcy",
        "2026-06-01T00:00:00Z",
        &json!({}),
    ))
    .await;
    let alert = next(&mut mine).await;
    assert_eq!(alert.event_id, "a-2");
    assert_eq!(
        (alert.old_tier.as_str(), alert.new_tier.as_str()),
        ("D", "E")
    );
    assert_eq!(alert.thresholds_crossed, [500.0]);
    assert_eq!((alert.old_score, alert.new_score), (600.0, 200.0));

    // the tier filter: only the alert into E came through
    let alert = next(&mut only_e).await;
    assert_eq!(
        (
            alert.subject_id.as_str(),
            alert.event_id.as_str(),
            alert.new_tier.as_str()
        ),
        (S, "a-2", "E")
    );
    let nothing_more = tokio::time::timeout(Duration::from_millis(500), only_e.message()).await;
    assert!(
        nothing_more.is_err(),
        "no other alert matches new tier E: {nothing_more:?}"
    );
}
