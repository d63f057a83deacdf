//! The node's errors arrive as the typed variants, with the server's message and the
//! number of attempts.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::Duration;

use common::{late, node_and_client};
use credence::{Client, Error, RetryPolicy, Rule, RuleStatus};
use credence_tests::{Node, NodeOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_refusals_map_to_their_variants() {
    let (_node, client) = node_and_client().await;

    let e = client.get_score("nobody-here").await.unwrap_err();
    let Error::NotFound { message, attempts } = &e else {
        panic!("not NotFound: {e:?}");
    };
    assert!(message.contains("nobody-here"), "{message}");
    assert_eq!(*attempts, 1, "NOT_FOUND is not retried");
    assert_eq!(e.code(), Some(tonic::Code::NotFound));

    let bad_rule = Rule::new("sdk_bad", "", 1.0).status(RuleStatus::Active);
    let e = client.put_rule(&bad_rule).await.unwrap_err();
    assert!(
        matches!(&e, Error::InvalidArgument { message, .. } if message.contains("event_type")),
        "{e:?}"
    );

    let e = client
        .run_analytics("delete from events", None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e:?}");

    let e = client.get_rule("no_such_rule", None).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_resource_exhausted_and_not_retried_by_the_client() {
    let node = Node::start_with(NodeOptions::refusing_when_behind())
        .await
        .unwrap();
    let client = Client::connect(&node.endpoint()).await.unwrap();
    let events: Vec<_> = (0..10_000)
        .map(|i| {
            late(
                &format!("ov-{i}"),
                &format!("OV-{}", i % 100),
                "2026-01-01T10:00:00Z",
                1,
            )
        })
        .collect();
    assert_eq!(
        client.publish_events(&events).await.unwrap().accepted,
        10_000
    );
    let e = client
        .publish_events(&[late("ov-x", "OV-X", "2026-01-01T10:00:00Z", 1)])
        .await
        .unwrap_err();
    let Error::ResourceExhausted {
        message,
        retry_after,
        attempts,
    } = &e
    else {
        panic!("not ResourceExhausted: {e:?}");
    };
    assert!(message.contains("events behind"), "{message}");
    assert_eq!(*retry_after, None, "the node sends no retry-after today");
    assert_eq!(*attempts, 1);
    assert!(e.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_call_is_deadline_exceeded() {
    let node = Node::start().await.unwrap();
    let client = Client::builder(&node.endpoint())
        .timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    // A cross join of 10^10 rows: far longer than 200 ms (the node stops it at its own
    // analytics time limit).
    let e = client
        .run_analytics(
            "select sum(a.range * b.range) from range(100000) a, range(100000) b",
            None,
            None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::DeadlineExceeded { attempts: 1, .. }),
        "{e:?}"
    );
    assert!(e.message().contains("RunAnalytics"), "{e:?}");
    // The connection is still good.
    client.get_config(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stays_down_is_unavailable_after_every_attempt() {
    let mut node = Node::start().await.unwrap();
    let client = Client::builder(&node.endpoint())
        .retry(RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        })
        .connect()
        .await
        .unwrap();
    client.get_config(None).await.unwrap();
    node.kill();
    let e = client.get_config(None).await.unwrap_err();
    assert!(matches!(e, Error::Unavailable { attempts: 3, .. }), "{e:?}");
    // A call that creates a version is never retried.
    let rule = Rule::new("sdk_down", "sdk", 1.0);
    let e = client.put_rule(&rule).await.unwrap_err();
    assert!(matches!(e, Error::Unavailable { attempts: 1, .. }), "{e:?}");
    // Connecting to the dead address now fails at once, naming it.
    let e = Client::connect(&node.endpoint()).await.unwrap_err();
    assert!(
        matches!(&e, Error::Connect { url, .. } if *url == node.endpoint()),
        "{e:?}"
    );
}
