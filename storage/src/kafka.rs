//! The Kafka bus: the [`Bus`] role on Apache Kafka (or anything that speaks its protocol,
//! such as Redpanda) through `rdkafka`.
//!
//! **One topic, partitioned by subject.** Every event goes to one topic whose partitions are
//! the bus partitions; a record is produced to an explicit partition, the one the published
//! partitioner (`credence_proto::partition_of`) picked, never through Kafka's own key
//! partitioner, so anything writing straight to the topic agrees with the node.
//!
//! **Three clients, each with one job**, so that no job can stall another:
//! - an idempotent producer (`enable.idempotence`, `acks=all`) answers each record of an
//!   append on its own (a delivery report per record), in the order given per partition;
//! - a reader consumer (no group membership, manual assignment) serves [`Bus::read`] from any
//!   offset: each partition has its own queue, split off once at open and kept for the life
//!   of the bus (dropping a split queue would leave its partition's messages where nobody
//!   reads them), and a cursor, so sequential reads stream from the prefetched queue and any
//!   other offset is a seek;
//! - a group consumer ([`Bus::rebalances`]), cooperative-sticky, used only for membership:
//!   it is polled by a thread of its own (rebalance callbacks only run while the main queue
//!   is polled, and a revoke has to wait for the pipeline), its partitions are paused (it
//!   never fetches data), and it commits the pipeline's positions to Kafka for monitoring
//!   only, for partitions it still holds, in the revoke callback before giving them up
//!   (committing after the revoke fails).
//!
//! The offset that counts is the one the pipeline commits with the state in the store; the
//! committed offsets of the Kafka group are never read back.

mod group;
mod reader;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};

use crate::bus::{Bus, BusHealth, BusRecord, Rebalance};
use crate::error::{Result, StorageError};

/// How to reach and use the Kafka bus. [`KafkaOptions::new`] gives the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaOptions {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The events topic (created at open when absent).
    pub topic: String,
    /// Partitions of the topic: used to create it, and checked against an existing one.
    pub partitions: u32,
    /// Replication factor of a topic created at open.
    pub replication_factor: u16,
    /// The consumer group of the nodes that score this topic.
    pub group_id: String,
    /// `client.id` of every client (the reader and the group consumer add a suffix).
    pub client_id: String,
    /// Static group membership (`group.instance.id`): a node restarted with the same id
    /// takes its partitions back at once instead of after the session timeout. Empty: dynamic.
    pub instance_id: String,
    /// How long open waits for the brokers (metadata, topic creation).
    pub connect_timeout: Duration,
    /// Group session timeout: a node that stops heartbeating loses its partitions after it.
    pub session_timeout: Duration,
    /// Longest wait, in a revoke, for the pipeline to stop the partitions' workers; past it
    /// the partitions go anyway (commit fencing stops a late write).
    pub revoke_timeout: Duration,
    /// Longest time a record may take to be acknowledged (`message.timeout.ms`); then it is
    /// refused and may be retried.
    pub delivery_timeout: Duration,
    /// Producer `linger.ms`: how long records wait to fill a batch.
    pub linger: Duration,
    /// Producer `batch.size`: bytes of one batch per partition.
    pub batch_bytes: u32,
    /// Producer `batch.num.messages`: records of one batch.
    pub batch_records: u32,
    /// Reader prefetch per partition (`queued.max.messages.kbytes`).
    pub fetch_queue_kbytes: u32,
    /// How often the ends of the partitions are asked from the brokers (records appended by
    /// other producers are seen within this; this process's own appends at once).
    pub end_refresh: Duration,
}

impl KafkaOptions {
    /// Options for `brokers` and `topic`, with defaults for everything else.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            topic: topic.into(),
            partitions: 4,
            replication_factor: 1,
            group_id: "credence".into(),
            client_id: "credence".into(),
            instance_id: String::new(),
            connect_timeout: Duration::from_secs(10),
            session_timeout: Duration::from_secs(10),
            revoke_timeout: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(30),
            linger: Duration::from_millis(5),
            batch_bytes: 1 << 20,
            batch_records: 10_000,
            fetch_queue_kbytes: 16 << 10,
            end_refresh: Duration::from_millis(100),
        }
    }

    /// Settings every client shares.
    fn client(&self, suffix: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", format!("{}{suffix}", self.client_id))
            .set(
                "socket.connection.setup.timeout.ms",
                millis(self.connect_timeout),
            );
        config
    }
}

