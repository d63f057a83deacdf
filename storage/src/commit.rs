//! The pipeline's write path: what one micro-batch writes, for several partitions at once.

use async_trait::async_trait;
use credence_scorer::{ScoreChange, Timestamp};

use crate::archive::ArchivedEvent;
use crate::documents::check_fence;
use crate::documents::{ChangedState, Claim};
use crate::error::Result;
use crate::series::ScorePoint;
use crate::{StorageError, Stores};

/// Everything one scored micro-batch of one partition writes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartitionCommit {
    /// The partition.
    pub partition: u32,
    /// The committing owner's epoch (from [`crate::Snapshots::claim`]).
    pub epoch: u64,
    /// The bus offset the batch starts at: the committed offset it expects.
    pub first_offset: u64,
    /// The first bus offset not reflected once this commit is done.
    pub next_offset: u64,
    /// The archived events.
    pub events: Vec<ArchivedEvent>,
    /// One score point per scored event.
    pub points: Vec<ScorePoint>,
    /// Every score change, with the bus offset of its event, in the engine's order.
    pub changes: Vec<(u64, ScoreChange)>,
    /// The changed subjects' states.
    pub states: Vec<ChangedState>,
    /// Bus records of this batch that could not be read as events, parked instead.
    pub dead_letters: Vec<DeadLetter>,
}

/// A bus record the pipeline could not read, parked so its partition goes on. Stored
/// idempotently by (partition, offset), like archived events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeadLetter {
    /// Bus partition.
    pub partition: u32,
    /// Bus offset within the partition.
    pub offset: u64,
    /// Why it could not be read.
    pub reason: String,
    /// The record as it sits on the bus.
    pub payload: Vec<u8>,
}

impl PartitionCommit {
    /// The position the batch expects to find: its epoch and first offset.
    pub fn expected(&self) -> Claim {
        Claim {
            epoch: self.epoch,
            next_offset: self.first_offset,
        }
    }
}

/// Writes micro-batches: archive, series, and last the snapshots with the committed offset.
/// Several partitions (at most one batch each) go in one call, so a backend with
/// transactions pays one commit for all of them.
///
/// Fenced: a batch whose epoch is not the partition's stored epoch, or whose first offset
/// is not its committed offset, is refused with [`StorageError::Fenced`] and nothing of it
/// is written. Idempotent: archive rows are keyed by (partition, offset), score points by
/// (partition, offset), changes by (partition, offset, index within the event), and
/// writing a row whose key is stored leaves the stored one, so a batch retried after a
/// failure (or re-scored after a crash between role writes) adds nothing twice. Callers
/// write each partition's rows in offset order, so a backend may keep a high-water mark
/// per partition instead of looking keys up.
#[async_trait]
pub trait Committer: Send + Sync {
    /// Writes the batches. On `Ok` everything is durable; on `Err` any prefix of the role
    /// writes may be durable (all but the snapshots), and the caller scores again from the
    /// committed offset: the idempotent rows make that harmless.
    async fn commit(&self, batches: Vec<PartitionCommit>, at: Timestamp) -> Result<()>;
}

/// Refuses a call with two batches of one partition (their order would be lost).
pub fn check_distinct(batches: &[PartitionCommit]) -> Result<()> {
    let mut seen: Vec<u32> = batches.iter().map(|b| b.partition).collect();
    seen.sort_unstable();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return Err(StorageError::Invalid(
            "one commit holds at most one batch per partition".into(),
        ));
    }
    Ok(())
}

/// A [`Committer`] for backends without transactions across roles: per batch, a fence
/// check, the archive, then the series, then the snapshots with the offset (fenced again,
/// atomically), through the role traits. Idempotent rows make a crash between them
/// harmless. The first check keeps a fenced batch from writing anything; an owner that
/// loses the partition between the check and its snapshot commit can still add archive and
/// series rows, but only at keys the new owner writes too (the same bus records), so the
/// rows stay one per key and the snapshots and offset stay the new owner's.
pub struct Sequential(pub Stores);

#[async_trait]
impl Committer for Sequential {
    async fn commit(&self, batches: Vec<PartitionCommit>, at: Timestamp) -> Result<()> {
        check_distinct(&batches)?;
        for b in batches {
            let expected = b.expected();
            let stored = self.0.snapshots.position(b.partition).await?;
            check_fence(b.partition, stored, expected)?;
            self.0.archive.append_events(b.events).await?;
            self.0.archive.park_dead_letters(b.dead_letters, at).await?;
            self.0
                .series
                .append_scores(b.partition, b.points, b.changes)
                .await?;
            self.0
                .snapshots
                .commit(b.partition, expected, b.next_offset, b.states, at)
                .await?;
        }
        Ok(())
    }
}
