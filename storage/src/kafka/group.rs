//! Group membership: which partitions this node scores.
//!
//! A consumer in the configured group, with cooperative-sticky (incremental) rebalancing, so
//! that only the partitions that move are named and the others keep scoring. Three rules
//! keep it out of the known traps:
//! - **A thread of its own polls it**, all the time. librdkafka runs rebalance callbacks only
//!   while the consumer's main queue is polled; a consumer polled by the pipeline would stall
//!   a rebalance whenever the pipeline was busy, and blocking the revoke callback (it waits
//!   for the pipeline's workers to stop) on a runtime thread could starve the very tasks it
//!   waits for.
//! - **It never fetches data.** Its partitions are assigned at the log end and paused at
//!   once; the bus reads through its own reader. So there is no partition queue here to drop.
//! - **It commits only what it holds.** The pipeline's positions (for monitoring only) are
//!   committed every few seconds for the partitions assigned at that moment, on this thread,
//!   and in the revoke callback before the partitions are given up; never after (a commit
//!   after a revoke fails), never for an assignment already lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer as _, ConsumerContext, RebalanceProtocol,
};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};

use super::{KafkaOptions, backend, partitions_of};
use crate::bus::Rebalance;
use crate::error::{Result, StorageError};

/// How often the membership thread polls (and so how soon it notices a stop).
const POLL: Duration = Duration::from_millis(100);
/// How often the pipeline's positions are committed to Kafka (monitoring only).
const COMMIT_EVERY: Duration = Duration::from_secs(5);

/// A running membership. The thread ends (leaving the group) when the bus is dropped.
pub(super) struct Membership {
    _thread: std::thread::JoinHandle<()>,
}

impl Membership {
    /// Subscribes to the topic in the group and starts the thread that polls; the receiver
    /// gets every assignment and revocation.
    pub(super) fn join(
        options: &KafkaOptions,
        positions: &Arc<Vec<AtomicU64>>,
        stop: &Arc<AtomicBool>,
    ) -> Result<(Self, mpsc::Receiver<Rebalance>)> {
        let (events, receiver) = mpsc::channel(1024);
        let context = GroupContext {
            topic: options.topic.clone(),
            events,
            revoke_timeout: options.revoke_timeout,
            stop: Arc::clone(stop),
            positions: Arc::clone(positions),
            held: Mutex::new(Vec::new()),
        };
        let mut config = options.client("-group");
        config
            .set("group.id", &options.group_id)
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", super::millis(options.session_timeout))
            // Well past the longest revoke, which blocks this thread's poll.
            .set(
                "max.poll.interval.ms",
                super::millis((options.revoke_timeout * 2).max(Duration::from_secs(60))),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        if !options.instance_id.is_empty() {
            config.set("group.instance.id", &options.instance_id);
        }
        let consumer: BaseConsumer<GroupContext> = config
            .create_with_context(context)
            .map_err(|e| backend("creating the Kafka group consumer", &e))?;
        consumer
            .subscribe(&[&options.topic])
            .map_err(|e| backend("subscribing to the Kafka topic", &e))?;
        let stop = Arc::clone(stop);
        let thread = std::thread::Builder::new()
            .name("credence-kafka-group".into())
            .spawn(move || run(&consumer, &stop))
            .map_err(|e| {
                StorageError::Backend(format!("cannot start the Kafka group thread: {e}"))
            })?;
        Ok((Self { _thread: thread }, receiver))
    }
}

/// Polls until the bus is dropped, committing positions now and then; dropping the consumer
/// at the end leaves the group.
fn run(consumer: &BaseConsumer<GroupContext>, stop: &AtomicBool) {
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if let Some(Err(e)) = consumer.poll(POLL) {
            tracing::warn!(error = %e, "kafka group consumer");
        }
        // Messages cannot come (every partition is paused); one that raced the pause is
        // dropped with the poll's result.
        if last_commit.elapsed() >= COMMIT_EVERY {
            last_commit = Instant::now();
            let held = consumer.context().held.lock().clone();
            consumer
                .context()
                .commit(consumer, &held, CommitMode::Async);
        }
    }
    tracing::info!("leaving the Kafka consumer group");
}