/// Milliseconds, as Kafka settings take them.
fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

/// A librdkafka partition number from a bus partition (bus partitions are below 2^31: the
/// topic's count is an `i32`).
fn kafka_partition(p: u32) -> i32 {
    i32::try_from(p).unwrap_or(i32::MAX)
}

/// Produces with the producer's fatal errors turned into [`BusHealth::Failed`].
struct ProducerContext {
    health: watch::Sender<BusHealth>,
}

impl ClientContext for ProducerContext {
    fn error(&self, error: KafkaError, reason: &str) {
        // An idempotent producer that hits a fatal error (a sequence gap it cannot explain,
        // a fenced producer id) refuses every record from then on: say so for good.
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            tracing::error!(%reason, "the Kafka producer failed for good");
            self.health.send_replace(BusHealth::Failed(format!(
                "the Kafka producer hit a fatal error and takes no more events: {reason}. \
                 Restart the node"
            )));
        } else {
            tracing::warn!(%error, %reason, "kafka producer");
        }
    }
}

/// The ends of the partitions, shared by the appends, the end refresher and the readers.
struct Ends(Vec<watch::Sender<u64>>);

impl Ends {
    /// Moves the end of `p` up to `end` (never down).
    fn raise(&self, p: usize, end: u64) {
        if let Some(tx) = self.0.get(p) {
            tx.send_if_modified(|e| {
                let moved = end > *e;
                if moved {
                    *e = end;
                }
                moved
            });
        }
    }
}

/// The Kafka bus. See the module docs.
pub struct KafkaBus {
    options: KafkaOptions,
    producer: FutureProducer<ProducerContext>,
    reader: Arc<reader::Reader>,
    ends: Arc<Ends>,
    health: watch::Receiver<BusHealth>,
    /// Per partition, the offset the pipeline last read from (`u64::MAX`: none): what the
    /// group commits to Kafka, for monitoring.
    positions: Arc<Vec<AtomicU64>>,
    /// The group membership, once [`Bus::rebalances`] started it.
    group: Mutex<Option<group::Membership>>,
    /// Tells the background threads to end.
    stop: Arc<AtomicBool>,
}

impl KafkaBus {
    /// Connects to the brokers, creates the topic when it does not exist (with
    /// `options.partitions` partitions), checks the partition count of an existing one, and
    /// learns the end of every partition. Fails, naming the brokers, when none answers
    /// within `connect_timeout`; fails when the topic has another partition count.
    pub async fn open(options: KafkaOptions) -> Result<Self> {
        if options.partitions == 0 || i32::try_from(options.partitions).is_err() {
            return Err(StorageError::Invalid(format!(
                "a Kafka topic needs 1 to {} partitions, not {}",
                i32::MAX,
                options.partitions
            )));
        }
        let reader = Arc::new(reader::Reader::open(&options)?);
        ensure_topic(&options, &reader).await?;
        let ends = Arc::new(Ends(
            (0..options.partitions)
                .map(|_| watch::channel(0).0)
                .collect(),
        ));
        first_ends(&options, &reader, &ends).await?;
        let (health_tx, health) = watch::channel(BusHealth::Serving);
        let producer: FutureProducer<ProducerContext> = options
            .client("")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", millis(options.linger))
            .set("batch.size", options.batch_bytes.to_string())
            .set("batch.num.messages", options.batch_records.to_string())
            .set("message.timeout.ms", millis(options.delivery_timeout))
            .create_with_context(ProducerContext { health: health_tx })
            .map_err(|e| backend("creating the Kafka producer", &e))?;
        let stop = Arc::new(AtomicBool::new(false));
        spawn_end_refresher(&options, &reader, &ends, &stop)?;
        Ok(Self {
            positions: Arc::new(
                (0..options.partitions)
                    .map(|_| AtomicU64::new(u64::MAX))
                    .collect(),
            ),
            options,
            producer,
            reader,
            ends,
            health,
            group: Mutex::new(None),
            stop,
        })
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.options.topic
    }

