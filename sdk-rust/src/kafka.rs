//! A producer that writes events straight to the node's Kafka topic (feature `kafka`), for
//! producers that would rather not go through a node: the node scores what it finds on the
//! topic exactly as what it accepted over gRPC.
//!
//! Each event goes to the partition the published partitioner
//! ([`credence_proto::partition_of`]) picks for its subject, never through Kafka's own key
//! partitioner, so the node and every producer agree; the record is the `credence.v1.Event`
//! the node itself writes, `received_at` set to the time of sending. The producer is
//! idempotent (`enable.idempotence`, `acks=all`): a retry inside the client never writes a
//! record twice.
//!
//! What the node's ingestion checks and this does not: subjects that do not exist (with
//! `auto_create_subjects` off), recent duplicates, and the node's size and time limits. An
//! event the pipeline cannot score is archived as not applied (a duplicate id within the
//! subject's window, an unknown subject) or parked as a dead letter (unreadable), never
//! lost and never scored twice.

use std::time::Duration;

use prost::Message as _;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

use crate::ingestion::Event;
use crate::{Error, Result};

/// Where an event landed on the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The topic partition (the node's bus partition).
    pub partition: u32,
    /// The record's offset in it.
    pub offset: u64,
}

/// Builds a [`KafkaProducer`]; see [`KafkaProducer::builder`].
#[derive(Clone, Debug)]
pub struct KafkaProducerBuilder {
    brokers: String,
    topic: String,
    timeout: Duration,
    linger: Duration,
}

impl KafkaProducerBuilder {
    /// Longest wait for the brokers at connect and for each record's acknowledgement
    /// (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long records wait to fill a batch (default 5 ms).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Connects and reads the topic's partition count. A topic that does not exist is an
    /// error (the node creates it at its start; this never does).
    pub async fn connect(self) -> Result<KafkaProducer> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", "credence-sdk");
        let metadata_client: BaseConsumer = config.create().map_err(|e| self.refused(&e))?;
        let (topic, timeout) = (self.topic.clone(), self.timeout);
        let partitions = tokio::task::spawn_blocking(move || {
            metadata_client.fetch_metadata(None, timeout).map(|m| {
                m.topics()
                    .iter()
                    .find(|t| t.name() == topic)
                    .map(|t| t.partitions().len() as u32)
            })
        })
        .await
        .map_err(|e| Error::Input(format!("reading the Kafka metadata: {e}")))?
        .map_err(|e| self.refused(&e))?;
        let partitions = match partitions {
            Some(n) if n > 0 => n,
            _ => {
                return Err(Error::Input(format!(
                    "the Kafka topic {:?} does not exist at {}; start a node on it first (it \
                     creates the topic) or check storage.kafka.topic",
                    self.topic, self.brokers
                )));
            }
        };
        let producer: FutureProducer = config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", self.linger.as_millis().to_string())
            .set("message.timeout.ms", self.timeout.as_millis().to_string())
            .create()
            .map_err(|e| self.refused(&e))?;
        Ok(KafkaProducer {
            producer,
            topic: self.topic,
            partitions,
            timeout: self.timeout,
        })
    }

    fn refused(&self, e: &rdkafka::error::KafkaError) -> Error {
        Error::Connect {
            url: self.brokers.clone(),
            message: format!("Kafka: {e}"),
        }
    }
}

/// Writes events straight to the node's Kafka topic, partitioned as the node partitions.
///
/// ```no_run
/// use credence::{Event, KafkaProducer};
///
/// # async fn run() -> credence::Result<()> {
/// // A node on `deploy/local/cluster.toml` reads this topic (`make cluster`).
/// let producer = KafkaProducer::builder("127.0.0.1:9092", "credence.events")
///     .connect()
///     .await?;
/// let event = Event::new("e-1", "subject-0001", "financial", chrono::Utc::now())
///     .subtype("late_payment")
///     .payload(serde_json::json!({"days_late": 45}));
/// for outcome in producer.send(&[event]).await {
///     let delivery = outcome?;
///     println!("partition {} offset {}", delivery.partition, delivery.offset);
/// }
/// producer.flush().await?;
/// # Ok(())
/// # }
/// ```
pub struct KafkaProducer {
    producer: FutureProducer,
    topic: String,
    partitions: u32,
    timeout: Duration,
}

