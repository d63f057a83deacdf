//! Block and allow lists: an entry with an expiry changes what `subject.lists` reads (compared
//! with event time), listing with and without expired entries, removal.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use credence_proto::v1 as pb;
use credence_tests::events::{event, ts};
use credence_tests::{Node, NodeOptions, wait};
use serde_json::json;
use tonic::Code;

const BLOCKED: &str = "SUBJ-LIST-1";
const ALLOWED: &str = "SUBJ-LIST-2";

async fn disturbance(node: &Node, id: &str, at: &str) {
    let r = node
        .ingestion()
        .publish_events(pb::PublishEventsRequest {
            events: vec![event(
                id,
                BLOCKED,
                "social",
                "public_disturbance",
                at,
                &json!({}),
            )],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 1, "{r:?}");
}

async fn last_change(node: &Node, subject: &str, event_id: &str) -> Option<pb::ScoreChange> {
    let changes = node
        .scoring()
        .explain_score(pb::ExplainScoreRequest {
            subject_id: subject.into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .changes;
    changes.into_iter().find(|c| c.event_id == event_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_entries_with_expiry_drive_the_rules() {
    lists_test(NodeOptions::default()).await;
}

/// The same on a node whose rules, config, profiles and lists are in MongoDB
/// (`make test-stack`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_entries_with_expiry_drive_the_rules_on_mongodb() {
    let Some(env) = credence_tests::cluster::mongo_documents_env("lists test on MongoDB") else {
        return;
    };
    lists_test(NodeOptions {
        env,
        ..NodeOptions::default()
    })
    .await;
}

async fn lists_test(options: NodeOptions) {
    let node = Node::start_with(options).await.unwrap();
    let mut scoring = node.scoring();

    // BLOCKED is on the block list until 15 Jan 2026 (already past by the wall clock)
    let stored = scoring
        .put_list_entry(pb::PutListEntryRequest {
            entry: Some(pb::ListEntry {
                subject_id: BLOCKED.into(),
                kind: pb::ListKind::Block as i32,
                reason: "synthetic test entry".into(),
                expires_at: Some(ts("2026-01-15T00:00:00Z")),
                created_at: None,
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .entry
        .unwrap();
    assert_eq!(stored.expires_at, Some(ts("2026-01-15T00:00:00Z")));
    assert!(stored.created_at.is_some());
    scoring
        .put_list_entry(pb::PutListEntryRequest {
            entry: Some(pb::ListEntry {
                subject_id: ALLOWED.into(),
                kind: pb::ListKind::Allow as i32,
                reason: "synthetic test entry".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();

    // public_disturbance: -40, x2 when subject.lists contains block (expiry is event time)
    disturbance(&node, "d-1", "2026-01-10T00:00:00Z").await;
    wait::scored(&node, BLOCKED, 1).await.unwrap();
    let first = last_change(&node, BLOCKED, "d-1")
        .await
        .expect("d-1 changed the score");
    assert_eq!(
        (first.rule_id.as_str(), first.factor, first.delta),
        ("public_disturbance", 2.0, -80.0)
    );
    let inputs = first
        .inputs
        .as_ref()
        .map(|s| s.fields.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default();
    assert!(
        inputs.iter().any(|k| k == "subject.lists"),
        "the change records the list it read: {inputs:?}"
    );
    disturbance(&node, "d-2", "2026-01-20T00:00:00Z").await;
    wait::scored(&node, BLOCKED, 2).await.unwrap();
    let second = last_change(&node, BLOCKED, "d-2")
        .await
        .expect("d-2 changed the score");
    assert_eq!(
        second.factor, 1.0,
        "the entry had expired at the event's time: {second:?}"
    );
    assert!((second.delta + 40.0).abs() < 1e-9, "{second:?}");

    // listing: expired entries only on request
    let list = |kind: pb::ListKind, include_expired: bool| pb::ListListEntriesRequest {
        kind: kind as i32,
        include_expired,
        ..Default::default()
    };
    let current = scoring
        .list_list_entries(list(pb::ListKind::Unspecified, false))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = current
        .entries
        .iter()
        .map(|e| (e.subject_id.as_str(), e.kind))
        .collect();
    assert_eq!(ids, [(ALLOWED, pb::ListKind::Allow as i32)]);
    let everything = scoring
        .list_list_entries(list(pb::ListKind::Unspecified, true))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = everything
        .entries
        .iter()
        .map(|e| e.subject_id.as_str())
        .collect();
    assert_eq!(ids, [BLOCKED, ALLOWED]);
    let blocks = scoring
        .list_list_entries(list(pb::ListKind::Block, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(blocks.entries.len(), 1);
    assert_eq!(blocks.entries[0].reason, "synthetic test entry");
    let one = scoring
        .list_list_entries(pb::ListListEntriesRequest {
            subject_id: ALLOWED.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.entries.len(), 1);

    // a new entry of the same kind replaces the old one; removal makes the rule stop
    scoring
        .put_list_entry(pb::PutListEntryRequest {
            entry: Some(pb::ListEntry {
                subject_id: BLOCKED.into(),
                kind: pb::ListKind::Block as i32,
                reason: "renewed".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let blocks = scoring
        .list_list_entries(list(pb::ListKind::Block, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(blocks.entries.len(), 1, "one entry per subject and kind");
    assert_eq!(
        (
            blocks.entries[0].reason.as_str(),
            blocks.entries[0].expires_at
        ),
        ("renewed", None)
    );
    disturbance(&node, "d-3", "2026-01-21T00:00:00Z").await;
    wait::scored(&node, BLOCKED, 3).await.unwrap();
    assert_eq!(
        last_change(&node, BLOCKED, "d-3").await.unwrap().factor,
        2.0
    );

    let removed = scoring
        .remove_list_entry(pb::RemoveListEntryRequest {
            subject_id: BLOCKED.into(),
            kind: pb::ListKind::Block as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(removed.removed);
    let again = scoring
        .remove_list_entry(pb::RemoveListEntryRequest {
            subject_id: BLOCKED.into(),
            kind: pb::ListKind::Block as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!again.removed, "nothing left to remove");
    disturbance(&node, "d-4", "2026-01-22T00:00:00Z").await;
    wait::scored(&node, BLOCKED, 4).await.unwrap();
    assert_eq!(
        last_change(&node, BLOCKED, "d-4").await.unwrap().factor,
        1.0
    );
    let blocks = scoring
        .list_list_entries(list(pb::ListKind::Block, true))
        .await
        .unwrap()
        .into_inner();
    assert!(blocks.entries.is_empty());

    // bad entries are refused, naming the field
    let err = scoring
        .put_list_entry(pb::PutListEntryRequest {
            entry: Some(pb::ListEntry {
                subject_id: BLOCKED.into(),
                kind: 0,
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("kind"), "{err:?}");
    let err = scoring
        .put_list_entry(pb::PutListEntryRequest {
            entry: Some(pb::ListEntry {
                subject_id: String::new(),
                kind: 1,
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("subject_id"), "{err:?}");
}
