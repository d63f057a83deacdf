//! The `KafkaProducer` (feature `kafka`) against a node on the Kafka bus of the live stack
//! (`make test-stack`): what it writes straight to the topic is scored by the node as if
//! published over gRPC, partitioned as the node partitions, a resent event is scored once,
//! and bad input and a missing topic are refused naming what is wrong.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::{late, scored};
use credence::{Client, Error, KafkaProducer};
use credence_tests::{Node, NodeOptions};

/// A node on its own topic of the stack's broker, a client on it, and the broker and topic;
/// `None` (skipped, loudly) without a broker.
async fn node_on_kafka() -> Option<(Node, Client, String, String)> {
    let env = credence_tests::cluster::kafka_bus_env("the SDK's Kafka producer")?;
    let value = |key: &str| {
        env.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let brokers = value("CREDENCE__STORAGE__KAFKA__BROKERS");
    let topic = value("CREDENCE__STORAGE__KAFKA__TOPIC");
    let node = Node::start_with(NodeOptions {
        env,
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    let client = Client::connect(&node.endpoint()).await.unwrap();
    Some((node, client, brokers, topic))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_to_the_topic_are_scored_once_by_the_node() {
    let Some((_node, client, brokers, topic)) = node_on_kafka().await else {
        return;
    };
    let producer = KafkaProducer::builder(&brokers, &topic)
        .connect()
        .await
        .unwrap();
    assert_eq!(producer.partitions(), 4, "the node's topic");

    // Five subjects, four events each, then the first four sent again.
    let events: Vec<_> = (0..20)
        .map(|i| {
            late(
                &format!("kp-{i}"),
                &format!("KP-S{}", i % 5),
                &format!("2026-01-01T1{}:00:00Z", i / 5),
                1,
            )
        })
        .collect();
    let delivered = producer.send(&events).await;
    for (event, delivery) in events.iter().zip(&delivered) {
        let delivery = delivery.as_ref().unwrap();
        assert_eq!(
            delivery.partition,
            credence_proto::partition_of(&event.subject_id, 4),
            "{} went to another partition than the node's partitioner picks",
            event.event_id
        );
    }
    let resent = producer.send(&events[..4]).await;
    assert!(resent.iter().all(Result::is_ok), "{resent:?}");
    producer.flush().await.unwrap();

    for s in 0..5 {
        let snapshot = scored(&client, &format!("KP-S{s}"), 4).await;
        assert_eq!(
            snapshot.applied_events, 4,
            "KP-S{s}: a resent event was scored twice"
        );
    }
    // The same events published over gRPC, then one new event per subject: the node's
    // ingestion has not seen the topic's ids (it only remembers its own appends), but the
    // scorer's duplicate window has, so each subject ends with 5 applied events, not 9.
    let mut again = events.clone();
    again.extend((0..5).map(|s| {
        late(
            &format!("kp-new-{s}"),
            &format!("KP-S{s}"),
            "2026-01-01T20:00:00Z",
            1,
        )
    }));
    client.publish_events(&again).await.unwrap();
    for s in 0..5 {
        let snapshot = scored(&client, &format!("KP-S{s}"), 5).await;
        assert_eq!(
            snapshot.applied_events, 5,
            "KP-S{s}: an event was scored twice"
        );
        assert_eq!(snapshot.last_event_id, format!("kp-new-{s}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_and_a_missing_topic_are_refused_naming_what_is_wrong() {
    let Some((_node, _client, brokers, topic)) = node_on_kafka().await else {
        return;
    };
    let producer = KafkaProducer::builder(&brokers, &topic)
        .connect()
        .await
        .unwrap();
    let mut nameless = late("kp-bad", "KP-BAD", "2026-01-01T10:00:00Z", 1);
    nameless.subject_id.clear();
    let good = late("kp-good", "KP-GOOD", "2026-01-01T10:00:00Z", 1);
    let outcomes = producer.send(&[nameless, good]).await;
    match &outcomes[0] {
        Err(Error::Input(message)) => {
            assert!(
                message.contains("events[0]") && message.contains("subject_id"),
                "{message}"
            );
        }
        other => panic!("a subject-less event was not refused: {other:?}"),
    }
    assert!(
        outcomes[1].is_ok(),
        "the rest of the batch is judged on its own"
    );

    let Err(err) = KafkaProducer::builder(&brokers, "no-such-credence-topic")
        .connect()
        .await
    else {
        panic!("connected to a topic that does not exist");
    };
    assert!(
        err.to_string().contains("no-such-credence-topic")
            && err.to_string().contains("does not exist"),
        "{err}"
    );
}
