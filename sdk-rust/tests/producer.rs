//! The producer against a real node: flush and close wait for acknowledgements, outcomes
//! reach the caller, a full queue makes `send` wait, dropping it unclosed is logged.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{at, late, node_and_client};
use credence::{Client, Event, OutcomeKind, RetryPolicy, Transport};
use credence_tests::Node;

fn events(prefix: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            late(
                &format!("{prefix}-{i}"),
                &format!("{prefix}-S{}", i % 20),
                "2026-01-01T10:00:00Z",
                1,
            )
        })
        .collect()
}

/// What the node already holds of `sent`: publishing them again, every one is a duplicate.
async fn all_stored(client: &Client, sent: &[Event]) {
    let again = client.publish_events(sent).await.unwrap();
    assert_eq!(again.duplicates as usize, sent.len(), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_and_close_wait_for_every_acknowledgement_on_both_transports() {
    let (_node, client) = node_and_client().await;
    for (transport, prefix) in [(Transport::Stream, "fs"), (Transport::Unary, "fu")] {
        let producer = client
            .producer()
            .transport(transport)
            .batch_events(100)
            .linger(Duration::from_secs(3600)) // only count, bytes or flush close a batch
            .build();
        let first = events(prefix, 1_050);
        producer.send_all(first.clone()).await.unwrap();
        producer.flush().await.unwrap();
        let stats = producer.stats();
        assert_eq!(
            (stats.sent, stats.accepted, stats.pending()),
            (1_050, 1_050, 0)
        );
        all_stored(&client, &first).await;

        // bytes close batches too: one event per batch here
        let producer2 = client
            .producer()
            .transport(transport)
            .batch_bytes(1)
            .build();
        let second = events(&format!("{prefix}b"), 30);
        producer2.send_all(second.clone()).await.unwrap();
        let stats = producer2.close().await.unwrap();
        assert_eq!(stats.accepted, 30, "{stats:?}");
        all_stored(&client, &second).await;

        let stats = producer.close().await.unwrap();
        assert_eq!(stats.accepted, 1_050, "{transport:?}: {stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_and_duplicates_reach_the_callback() {
    let (_node, client) = node_and_client().await;
    client
        .publish_events(&[late("cb-old", "CB-1", "2026-01-01T10:00:00Z", 1)])
        .await
        .unwrap();
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&outcomes);
    let producer = client
        .producer()
        .on_outcome(move |o| seen.lock().unwrap().push(o))
        .build();
    producer
        .send(late("cb-new", "CB-1", "2026-01-01T11:00:00Z", 1))
        .await
        .unwrap();
    producer
        .send(late("cb-old", "CB-1", "2026-01-01T10:00:00Z", 1))
        .await
        .unwrap();
    producer
        .send(Event::new("cb-bad", "CB-1", "", at("2026-01-01T10:00:00Z")))
        .await
        .unwrap();
    let stats = producer.close().await.unwrap();
    assert_eq!(
        (stats.accepted, stats.duplicates, stats.rejected),
        (1, 1, 1),
        "{stats:?}"
    );
    let mut outcomes = outcomes.lock().unwrap().clone();
    outcomes.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert_eq!(outcomes[0].event_id, "cb-bad");
    assert!(
        matches!(&outcomes[0].kind, OutcomeKind::Rejected { reason } if reason.contains("event_type")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[1].event_id, "cb-old");
    assert_eq!(outcomes[1].kind, OutcomeKind::Duplicate { retried: false });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_makes_send_wait_until_the_node_takes_events_again() {
    let mut node = Node::start().await.unwrap();
    let client = Client::connect(&node.endpoint()).await.unwrap();
    let producer = client
        .producer()
        .queue_events(2)
        .batch_events(1)
        .in_flight(1)
        .stream_batches(1)
        .retry(RetryPolicy {
            max_attempts: 100,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
        })
        .build();
    node.kill();
    // With the node down the one call in flight (one batch of one event) retries, batching
    // waits for it with the next batch, and the queue of two fills: some send within the
    // first few must block.
    let sent = events("bp", 20);
    let mut blocked_at = None;
    for (i, event) in sent.iter().enumerate() {
        let send = producer.send(event.clone());
        if tokio::time::timeout(Duration::from_secs(2), send)
            .await
            .is_err()
        {
            blocked_at = Some(i);
            break;
        }
    }
    let blocked_at = blocked_at.expect("a send must wait while the queue is full");
    assert!(
        blocked_at <= 6,
        "the queue holds 2, a batch 1, a segment 1: {blocked_at}"
    );
    assert!(producer.stats().pending() > 0);

    node.restart_on_same_address().await.unwrap();
    // The blocked send was cancelled by the timeout; send it and the rest now.
    producer
        .send_all(sent[blocked_at..].to_vec())
        .await
        .unwrap();
    let stats = producer.close().await.unwrap();
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert_eq!(stats.accepted + stats.duplicates, 20, "{stats:?}");
    all_stored(&client, &sent).await;
}

/// Collects what `tracing` writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn dropping_without_close_is_logged() {
    let (_node, client) = node_and_client().await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let closed = client.producer().build();
    closed.send(events("dr", 1).remove(0)).await.unwrap();
    closed.close().await.unwrap();
    assert!(
        captured.0.lock().unwrap().is_empty(),
        "close() logs nothing"
    );

    let dropped = client.producer().build();
    dropped.send(events("dr2", 1).remove(0)).await.unwrap();
    drop(dropped);
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("dropped without close()"), "{log}");
    let _ = std::io::stderr().flush();
}
