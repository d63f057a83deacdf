//! The reader: reads any partition from any offset, with one consumer that belongs to no
//! group (manual assignment only).
//!
//! Each partition's messages go to a queue of their own, split off at open and kept for the
//! life of the reader: a split queue that is dropped leaves its partition's messages where
//! nobody reads them, and the partition stalls. A partition is assigned on its first read,
//! at the offset asked for; a cursor remembers the offset its queue yields next, so the
//! pipeline's sequential reads stream from what was prefetched, and a read anywhere else is
//! a seek (which discards what the queue held).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use rdkafka::Message as _;
use rdkafka::Offset;
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{Consumer as _, DefaultConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tokio::sync::watch;

use super::{KafkaOptions, backend, kafka_partition, partition_list};
use crate::error::{Result, StorageError};

/// How long a read waits for records it knows exist (the end says so) before it returns
/// what it has; the caller reads again.
const READ_WAIT: Duration = Duration::from_secs(1);

/// One partition's queue and where it stands.
struct Cursor {
    queue: StreamPartitionQueue<DefaultConsumerContext>,
    /// The offset the queue yields next; `None` before the first read or after an error.
    next: Option<u64>,
    assigned: bool,
}

/// See the module docs.
pub(super) struct Reader {
    consumer: Arc<StreamConsumer>,
    topic: String,
    cursors: Vec<tokio::sync::Mutex<Cursor>>,
    /// Serves the consumer's main queue (errors, logs); nothing else arrives there.
    events: Option<tokio::task::JoinHandle<()>>,
}

impl Reader {
    /// A reader of `options.partitions` partitions (not assigned yet: nothing is fetched
    /// until a read asks).
    pub(super) fn open(options: &KafkaOptions) -> Result<Self> {
        let consumer: StreamConsumer = options
            .client("-reader")
            // librdkafka assigns partitions only to a consumer with a group id; this one
            // never subscribes or commits, so it never joins the group.
            .set("group.id", format!("{}.reader", options.group_id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // An offset below the log start is an error, never a silent jump.
            .set("auto.offset.reset", "error")
            .set(
                "queued.max.messages.kbytes",
                options.fetch_queue_kbytes.to_string(),
            )
            .set("fetch.wait.max.ms", "100")
            .create()
            .map_err(|e| backend("creating the Kafka reader", &e))?;
        let consumer = Arc::new(consumer);
        let cursors = (0..options.partitions)
            .map(|p| {
                consumer
                    .split_partition_queue(&options.topic, kafka_partition(p))
                    .map(|queue| {
                        tokio::sync::Mutex::new(Cursor {
                            queue,
                            next: None,
                            assigned: false,
                        })
                    })
                    .ok_or_else(|| {
                        StorageError::Invalid(format!(
                            "cannot read partition {p} of the Kafka topic {:?}",
                            options.topic
                        ))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let main = Arc::clone(&consumer);
        let events = tokio::spawn(async move {
            loop {
                match main.recv().await {
                    Ok(m) => tracing::warn!(
                        partition = m.partition(),
                        offset = m.offset(),
                        "a Kafka record reached the reader's main queue; ignored"
                    ),
                    Err(e) => tracing::warn!(error = %e, "kafka reader"),
                }
            }
        });
        Ok(Self {
            consumer,
            topic: options.topic.clone(),
            cursors,
            events: Some(events),
        })
    }

    /// Every topic's name and partition count (blocking).
    pub(super) fn metadata(
        &self,
        timeout: Duration,
    ) -> std::result::Result<Vec<(String, u32)>, KafkaError> {
        let metadata = self.consumer.fetch_metadata(None, timeout)?;
        Ok(metadata
            .topics()
            .iter()
            .map(|t| {
                (
                    t.name().to_owned(),
                    u32::try_from(t.partitions().len()).unwrap_or(u32::MAX),
                )
            })
            .collect())
    }

    /// The end (the next offset) of partitions `0..partitions`, in one request (blocking).
    pub(super) fn ends(&self, partitions: usize, timeout: Duration) -> Result<Vec<(usize, u64)>> {
        let all: Vec<u32> = (0..u32::try_from(partitions).unwrap_or(u32::MAX)).collect();
        let latest = partition_list(&self.topic, &all, Offset::End)?;
        let found = self
            .consumer
            .offsets_for_times(latest, timeout)
            .map_err(|e| {
                StorageError::Unavailable(format!(
                    "asking Kafka for the ends of topic {}: {e}",
                    self.topic
                ))
            })?;
        Ok(found
            .elements_for_topic(&self.topic)
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(end) => Some((
                    usize::try_from(e.partition()).ok()?,
                    u64::try_from(end).ok()?,
                )),
                _ => None,
            })
            .collect())
    }

    /// The first offset `partition` still holds (its low watermark; blocking).
    pub(super) fn start(&self, partition: u32, timeout: Duration) -> Result<u64> {
        let (low, _) = self
            .consumer
            .fetch_watermarks(&self.topic, kafka_partition(partition), timeout)
            .map_err(|e| {
                StorageError::Unavailable(format!(
                    "asking Kafka where partition {partition} of topic {} starts: {e}",
                    self.topic
                ))
            })?;
        Ok(u64::try_from(low).unwrap_or(0))
    }

    /// Up to `max` records of `partition` from `from` on. Returns at once when `from` is at
    /// or past `end`; otherwise waits (up to [`READ_WAIT`]) for at least one record, and
    /// takes every record up to the end known by then.
    pub(super) async fn read(
        &self,
        partition: u32,
        from: u64,
        max: usize,
        end: watch::Receiver<u64>,
    ) -> Result<Vec<(u64, Vec<u8>)>> {
        let Some(cursor) = self.cursors.get(partition as usize) else {
            let partitions = u32::try_from(self.cursors.len()).unwrap_or(u32::MAX);
            return Err(super::no_such_partition(partition, partitions));
        };
        if max == 0 || from >= *end.borrow() {
            return Ok(Vec::new());
        }
        let mut cursor = cursor.lock().await;
        if cursor.next != Some(from) {
            self.position(&mut cursor, partition, from)?;
        }
        let Cursor { queue, next, .. } = &mut *cursor;
        let mut stream = queue.stream();
        let mut out = Vec::new();
        let mut at = from;
        let mut gone_at = None;
        while out.len() < max && at < *end.borrow() {
            let Ok(Some(message)) = tokio::time::timeout(READ_WAIT, stream.next()).await else {
                break;
            };
            match message {
                Ok(m) => {
                    let Ok(offset) = u64::try_from(m.offset()) else {
                        continue;
                    };
                    // Left over from before a seek: skip.
                    if offset < at {
                        continue;
                    }
                    out.push((offset, m.payload().unwrap_or_default().to_vec()));
                    at = offset + 1;
                    // Kept up to date record by record, so a read dropped half-way leaves
                    // a cursor that tells the truth.
                    *next = Some(at);
                }
                Err(e) if gone(&e) => {
                    gone_at = Some(e);
                    break;
                }
                Err(e) => {
                    // Transient (a broker restarting): librdkafka fetches again by itself.
                    tracing::warn!(partition, error = %e, "reading from Kafka");
                    if !out.is_empty() {
                        break;
                    }
                }
            }
        }
        drop(stream);
        if let Some(e) = gone_at {
            // The partition's fetcher stopped at the error: the next read assigns it anew.
            self.unassign(&mut cursor, partition)?;
            return Err(StorageError::Backend(format!(
                "records of partition {partition} of the Kafka topic {} from offset {at} on \
                 are gone ({e}): deleted by retention before they were scored, or the topic \
                 was recreated. Those events are lost to scoring; to go on, move the \
                 partition's committed offset past them",
                self.topic
            )));
        }
        Ok(out)
    }

    /// Takes the partition away from the reader; the next read assigns it at its offset.
    fn unassign(&self, cursor: &mut Cursor, partition: u32) -> Result<()> {
        cursor.next = None;
        cursor.assigned = false;
        let list = partition_list(&self.topic, &[partition], Offset::Invalid)?;
        self.consumer
            .incremental_unassign(&list)
            .map_err(|e| backend("repositioning the Kafka reader", &e))
    }

    /// Points the partition's queue at `from`: an assignment the first time, a seek later.
    fn position(&self, cursor: &mut Cursor, partition: u32, from: u64) -> Result<()> {
        let offset = Offset::Offset(i64::try_from(from).map_err(|_| {
            StorageError::Invalid(format!("offset {from} is past what Kafka can hold"))
        })?);
        cursor.next = None;
        if cursor.assigned {
            let seek = self.consumer.seek(
                &self.topic,
                kafka_partition(partition),
                offset,
                Duration::ZERO,
            );
            if seek.is_ok() {
                cursor.next = Some(from);
                return Ok(());
            }
            // Not in a state to seek: assign it again at the offset.
            self.unassign(cursor, partition)?;
        }
        let list = partition_list(&self.topic, &[partition], offset)?;
        self.consumer
            .incremental_assign(&list)
            .map_err(|e| backend("assigning a partition to the Kafka reader", &e))?;
        cursor.assigned = true;
        cursor.next = Some(from);
        Ok(())
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(events) = self.events.take() {
            events.abort();
        }
    }
}

/// Whether a consume error means the records asked for no longer exist.
fn gone(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset)
    )
}
