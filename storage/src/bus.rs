//! The bus: a durable, partitioned, append-only log of events in flight.

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::Result;

/// One record to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusRecord {
    /// The partition (`0..partitions()`); the server picks it from the subject.
    pub partition: u32,
    /// The encoded record. The bus never looks inside.
    pub payload: Vec<u8>,
}

/// A durable partitioned log. Offsets count records per partition from 0, like Kafka's.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Number of partitions; fixed for the life of the data.
    fn partitions(&self) -> u32;

    /// Appends records; when this returns `Ok`, every record is durable (survives a crash of
    /// the process right after) and readable. Records of one partition keep their order in
    /// the slice. Returns, per record, its offset.
    async fn append(&self, records: Vec<BusRecord>) -> Result<Vec<u64>>;

    /// Reads up to `max` records of `partition` from offset `from` on, with their offsets.
    /// Returns an empty vector when there is nothing at `from` yet.
    async fn read(&self, partition: u32, from: u64, max: usize) -> Result<Vec<(u64, Vec<u8>)>>;

    /// The end of a partition (the offset the next record will get), as a watch that changes
    /// whenever records become durable: consumers wait on it instead of polling.
    fn end(&self, partition: u32) -> watch::Receiver<u64>;
}