    fn failed(&self) -> Option<StorageError> {
        match &*self.health.borrow() {
            BusHealth::Serving => None,
            BusHealth::Failed(reason) => Some(StorageError::Unavailable(reason.clone())),
        }
    }

    /// Hands one record to the producer, waiting while its queue is full (up to the
    /// delivery timeout); the delivery report answers later.
    async fn enqueue(&self, record: &BusRecord, deadline: Instant) -> Result<DeliveryFuture> {
        loop {
            let sent = self.producer.send_result(
                FutureRecord::<(), [u8]>::to(&self.options.topic)
                    .partition(kafka_partition(record.partition))
                    .payload(&record.payload),
            );
            match sent {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _))
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err((e, _)) => return Err(refused(record.partition, &e)),
            }
        }
    }
}

impl Drop for KafkaBus {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A record the producer would not take or the brokers did not acknowledge.
fn refused(partition: u32, e: &KafkaError) -> StorageError {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge) => StorageError::Invalid(format!(
            "Kafka refused a record of bus partition {partition}: {e} (over the topic's or \
             the producer's message size limit)"
        )),
        _ => StorageError::Unavailable(format!(
            "Kafka did not take a record of bus partition {partition}: {e}; it may be retried"
        )),
    }
}

/// A partition past the topic's.
fn no_such_partition(partition: u32, partitions: u32) -> StorageError {
    StorageError::Invalid(format!(
        "partition {partition} does not exist (the bus has {partitions})"
    ))
}

fn backend(what: &str, e: &KafkaError) -> StorageError {
    StorageError::Backend(format!("{what}: {e}"))
}

