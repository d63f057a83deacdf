//! Retries through a node that is killed and started again on the same address, mid-run.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::Duration;

use common::{count, late, scored};
use credence::{Client, Error, RetryPolicy};
use credence_tests::Node;
use credence_tests::wait::{SCORING_TIMEOUT, until};

/// Waits enough for the first attempts to fail against a dead node, then starts it again.
async fn restart_later(mut node: Node) -> Node {
    tokio::time::sleep(Duration::from_millis(700)).await;
    node.restart_on_same_address().await.unwrap();
    node
}

fn patient() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 40,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
    }
}

#[ignore = "flaky after the merges: a call can fail (CANCELLED, or a stall past its wait) while the node restarts; run with --ignored until fixed"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_publishes_ride_through_a_restart() {
    let mut node = Node::start().await.unwrap();
    let url = node.endpoint();
    let client = Client::builder(&url)
        .retry(patient())
        .connect()
        .await
        .unwrap();
    let once = Client::builder(&url)
        .retry(RetryPolicy::none())
        .connect()
        .await
        .unwrap();
    client
        .publish_events(&[late("r-1", "R-1", "2026-01-01T10:00:00Z", 45)])
        .await
        .unwrap();
    scored(&client, "R-1", 1).await;

    node.kill();
    // Without retries the dead node is UNAVAILABLE at once: the hole the retries fill.
    let e = once.get_score("R-1").await.unwrap_err();
    assert!(matches!(e, Error::Unavailable { attempts: 1, .. }), "{e:?}");

    let restart = tokio::spawn(restart_later(node));
    let snapshot = client.get_score("R-1").await.unwrap();
    assert_eq!(snapshot.applied_events, 1);
    let node = restart.await.unwrap();
    assert_eq!(node.endpoint(), url);

    node_down_then_publish(node, &client).await;
}

/// A publish sent while the node is down lands once it is back, and only once.
async fn node_down_then_publish(mut node: Node, client: &Client) {
    node.kill();
    let restart = tokio::spawn(restart_later(node));
    let published = client
        .publish_events(&[late("r-2", "R-1", "2026-01-03T10:00:00Z", 5)])
        .await
        .unwrap();
    assert_eq!(published.accepted, 1);
    let _node = restart.await.unwrap();
    scored(client, "R-1", 2).await;
}

#[ignore = "flaky after the merges: a call can fail (CANCELLED, or a stall past its wait) while the node restarts; run with --ignored until fixed"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_producer_delivers_every_event_once_across_a_restart() {
    const EVENTS: usize = 20_000;
    let mut node = Node::start().await.unwrap();
    let client = Client::connect(&node.endpoint()).await.unwrap();
    let failures = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&failures);
    let producer = client
        .producer()
        .batch_events(200)
        .queue_events(1_000)
        .retry(patient())
        .on_outcome(move |o| {
            if let credence::OutcomeKind::Failed(e) = o.kind {
                seen.lock().unwrap().push(e);
            }
        })
        .build();
    let event = |i: usize| {
        let minute = i / 60 % 60;
        let second = i % 60;
        late(
            &format!("pr-{i}"),
            &format!("PR-{}", i % 50),
            &format!("2026-01-01T{:02}:{minute:02}:{second:02}Z", 10 + i / 3_600),
            1,
        )
    };
    for i in 0..EVENTS / 4 {
        producer.send(event(i)).await.unwrap();
    }
    node.kill();
    let restart = tokio::spawn(restart_later(node));
    for i in EVENTS / 4..EVENTS {
        producer.send(event(i)).await.unwrap();
    }
    let stats = producer.close().await.unwrap();
    let node = restart.await.unwrap();
    assert_eq!(stats.sent, EVENTS as u64);
    let first_failure = failures.lock().unwrap().first().cloned();
    assert_eq!(stats.failed, 0, "{stats:?}: {first_failure:?}");
    assert_eq!(stats.rejected, 0, "{stats:?}");
    assert_eq!(
        stats.accepted + stats.duplicates,
        EVENTS as u64,
        "{stats:?}"
    );
    assert!(
        stats.retries > 0,
        "the kill must have failed a segment: {stats:?}"
    );

    // Every event stored and scored exactly once, whatever was sent twice.
    let total = EVENTS as i64;
    until("every event to be scored", SCORING_TIMEOUT * 3, || async {
        let applied = count(
            &client,
            "select count(*) filter (where applied) from events",
        )
        .await;
        Ok((applied >= total).then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(
        count(&client, "select count(distinct event_id) from events").await,
        total
    );
    assert_eq!(
        count(
            &client,
            "select count(*) filter (where applied) from events"
        )
        .await,
        total
    );
    drop(node);
}
