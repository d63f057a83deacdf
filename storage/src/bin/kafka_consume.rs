//! The raw consume rate of a Kafka topic, next to the rate at which the Kafka bus reads it.
//!
//! `cargo run --release -p credence-storage --features kafka --bin kafka_consume -- BROKERS TOPIC`
//!
//! 1. **rdkafka, no processing**: one consumer (no group) assigned every partition from the
//!    beginning, every message taken from one stream and counted with its bytes, until each
//!    partition's end (as it was at the start) is reached. Nothing is decoded or copied.
//! 2. **The bus**: `KafkaBus::read` from offset 0 to the same ends, one task per partition in
//!    micro-batches of 8,192 (as the pipeline's workers read), payloads copied out as the
//!    bus hands them over.
//!
//! Run it on a topic a node has just filled (`docs/BENCHMARKS.md` says how).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use credence_storage::Bus as _;
use credence_storage::kafka::{KafkaBus, KafkaOptions};
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [brokers, topic] = args.as_slice() else {
        return Err("usage: kafka_consume BROKERS TOPIC".into());
    };
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "credence-bench-raw")
        .set("enable.auto.commit", "false")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .ok_or("no such topic")?;
    let partitions = i32::try_from(partitions)?;
    let mut ends = BTreeMap::new();
    for p in 0..partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
        ends.insert(p, high);
    }
    let total: i64 = ends.values().sum();
    println!("topic {topic}: {partitions} partitions, {total} records");

    // 1. rdkafka alone.
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&list)?;
    let started = Instant::now();
    let (mut count, mut bytes) = (0i64, 0usize);
    let mut left: BTreeMap<i32, i64> = ends
        .iter()
        .filter(|(_, e)| **e > 0)
        .map(|(p, e)| (*p, *e))
        .collect();
    while !left.is_empty() {
        let message = consumer.recv().await?;
        count += 1;
        bytes += message.payload_len();
        if let Some(end) = left.get(&message.partition())
            && message.offset() + 1 >= *end
        {
            left.remove(&message.partition());
        }
    }
    report("rdkafka, no processing", count, bytes, started.elapsed());
    drop(consumer);

    // 2. Through the bus.
    let mut options = KafkaOptions::new(brokers, topic);
    options.partitions = u32::try_from(partitions)?;
    options.group_id = "credence-bench-bus".into();
    let bus = Arc::new(KafkaBus::open(options).await?);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (p, end) in ends {
        let bus = Arc::clone(&bus);
        let (p, end) = (u32::try_from(p)?, u64::try_from(end)?);
        tasks.push(tokio::spawn(async move {
            let (mut next, mut bytes) = (0u64, 0usize);
            while next < end {
                let records = bus.read(p, next, 8_192).await?;
                if let Some((last, _)) = records.last() {
                    next = last + 1;
                }
                bytes += records.iter().map(|(_, r)| r.len()).sum::<usize>();
            }
            Ok::<_, credence_storage::StorageError>((next, bytes))
        }));
    }
    let (mut count, mut bytes) = (0i64, 0usize);
    for task in tasks {
        let (n, b) = task.await??;
        count += i64::try_from(n)?;
        bytes += b;
    }
    report(
        "KafkaBus::read, a task per partition",
        count,
        bytes,
        started.elapsed(),
    );
    Ok(())
}

fn report(what: &str, count: i64, bytes: usize, took: Duration) {
    #[allow(clippy::cast_precision_loss, reason = "a rate to print")]
    let (rate, mb) = (
        count as f64 / took.as_secs_f64(),
        bytes as f64 / took.as_secs_f64() / 1e6,
    );
    println!(
        "{what}: {count} records, {bytes} bytes in {took:.2?}: {rate:.0} records/s, {mb:.1} MB/s"
    );
}