/// Creates the topic if absent; checks the partition count of an existing one.
async fn ensure_topic(options: &KafkaOptions, reader: &Arc<reader::Reader>) -> Result<()> {
    let found = topic_partitions(options, reader).await?;
    let count = if let Some(count) = found {
        count
    } else {
        let admin: AdminClient<_> = options
            .client("-admin")
            .create()
            .map_err(|e| backend("creating the Kafka admin client", &e))?;
        let topic = NewTopic::new(
            &options.topic,
            kafka_partition(options.partitions),
            TopicReplication::Fixed(i32::from(options.replication_factor)),
        );
        let admin_options = AdminOptions::new().operation_timeout(Some(options.connect_timeout));
        let created = admin
            .create_topics([&topic], &admin_options)
            .await
            .map_err(|e| unreachable_brokers(options, &e))?;
        for result in created {
            match result {
                Ok(_) => tracing::info!(topic = %options.topic, partitions = options.partitions,
                    "created the bus topic"),
                // Another node created it at the same time: check what it made.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(StorageError::Backend(format!(
                        "creating the Kafka topic {name} with {} partitions failed: {code}",
                        options.partitions
                    )));
                }
            }
        }
        // Metadata can lag the creation by a moment.
        let deadline = Instant::now() + options.connect_timeout;
        loop {
            if let Some(count) = topic_partitions(options, reader).await? {
                break count;
            }
            if Instant::now() > deadline {
                return Err(StorageError::Unavailable(format!(
                    "the Kafka topic {} was created but its metadata did not show up within \
                     {:?}",
                    options.topic, options.connect_timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    if count != options.partitions {
        return Err(StorageError::Invalid(format!(
            "the Kafka topic {} has {count} partitions but {} are configured. A topic keeps its \
             partition count (adding partitions would move subjects to other partitions while \
             their events are in flight): configure {count}, or use a new topic",
            options.topic, options.partitions
        )));
    }
    Ok(())
}

/// The partition count of the topic, `None` when it does not exist. Asks for every topic's
/// metadata: asking for one by name can make a broker create it with its default count.
async fn topic_partitions(
    options: &KafkaOptions,
    reader: &Arc<reader::Reader>,
) -> Result<Option<u32>> {
    let reader = Arc::clone(reader);
    let (topic, timeout) = (options.topic.clone(), options.connect_timeout);
    let metadata = tokio::task::spawn_blocking(move || reader.metadata(timeout))
        .await
        .map_err(|e| StorageError::Backend(format!("reading the Kafka metadata: {e}")))?
        .map_err(|e| unreachable_brokers(options, &e))?;
    Ok(metadata
        .into_iter()
        .find(|(name, _)| *name == topic)
        .map(|(_, count)| count))
}

fn unreachable_brokers(options: &KafkaOptions, e: &KafkaError) -> StorageError {
    StorageError::Unavailable(format!(
        "cannot reach the Kafka brokers {} within {:?}: {e}. Check that they run and that the \
         address is right",
        options.brokers, options.connect_timeout
    ))
}

/// The ends at open. A topic just created may have no partition leaders yet (Kafka answers
/// "not leader for partition" for a moment), so a refusal is retried until
/// `connect_timeout`; the last one is returned after it.
async fn first_ends(
    options: &KafkaOptions,
    reader: &Arc<reader::Reader>,
    ends: &Arc<Ends>,
) -> Result<()> {
    let deadline = Instant::now() + options.connect_timeout;
    loop {
        let (reader, ends, timeout) = (
            Arc::clone(reader),
            Arc::clone(ends),
            options.connect_timeout,
        );
        let learned = tokio::task::spawn_blocking(move || refresh_ends(&reader, &ends, timeout))
            .await
            .map_err(|e| StorageError::Backend(format!("learning the partition ends: {e}")))?;
        match learned {
            Err(StorageError::Unavailable(why)) if Instant::now() < deadline => {
                tracing::debug!(%why, "the bus topic's partitions are not ready yet; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// Asks the brokers for the end of every partition and raises the watches.
fn refresh_ends(reader: &reader::Reader, ends: &Ends, timeout: Duration) -> Result<()> {
    for (p, end) in reader.ends(ends.0.len(), timeout)? {
        ends.raise(p, end);
    }
    Ok(())
}

/// A thread that refreshes the ends every `end_refresh` until the bus is dropped: records
/// other producers append (other nodes, clients writing to the topic) wake the pipeline.
fn spawn_end_refresher(
    options: &KafkaOptions,
    reader: &Arc<reader::Reader>,
    ends: &Arc<Ends>,
    stop: &Arc<AtomicBool>,
) -> Result<()> {
    let (reader, ends, stop) = (Arc::clone(reader), Arc::clone(ends), Arc::clone(stop));
    let (every, timeout) = (options.end_refresh, options.connect_timeout);
    std::thread::Builder::new()
        .name("credence-kafka-ends".into())
        .spawn(move || {
            let mut failing = false;
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(every);
                match refresh_ends(&reader, &ends, timeout) {
                    Ok(()) if failing => {
                        tracing::info!("the Kafka partition ends can be read again");
                        failing = false;
                    }
                    Err(e) if !failing => {
                        tracing::warn!(error = %e, "reading the Kafka partition ends failed");
                        failing = true;
                    }
                    // Said once per streak of failures.
                    Ok(()) | Err(_) => {}
                }
            }
        })
        .map(drop)
        .map_err(|e| StorageError::Backend(format!("cannot start the Kafka end refresher: {e}")))
}

#[async_trait]
impl Bus for KafkaBus {
    fn partitions(&self) -> u32 {
        self.options.partitions
    }

    /// Each record is produced to its partition and answered by its own delivery report:
    /// some may be taken while others are refused (a refused one may have been written all
    /// the same when its acknowledgement timed out; the engine's duplicate window catches a
    /// retry of it).
    async fn append(&self, records: Vec<BusRecord>) -> Result<Vec<Result<u64>>> {
        if let Some(failed) = self.failed() {
            return Err(failed);
        }
        if let Some(r) = records
            .iter()
            .find(|r| r.partition >= self.options.partitions)
        {
            return Err(StorageError::Invalid(format!(
                "partition {} does not exist (the bus has {})",
                r.partition, self.options.partitions
            )));
        }
        let deadline = Instant::now() + self.options.delivery_timeout;
        // Enqueued one after the other, so each partition's records keep their order (the
        // idempotent producer keeps it through retries).
        let mut deliveries = Vec::with_capacity(records.len());
        for record in &records {
            deliveries.push(self.enqueue(record, deadline).await);
        }
        let mut results = Vec::with_capacity(records.len());
        for (record, delivery) in records.iter().zip(deliveries) {
            let result = match delivery {
                Err(e) => Err(e),
                Ok(delivery) => match delivery.await {
                    Ok(Ok(delivered)) => u64::try_from(delivered.offset).map_err(|_| {
                        StorageError::Backend(format!(
                            "Kafka acknowledged a record of partition {} at offset {}",
                            record.partition, delivered.offset
                        ))
                    }),
                    Ok(Err((e, _))) => Err(refused(record.partition, &e)),
                    Err(_) => Err(StorageError::Unavailable(
                        "the Kafka producer stopped before acknowledging a record".into(),
                    )),
                },
            };
            if let Ok(offset) = result {
                self.ends.raise(record.partition as usize, offset + 1);
            }
            results.push(result);
        }
        Ok(results)
    }

    async fn read(&self, partition: u32, from: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>> {
        let Some(end) = self.ends.0.get(partition as usize) else {
            return Err(no_such_partition(partition, self.options.partitions));
        };
        if self.group.lock().is_some()
            && let Some(position) = self.positions.get(partition as usize)
        {
            // The pipeline reads a partition's next batch only once the previous one is
            // committed: where it reads from is its committed offset (for monitoring).
            position.store(from, Ordering::Relaxed);
        }
        self.reader
            .read(partition, from, max, end.subscribe())
            .await
    }

    async fn start(&self, partition: u32) -> Result<u64> {
        if partition >= self.options.partitions {
            return Err(no_such_partition(partition, self.options.partitions));
        }
        let (reader, timeout) = (Arc::clone(&self.reader), self.options.connect_timeout);
        tokio::task::spawn_blocking(move || reader.start(partition, timeout))
            .await
            .map_err(|e| StorageError::Backend(format!("asking where a partition starts: {e}")))?
    }

    fn end(&self, partition: u32) -> watch::Receiver<u64> {
        match self.ends.0.get(partition as usize) {
            Some(tx) => tx.subscribe(),
            None => watch::channel(0).1,
        }
    }

    /// Joins the consumer group (cooperative-sticky) on the first call and streams its
    /// assignments and revocations.
    fn rebalances(&self) -> Result<mpsc::Receiver<Rebalance>> {
        let mut group = self.group.lock();
        if group.is_some() {
            return Err(crate::bus::rebalances_taken());
        }
        let (membership, events) =
            group::Membership::join(&self.options, &self.positions, &self.stop)?;
        *group = Some(membership);
        Ok(events)
    }

    fn health(&self) -> watch::Receiver<BusHealth> {
        self.health.clone()
    }
}

/// The partitions of `topic` in a list.
fn partitions_of(list: &TopicPartitionList, topic: &str) -> Vec<u32> {
    list.elements_for_topic(topic)
        .iter()
        .filter_map(|e| u32::try_from(e.partition()).ok())
        .collect()
}

/// A list of `partitions` of `topic`, each at `offset`.
fn partition_list(topic: &str, partitions: &[u32], offset: Offset) -> Result<TopicPartitionList> {
    let mut list = TopicPartitionList::with_capacity(partitions.len());
    for &p in partitions {
        list.add_partition_offset(topic, kafka_partition(p), offset)
            .map_err(|e| backend("building a Kafka partition list", &e))?;
    }
    Ok(list)
}

impl KafkaBus {
    /// Waits up to `timeout` for every record handed to the producer to be acknowledged.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer
            .flush(timeout)
            .map_err(|e| backend("flushing the Kafka producer", &e))
    }
}
