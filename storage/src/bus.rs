//! The bus: a durable, partitioned, append-only log of events in flight.

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::Result;

/// One record to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusRecord {
    /// The partition (`0..partitions()`); producers pick it from the subject with
    /// `credence_proto::partition_of`.
    pub partition: u32,
    /// The encoded record. The bus never looks inside.
    pub payload: Vec<u8>,
}

/// A change in the partitions this node consumes.
///
/// On Kafka, partitions belong to the members of a consumer group, and the group moves them
/// when nodes join, leave or fail. With cooperative (incremental) rebalancing, which the
/// Kafka bus uses, only the partitions that move are named: a node keeps scoring every
/// partition not named in a [`Rebalance::Revoked`]. Each event is a delta over what came
/// before; a partition is never assigned twice without a revoke in between.
#[derive(Debug)]
pub enum Rebalance {
    /// These partitions are now this node's: start a worker for each (claim the partition,
    /// read its committed offset, start with an empty state cache).
    Assigned(Vec<u32>),
    /// These partitions are being taken away. Stop their workers: finish or abandon the
    /// micro-batch in flight, wait for its commit, then send on `done`. The bus holds the
    /// rebalance until then (Kafka's revoke callback blocks on it), so the next owner does
    /// not start while this one still writes. Dropping `done` counts as done. The commit
    /// fencing is what keeps a late write of an owner that missed the deadline harmless.
    Revoked {
        /// The partitions to stop.
        partitions: Vec<u32>,
        /// Sent (or dropped) once their workers have stopped.
        done: oneshot::Sender<()>,
    },
}

/// Whether a bus can take appends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BusHealth {
    /// Appends work (each may still fail on its own, and be retried).
    Serving,
    /// The bus has stopped taking appends for good, for the reason given; every later append
    /// fails UNAVAILABLE with it. The node should report NOT_SERVING; an operator must act.
    Failed(String),
}

/// A durable partitioned log. Offsets count records per partition from 0, like Kafka's.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Number of partitions; fixed for the life of the data.
    fn partitions(&self) -> u32;

    /// Appends records; a record whose result is `Ok` is durable (survives a crash of the
    /// process right after) and readable, at the offset given. Records of one partition keep
    /// their order in the slice. Returns one result per record, in the order given: a bus
    /// may take some records and refuse others (Kafka answers per record). The outer `Err`
    /// means nothing was appended. A refused record may be retried; an `Ok` one must not be,
    /// or it is in the log twice.
    async fn append(&self, records: Vec<BusRecord>) -> Result<Vec<Result<u64>>>;

    /// Reads up to `max` records of `partition` from offset `from` on, with their offsets.
    /// Returns an empty vector when there is nothing at `from` yet.
    async fn read(&self, partition: u32, from: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>>;

    /// The end of a partition (the offset the next record will get), as a watch that changes
    /// whenever records become durable: consumers wait on it instead of polling.
    fn end(&self, partition: u32) -> watch::Receiver<u64>;

    /// The first offset of a partition the bus still holds: records before it were deleted
    /// (Kafka's retention). Reading below it is an error, never a silent jump. A bus that
    /// keeps everything (the embedded one) answers 0.
    async fn start(&self, partition: u32) -> Result<u64> {
        let _ = partition;
        Ok(0)
    }

    /// The partitions this node consumes, as a stream of changes: the pipeline starts a
    /// worker on [`Rebalance::Assigned`] and stops it on [`Rebalance::Revoked`].
    ///
    /// Why the bus says so, not the configuration: on Kafka a consumer group decides which
    /// member reads which partition, and moves partitions when members come and go; a node
    /// that kept scoring a partition it lost would race the new owner. The bus that owns the
    /// group membership is the one that knows. A bus has one consumer per process: the
    /// stream is handed out once, and a second call fails `Conflict`. The channel stays open
    /// while the bus lives; it closes when the bus stops consuming.
    fn rebalances(&self) -> Result<mpsc::Receiver<Rebalance>>;

    /// Whether appends can work, as a watch: a bus whose writes fail in a way it cannot
    /// recover from turns [`BusHealth::Failed`] (for good), and the node reports NOT_SERVING.
    fn health(&self) -> watch::Receiver<BusHealth>;
}

/// The error of a second [`Bus::rebalances`] call: a bus has one consumer.
pub(crate) fn rebalances_taken() -> crate::error::StorageError {
    crate::error::StorageError::Conflict(
        "the bus's rebalances were already taken: a bus has one consumer, the node's pipeline"
            .into(),
    )
}