/// The membership's callbacks. They run on the membership thread only.
struct GroupContext {
    topic: String,
    events: mpsc::Sender<Rebalance>,
    revoke_timeout: Duration,
    stop: Arc<AtomicBool>,
    positions: Arc<Vec<AtomicU64>>,
    /// The partitions assigned now.
    held: Mutex<Vec<u32>>,
}

impl ClientContext for GroupContext {}

impl GroupContext {
    /// Commits the pipeline's positions of `partitions` (those it has read).
    fn commit(&self, consumer: &BaseConsumer<Self>, partitions: &[u32], mode: CommitMode) {
        let mut list = TopicPartitionList::new();
        for &p in partitions {
            let Some(position) = self.positions.get(p as usize) else {
                continue;
            };
            let at = position.load(Ordering::Relaxed);
            if let Ok(at) = i64::try_from(at) {
                let _ = list.add_partition_offset(
                    &self.topic,
                    super::kafka_partition(p),
                    Offset::Offset(at),
                );
            }
        }
        if list.count() == 0 {
            return;
        }
        if let Err(e) = consumer.commit(&list, mode) {
            tracing::debug!(error = %e, "committing monitoring offsets to Kafka");
        }
    }

    /// New partitions: paused at the log end (this consumer reads nothing), then announced.
    fn assign(&self, consumer: &BaseConsumer<Self>, list: &mut TopicPartitionList) {
        let partitions = partitions_of(list, &self.topic);
        let _ = list.set_all_offsets(Offset::End);
        let assigned = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_assign(list),
            _ => consumer.assign(list),
        };
        if let Err(e) = assigned {
            tracing::error!(error = %e, ?partitions, "taking assigned Kafka partitions");
            return;
        }
        if let Err(e) = consumer.pause(list) {
            tracing::warn!(error = %e, "pausing the group consumer's partitions");
        }
        self.held.lock().extend(&partitions);
        tracing::info!(?partitions, "kafka assigned partitions");
        if !partitions.is_empty()
            && self
                .events
                .blocking_send(Rebalance::Assigned(partitions))
                .is_err()
        {
            tracing::debug!("nobody follows the rebalances any more");
        }
    }

    /// Partitions going: the pipeline stops their workers (waited for, up to the revoke
    /// timeout), their positions are committed while they are still held, then given up.
    fn revoke(&self, consumer: &BaseConsumer<Self>, list: &TopicPartitionList) {
        let partitions = partitions_of(list, &self.topic);
        tracing::info!(
            ?partitions,
            lost = consumer.assignment_lost(),
            "kafka revokes partitions"
        );
        if !partitions.is_empty() && !self.stop.load(Ordering::SeqCst) {
            let (done, stopped) = oneshot::channel();
            let revoked = Rebalance::Revoked {
                partitions: partitions.clone(),
                done,
            };
            if self.events.blocking_send(revoked).is_ok() {
                wait_for(stopped, self.revoke_timeout, &partitions);
            }
        }
        if !consumer.assignment_lost() {
            self.commit(consumer, &partitions, CommitMode::Sync);
        }
        let given_up = match consumer.rebalance_protocol() {
            RebalanceProtocol::Cooperative => consumer.incremental_unassign(list),
            _ => consumer.unassign(),
        };
        if let Err(e) = given_up {
            tracing::error!(error = %e, ?partitions, "giving up revoked Kafka partitions");
        }
        self.held.lock().retain(|p| !partitions.contains(p));
    }
}

/// Waits until the pipeline answers on `stopped` (or drops it), at most `timeout`.
fn wait_for(mut stopped: oneshot::Receiver<()>, timeout: Duration, partitions: &[u32]) {
    let deadline = Instant::now() + timeout;
    loop {
        match stopped.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(oneshot::error::TryRecvError::Empty) => {
                tracing::warn!(
                    ?partitions,
                    ?timeout,
                    "the pipeline did not stop the revoked partitions in time; giving them up \
                     anyway (commit fencing refuses a late write)"
                );
                return;
            }
            _ => return,
        }
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        list: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self.assign(consumer, list),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => self.revoke(consumer, list),
            other => {
                // What librdkafka's default does: give up what the list names.
                tracing::error!(error = ?other, "kafka rebalance failed; giving up the partitions");
                self.revoke(consumer, list);
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::debug!(error = %e, "a monitoring commit to Kafka failed");
        }
    }
}
