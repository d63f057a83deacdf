//! Kafka (Redpanda's protocol) through `rdkafka`, against the live server in
//! `CREDENCE_TEST_KAFKA` (host:port). See docs/STACK.md.
#![cfg(feature = "kafka")]

#[path = "common/stack.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{TestResult, endpoint, unique};
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::Offset;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

const PARTITIONS: i32 = 6;
const MESSAGES: usize = 120;
const FIRST_RUN: usize = 50;

fn consumer(
    brokers: &str,
    group: &str,
    topic: &str,
) -> Result<StreamConsumer, rdkafka::error::KafkaError> {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()?;
    c.subscribe(&[topic])?;
    Ok(c)
}

/// Receive up to `n` messages (bounded by a deadline), committing each one synchronously.
async fn consume_and_commit(
    c: &StreamConsumer,
    n: usize,
) -> Result<Vec<(i32, i64, String)>, Box<dyn std::error::Error + Send + Sync>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "only {} of {n} messages arrived within 60 s",
            got.len()
        );
        let Ok(msg) = tokio::time::timeout(left, c.recv()).await else {
            continue;
        };
        let msg = msg?;
        let key = String::from_utf8(msg.key().unwrap_or_default().to_vec())?;
        got.push((msg.partition(), msg.offset(), key));
        c.commit_message(&msg, CommitMode::Sync)?;
    }
    Ok(got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_topic_idempotent_produce_group_commit_and_resume() -> TestResult {
    let Some(brokers) = endpoint("CREDENCE_TEST_KAFKA", "kafka round trip") else {
        return Ok(());
    };
    let topic = format!("credence-test-{}", unique());
    let group = format!("{topic}-group");

    // A topic with 6 partitions.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let created = admin
        .create_topics(
            &[NewTopic::new(
                &topic,
                PARTITIONS,
                TopicReplication::Fixed(1),
            )],
            &opts,
        )
        .await?;
    assert_eq!(created.len(), 1);
    if let Err((name, code)) = &created[0] {
        panic!("create topic {name}: {code}");
    }
    let md = admin
        .inner()
        .fetch_metadata(Some(&topic), Duration::from_secs(10))?;
    assert_eq!(md.topics()[0].partitions().len(), PARTITIONS as usize);

    // Idempotent producer with acks=all; keys spread the events over the partitions.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()?;
    let mut produced = BTreeSet::new();
    for i in 0..MESSAGES {
        let key = format!("subject-{i:04}");
        let payload = format!(r#"{{"subject":"{key}","kind":"login","score":{i}}}"#);
        let delivery = producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
        assert!((0..PARTITIONS).contains(&delivery.partition));
        assert!(delivery.offset >= 0);
        produced.insert((delivery.partition, delivery.offset, key));
    }
    assert_eq!(
        produced.len(),
        MESSAGES,
        "every message has its own (partition, offset)"
    );
    let used: BTreeSet<i32> = produced.iter().map(|(p, _, _)| *p).collect();
    assert!(
        used.len() > 1,
        "keys should spread over several partitions, got {used:?}"
    );

    // First consumer: read part of the topic, committing each message by hand.
    let first = {
        let c = consumer(&brokers, &group, &topic)?;
        let got = consume_and_commit(&c, FIRST_RUN).await?;
        c.unsubscribe();
        got
    }; // dropped: the consumer leaves the group

    // The committed offsets are exactly one past the last message read per partition.
    let mut expected_committed: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o, _) in &first {
        let e = expected_committed.entry(*p).or_insert(0);
        *e = (*e).max(o + 1);
    }

    // Second consumer, same group: it resumes at the committed offsets.
    let c = consumer(&brokers, &group, &topic)?;
    let second = consume_and_commit(&c, MESSAGES - FIRST_RUN).await?;
    let committed = c.committed(Duration::from_secs(10))?;
    for (p, want) in &expected_committed {
        // After the second run the commit has moved on; what it resumed at is checked below.
        let elem = committed
            .find_partition(&topic, *p)
            .expect("partition in committed list");
        match elem.offset() {
            Offset::Offset(o) => assert!(o >= *want, "partition {p}: committed {o} < {want}"),
            other => panic!("partition {p}: no committed offset ({other:?})"),
        }
    }
    for (p, want) in &expected_committed {
        let first_after_restart = second
            .iter()
            .filter(|(q, _, _)| q == p)
            .map(|(_, o, _)| *o)
            .min();
        if let Some(o) = first_after_restart {
            assert_eq!(
                o, *want,
                "partition {p}: resumed at {o}, committed was {want}"
            );
        }
    }

    // Together the two runs read every message exactly once: nothing lost, nothing re-read.
    let mut all: Vec<_> = first.into_iter().chain(second).collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(
        before,
        all.len(),
        "a committed message was delivered again after the restart"
    );
    let all: BTreeSet<_> = all.into_iter().collect();
    assert_eq!(all, produced);

    admin.delete_topics(&[&topic], &opts).await?;
    Ok(())
}