impl std::fmt::Debug for KafkaProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaProducer")
            .field("topic", &self.topic)
            .field("partitions", &self.partitions)
            .finish_non_exhaustive()
    }
}

impl KafkaProducer {
    /// A builder for the topic `topic` (the node's `storage.kafka.topic`) on the bootstrap
    /// brokers `brokers` (`host:port[,host:port...]`).
    pub fn builder(brokers: impl Into<String>, topic: impl Into<String>) -> KafkaProducerBuilder {
        KafkaProducerBuilder {
            brokers: brokers.into(),
            topic: topic.into(),
            timeout: Duration::from_secs(30),
            linger: Duration::from_millis(5),
        }
    }

    /// The topic's partition count, read at connect.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Sends events and waits for every acknowledgement; one outcome per event, in order.
    /// An event without an id, subject or type is refused here with
    /// [`Error::Input`] naming the field, and the others go on. Events of one subject land
    /// in one partition in the order given.
    pub async fn send(&self, events: &[Event]) -> Vec<Result<Delivery>> {
        self.send_proto(events.iter().map(Event::to_proto).collect())
            .await
    }

    /// [`KafkaProducer::send`] for events already in their generated form
    /// ([`crate::proto::Event`]); their `received_at` is set here.
    pub async fn send_proto(
        &self,
        events: Vec<credence_proto::v1::Event>,
    ) -> Vec<Result<Delivery>> {
        let received_at = Some(crate::time::timestamp(chrono::Utc::now()));
        let pending: Vec<_> = events
            .into_iter()
            .enumerate()
            .map(|(i, mut record)| {
                if let Some(missing) = missing_field(&record) {
                    return Err(Error::Input(format!(
                        "events[{i}] (id {:?}): {missing} is required",
                        record.event_id
                    )));
                }
                record.received_at = received_at;
                let partition = credence_proto::partition_of(&record.subject_id, self.partitions);
                let payload = record.encode_to_vec();
                let sent = self.producer.send_result(
                    FutureRecord::<(), _>::to(&self.topic)
                        .partition(partition as i32)
                        .payload(&payload),
                );
                sent.map_err(|(e, _)| Error::Unavailable {
                    message: format!("Kafka refused events[{i}]: {e}"),
                    attempts: 1,
                })
            })
            .collect();
        let mut out = Vec::with_capacity(pending.len());
        for (i, sent) in pending.into_iter().enumerate() {
            out.push(match sent {
                Err(e) => Err(e),
                Ok(delivery) => match delivery.await {
                    Ok(Ok(d)) => Ok(Delivery {
                        partition: d.partition as u32,
                        offset: d.offset as u64,
                    }),
                    Ok(Err((e, _))) => Err(Error::Unavailable {
                        message: format!("Kafka did not acknowledge events[{i}]: {e}"),
                        attempts: 1,
                    }),
                    Err(_) => Err(Error::Unavailable {
                        message: format!("events[{i}]: the Kafka producer closed"),
                        attempts: 1,
                    }),
                },
            });
        }
        out
    }

    /// Waits until every record sent is acknowledged (or the timeout passes).
    pub async fn flush(&self) -> Result<()> {
        let producer = self.producer.clone();
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || producer.flush(timeout))
            .await
            .map_err(|e| Error::Input(format!("flushing the Kafka producer: {e}")))?
            .map_err(|e| Error::Unavailable {
                message: format!("flushing the Kafka producer: {e}"),
                attempts: 1,
            })
    }
}

/// The first required field an event lacks, as the contract names it.
fn missing_field(event: &credence_proto::v1::Event) -> Option<&'static str> {
    if event.event_id.is_empty() {
        Some("event_id")
    } else if event.subject_id.is_empty() {
        Some("subject_id")
    } else if event.event_type.is_empty() {
        Some("event_type")
    } else {
        None
    }
}
