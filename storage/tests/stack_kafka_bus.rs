//! The Kafka bus (`credence_storage::kafka`) against the live broker in `CREDENCE_TEST_KAFKA`:
//! the bus conformance suite, then what only a cluster bus has (records written straight to
//! the topic, two nodes sharing the partitions, a topic of another size, no broker).
#![cfg(feature = "kafka")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "common/stack.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{endpoint, unique};
use credence_storage::kafka::{KafkaBus, KafkaOptions};
use credence_storage::{Bus, BusRecord, Rebalance, StorageError, Stores};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::mpsc;

/// Options for a topic and group of their own, so tests never share a consumer group.
fn options(brokers: &str, partitions: u32) -> KafkaOptions {
    let name = format!("credence-bus-{}", unique());
    let mut options = KafkaOptions::new(brokers, &name);
    options.partitions = partitions;
    options.group_id = format!("{name}-group");
    // The broker's smallest: a member that went away frees its partitions soon.
    options.session_timeout = Duration::from_secs(6);
    options
}

fn brokers(test: &str) -> Option<String> {
    endpoint("CREDENCE_TEST_KAFKA", test)
}

/// Embedded stores with the bus swapped for a Kafka bus on a fresh topic; `None` (skipped,
/// loudly) without a broker.
async fn kafka_stores() -> Option<Stores> {
    let brokers = brokers("kafka bus conformance")?;
    let mut stores = common::embedded_stores();
    stores.bus = Arc::new(KafkaBus::open(options(&brokers, 3)).await.unwrap());
    Some(stores)
}

credence_storage::bus_conformance_tests!(match kafka_stores().await {
    Some(stores) => stores,
    None => return,
});

fn record(partition: u32, payload: &[u8]) -> BusRecord {
    BusRecord {
        partition,
        payload: payload.to_vec(),
    }
}

