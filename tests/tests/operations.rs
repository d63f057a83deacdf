//! Operating a node: backpressure past the lag limit, the Prometheus endpoint, and
//! `credence rules apply` / `rules list` against a running node.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::process::Command;

use credence_proto::v1 as pb;
use credence_tests::events::event;
use credence_tests::wait::{SCORING_TIMEOUT, until};
use credence_tests::{Node, NodeOptions, server_binary};
use serde_json::json;

fn batch(prefix: &str, n: usize) -> Vec<pb::Event> {
    (0..n)
        .map(|i| {
            event(
                &format!("{prefix}-{i}"),
                &format!("SUBJ-OPS-{}", i % 500),
                "social",
                "volunteer_work",
                "2026-01-01T10:00:00Z",
                &json!({"hours": 4}),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_pipeline_refuses_with_resource_exhausted_then_recovers() {
    let node = Node::start_with(NodeOptions::refusing_when_behind())
        .await
        .unwrap();
    let mut ingestion = node.ingestion();
    let first = ingestion
        .publish_events(pb::PublishEventsRequest {
            events: batch("bp-a", 10_000),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.accepted, 10_000);
    let refused = ingestion
        .publish_events(pb::PublishEventsRequest {
            events: batch("bp-b", 1),
        })
        .await
        .expect_err("the pipeline is 10,000 events behind a limit of 1");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.message().contains("events behind") && refused.message().contains("max_lag"),
        "{}",
        refused.message()
    );
    // Once it has caught up, the same batch is accepted: nothing was lost or half-taken.
    let accepted = until("the pipeline to catch up", SCORING_TIMEOUT, || {
        let mut ingestion = node.ingestion();
        async move {
            match ingestion
                .publish_events(pb::PublishEventsRequest {
                    events: batch("bp-b", 1),
                })
                .await
            {
                Ok(r) => Ok(Some(r.into_inner())),
                Err(s) if s.code() == tonic::Code::ResourceExhausted => Ok(None),
                Err(s) => Err(s.into()),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(accepted.accepted, 1, "{accepted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happened() {
    let node = Node::start().await.unwrap();
    let mut events = batch("m", 20);
    events.push(event(
        "",
        "SUBJ-OPS-X",
        "social",
        "",
        "2026-01-01T10:00:00Z",
        &json!({}),
    ));
    let published = node
        .ingestion()
        .publish_events(pb::PublishEventsRequest { events })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((published.accepted, published.rejected), (20, 1));
    let metrics = until(
        "20 events scored in the metrics",
        SCORING_TIMEOUT,
        || async {
            let m = node.metrics().await?;
            Ok((m.sum("credence_events_scored_total", &[]) >= 20.0).then_some(m))
        },
    )
    .await
    .unwrap();
    assert_eq!(
        metrics.sum("credence_events_received_total", &[("outcome", "accepted")]),
        20.0
    );
    assert_eq!(
        metrics.sum("credence_events_received_total", &[("outcome", "rejected")]),
        1.0
    );
    assert!(
        metrics
            .histogram("credence_ingest_to_snapshot_seconds")
            .count()
            >= 20.0
    );
    assert!(metrics.histogram("credence_batch_size_events").count() >= 1.0);
    assert!(metrics.has("credence_pipeline_lag_events"));
    assert!(
        metrics.sum(
            "credence_rpc_duration_seconds_count",
            &[("method", "PublishEvents")]
        ) >= 1.0
    );
}

fn credence(args: &[&str]) -> (bool, String) {
    let out = Command::new(server_binary().unwrap())
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

const RULES_V1: &str = "
rules:
  - id: ops_bonus
    name: Ops bonus
    status: active
    event_type: ops
    points: 5
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_apply_and_list_manage_a_running_node() {
    let node = Node::start().await.unwrap();
    let target = node.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(&file, RULES_V1).unwrap();
    let file = file.to_str().unwrap();

    let (ok, out) = credence(&[
        "rules",
        "apply",
        "-f",
        file,
        "--target",
        &target,
        "--dry-run",
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("would create ops_bonus"), "{out}");
    let (ok, out) = credence(&["rules", "apply", "-f", file, "--target", &target]);
    assert!(ok, "{out}");
    assert!(out.contains("create ops_bonus: now v1"), "{out}");
    // The example rules stay: the file does not say to retire them.
    assert!(out.contains("kept late_payment"), "{out}");
    let (ok, out) = credence(&["rules", "apply", "-f", file, "--target", &target]);
    assert!(ok, "{out}");
    assert!(
        out.contains("0 change(s) applied, 1 rule(s) unchanged"),
        "{out}"
    );

    std::fs::write(
        dir.path().join("rules.yaml"),
        RULES_V1.replace("points: 5", "points: 7"),
    )
    .unwrap();
    let (ok, out) = credence(&["rules", "apply", "-f", file, "--target", &target]);
    assert!(ok, "{out}");
    assert!(
        out.contains("update ops_bonus (v1 -> new version): now v2"),
        "{out}"
    );
    let (ok, out) = credence(&["rules", "list", "--target", &target]);
    assert!(ok, "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("ops_bonus"))
        .expect(&out);
    assert!(line.contains("v2") && line.contains("+7"), "{line}");

    // Scoring uses the new version without a restart.
    node.ingestion()
        .publish_events(pb::PublishEventsRequest {
            events: vec![event(
                "ops-1",
                "SUBJ-OPS-R",
                "ops",
                "",
                "2026-01-01T10:00:00Z",
                &json!({}),
            )],
        })
        .await
        .unwrap();
    let snapshot = credence_tests::wait::scored(&node, "SUBJ-OPS-R", 1)
        .await
        .unwrap();
    let explained = node
        .scoring()
        .explain_score(pb::ExplainScoreRequest {
            subject_id: "SUBJ-OPS-R".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let change = &explained.changes[0];
    assert_eq!(
        (change.rule_id.as_str(), change.rule_version, change.delta),
        ("ops_bonus", 2, 7.0)
    );
    assert!(snapshot.score > 0.0);

    let (ok, out) = credence(&[
        "rules",
        "apply",
        "-f",
        "/nonexistent.yaml",
        "--target",
        &target,
    ]);
    assert!(!ok && out.contains("nonexistent.yaml"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_events_sums_its_batches_and_says_where_a_failure_struck() {
    let node = Node::start().await.unwrap();
    let mut first = batch("st-a", 3);
    first.push(event(
        "",
        "SUBJ-OPS-1",
        "social",
        "",
        "2026-01-01T10:00:00Z",
        &json!({}),
    ));
    let mut second = batch("st-b", 2);
    second.push(batch("st-a", 1).remove(0)); // a duplicate of the first batch
    let requests = vec![
        pb::StreamEventsRequest { events: first },
        pb::StreamEventsRequest { events: second },
    ];
    let summary = node
        .ingestion()
        .stream_events(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            summary.batches,
            summary.accepted,
            summary.duplicates,
            summary.rejected
        ),
        (2, 5, 1, 1)
    );
    let not_accepted: Vec<(u32, i32)> = summary
        .not_accepted
        .iter()
        .map(|r| (r.index, r.outcome))
        .collect();
    assert_eq!(
        not_accepted,
        [
            (3, pb::EventOutcome::Rejected as i32),
            (6, pb::EventOutcome::Duplicate as i32)
        ],
        "indexes count over the whole stream"
    );
    credence_tests::wait::scored(&node, "SUBJ-OPS-1", 1)
        .await
        .unwrap();

    // A batch over the limit fails the stream; the batches before it stay accepted.
    let requests = vec![
        pb::StreamEventsRequest {
            events: batch("st-c", 2),
        },
        pb::StreamEventsRequest {
            events: batch("st-d", 10_001),
        },
    ];
    let err = node
        .ingestion()
        .stream_events(tokio_stream::iter(requests))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("batch 2 of this stream")
            && err.message().contains("resend from event index 2"),
        "{}",
        err.message()
    );
    // The accepted batch is kept (and scored).
    until("the accepted batch to be archived", SCORING_TIMEOUT, || {
        let mut query = node.query();
        async move {
            let events = query
                .list_events(pb::ListEventsRequest {
                    subject_id: "SUBJ-OPS-1".into(),
                    ..Default::default()
                })
                .await?
                .into_inner()
                .events;
            Ok(events.iter().any(|e| e.event_id == "st-c-1").then_some(()))
        }
    })
    .await
    .unwrap();
}