/// Kafka answers per record: a record over the producer's size limit is refused on its own,
/// the records around it (same partition, before and after) are appended, in order.
#[tokio::test(flavor = "multi_thread")]
async fn each_record_gets_its_own_answer() {
    let Some(brokers) = brokers("kafka per-record results") else {
        return;
    };
    let bus = KafkaBus::open(options(&brokers, 2)).await.unwrap();
    let results = bus
        .append(vec![
            record(1, b"before"),
            record(1, &vec![7u8; 2 << 20]),
            record(1, b"after"),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(*results[0].as_ref().unwrap(), 0);
    match &results[1] {
        Err(StorageError::Invalid(msg)) => {
            assert!(msg.contains("partition 1"), "{msg}");
        }
        other => panic!("an oversized record must be refused alone, got {other:?}"),
    }
    assert_eq!(*results[2].as_ref().unwrap(), 1);
    let read = bus.read(1, 0, 10).await.unwrap();
    assert_eq!(read, vec![(0, b"before".to_vec()), (1, b"after".to_vec())]);
    match bus.append(vec![record(2, b"x")]).await {
        Err(StorageError::Invalid(msg)) => assert!(msg.contains("partition 2"), "{msg}"),
        other => panic!("a partition past the topic's must be refused, got {other:?}"),
    }
}

/// A producer that writes straight to the topic, to the partition the published partitioner
/// picks, is seen by the bus: the end moves without any append through it, and the records
/// read back. A second bus opened on the topic starts from the ends that exist.
#[tokio::test(flavor = "multi_thread")]
async fn records_written_straight_to_the_topic_are_seen() {
    let Some(brokers) = brokers("kafka outside producer") else {
        return;
    };
    let options = options(&brokers, 4);
    let bus = KafkaBus::open(options.clone()).await.unwrap();
    let mut end = bus.end(3);
    assert_eq!(*end.borrow_and_update(), 0);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for payload in [b"one", b"two"] {
        producer
            .send(
                FutureRecord::<(), [u8]>::to(&options.topic)
                    .partition(3)
                    .payload(payload.as_slice()),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    while *end.borrow_and_update() < 2 {
        tokio::time::timeout(Duration::from_secs(30), end.changed())
            .await
            .expect("the end moves within 30 s")
            .unwrap();
    }
    assert_eq!(
        bus.read(3, 0, 10).await.unwrap(),
        vec![(0, b"one".to_vec()), (1, b"two".to_vec())]
    );
    let again = KafkaBus::open(options).await.unwrap();
    assert_eq!(*again.end(3).borrow(), 2);
    assert_eq!(*again.end(0).borrow(), 0);
    assert_eq!(
        again.read(3, 1, 10).await.unwrap(),
        vec![(1, b"two".to_vec())]
    );
}

/// Records deleted from the topic (as retention does) are gone for good: the bus says where
/// the partition starts now, and a read below it is an error naming the partition and the
/// offset, never a silent jump past the lost records.
#[tokio::test(flavor = "multi_thread")]
async fn a_read_below_the_retained_start_is_an_error_not_a_jump() {
    let Some(brokers) = brokers("kafka retention") else {
        return;
    };
    let options = options(&brokers, 2);
    let bus = KafkaBus::open(options.clone()).await.unwrap();
    let records = (0..5u8).map(|i| record(0, &[i])).collect();
    bus.append(records).await.unwrap();
    assert_eq!(bus.start(0).await.unwrap(), 0);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let mut below = TopicPartitionList::new();
    below
        .add_partition_offset(&options.topic, 0, Offset::Offset(3))
        .unwrap();
    admin
        .delete_records(&below, &AdminOptions::new())
        .await
        .unwrap();
    assert_eq!(bus.start(0).await.unwrap(), 3);
    assert_eq!(bus.start(1).await.unwrap(), 0);
    match bus.read(0, 1, 10).await {
        Err(StorageError::Backend(msg)) => {
            for part in ["partition 0", "offset 1", "are gone"] {
                assert!(msg.contains(part), "{part:?} missing from {msg}");
            }
        }
        other => panic!("a read of deleted records must fail, got {other:?}"),
    }
    assert_eq!(
        bus.read(0, 3, 10).await.unwrap(),
        vec![(3, vec![3]), (4, vec![4])]
    );
}

/// Next rebalance event, within a minute.
async fn next(events: &mut mpsc::Receiver<Rebalance>) -> Rebalance {
    tokio::time::timeout(Duration::from_secs(60), events.recv())
        .await
        .expect("a rebalance within 60 s")
        .expect("the stream stays open")
}

/// Two nodes in one group share the partitions. When the second joins, the first is asked
/// to give up only some (cooperative rebalancing: it keeps scoring the rest); the second
/// gets them only after the first said its workers stopped; together they hold each
/// partition exactly once. When the second leaves, the first gets them back.
#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_share_the_partitions_and_a_revoke_waits_for_the_pipeline() {
    let Some(brokers) = brokers("kafka group rebalance") else {
        return;
    };
    let options = options(&brokers, 4);
    let first = KafkaBus::open(options.clone()).await.unwrap();
    let mut first_events = first.rebalances().unwrap();
    let mut first_held = Vec::new();
    while first_held.len() < 4 {
        match next(&mut first_events).await {
            Rebalance::Assigned(p) => first_held.extend(p),
            Rebalance::Revoked { partitions, .. } => panic!("{partitions:?} revoked alone"),
        }
    }
    let second = KafkaBus::open(options).await.unwrap();
    let mut second_events = second.rebalances().unwrap();
    let Rebalance::Revoked { partitions, done } = next(&mut first_events).await else {
        panic!("the first node must be asked to give partitions up");
    };
    assert!(
        !partitions.is_empty() && partitions.len() < 4,
        "cooperative rebalancing moves some partitions, not all: {partitions:?}"
    );
    // While the first node's workers still run, the second gets nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        second_events.try_recv().is_err(),
        "the second node was given partitions before the first let them go"
    );
    done.send(()).unwrap();
    let mut second_held = Vec::new();
    while second_held.len() < partitions.len() {
        match next(&mut second_events).await {
            Rebalance::Assigned(p) => second_held.extend(p),
            Rebalance::Revoked { partitions, .. } => panic!("{partitions:?} revoked"),
        }
    }
    first_held.retain(|p| !partitions.contains(p));
    let mut all: Vec<u32> = first_held.iter().chain(&second_held).copied().collect();
    all.sort_unstable();
    assert_eq!(all, vec![0, 1, 2, 3], "each partition held once");
    second_held.sort_unstable();
    let mut moved = partitions.clone();
    moved.sort_unstable();
    assert_eq!(
        second_held, moved,
        "the second node got what the first gave up"
    );

    // The second node goes: its partitions come back to the first.
    drop(second_events);
    drop(second);
    let mut back = Vec::new();
    while back.len() < moved.len() {
        match next(&mut first_events).await {
            Rebalance::Assigned(p) => back.extend(p),
            Rebalance::Revoked { partitions, .. } => panic!("{partitions:?} revoked"),
        }
    }
    back.sort_unstable();
    assert_eq!(back, moved);
}

/// A topic that exists with another partition count is refused, naming both counts.
#[tokio::test(flavor = "multi_thread")]
async fn a_topic_of_another_size_is_refused() {
    let Some(brokers) = brokers("kafka partition mismatch") else {
        return;
    };
    let mut options = options(&brokers, 3);
    drop(KafkaBus::open(options.clone()).await.unwrap());
    options.partitions = 5;
    let Err(err) = KafkaBus::open(options.clone()).await else {
        panic!("a topic of 3 partitions opened as 5");
    };
    let msg = err.to_string();
    for part in [
        options.topic.as_str(),
        "has 3 partitions",
        "5 are configured",
    ] {
        assert!(msg.contains(part), "{part:?} missing from {msg}");
    }
}

/// No broker at the address: open fails within the connect timeout, naming the address.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_broker_is_named() {
    // Needs no broker; runs with the others so it is not skipped silently either.
    let mut options = KafkaOptions::new("127.0.0.1:1", "credence-nowhere");
    options.connect_timeout = Duration::from_secs(2);
    let Err(err) = KafkaBus::open(options).await else {
        panic!("opened a bus with no broker");
    };
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}
