//! The pipeline's write path: what one micro-batch writes, for several partitions at once.

use async_trait::async_trait;
use credence_scorer::{ScoreChange, SubjectState, Timestamp};

use crate::archive::ArchivedEvent;
use crate::error::Result;
use crate::series::ScorePoint;
use crate::{StorageError, Stores};

/// Everything one scored micro-batch of one partition writes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartitionCommit {
    /// The partition.
    pub partition: u32,
    /// The first bus offset not reflected once this commit is done.
    pub next_offset: u64,
    /// The archived events.
    pub events: Vec<ArchivedEvent>,
    /// One score point per scored event.
    pub points: Vec<ScorePoint>,
    /// Every score change, with the bus offset of its event.
    pub changes: Vec<(u64, ScoreChange)>,
    /// The changed subjects' states.
    pub states: Vec<SubjectState>,
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

/// Writes micro-batches: archive, series, and last the snapshots with the committed offset.
/// Several partitions (at most one batch each) go in one call, so a backend with
/// transactions pays one commit for all of them.
#[async_trait]
pub trait Committer: Send + Sync {
    /// Writes the batches. On `Ok` everything is durable; on `Err` the caller must assume
    /// any prefix was written and recover from the committed offsets (see
    /// [`crate::Archive::truncate_events`]).
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

/// A [`Committer`] for backends without transactions across roles: per batch, the archive,
/// then the series, then the snapshots with the offset, through the role traits. Recovery
/// truncation makes a crash between them harmless.
pub struct Sequential(pub Stores);

#[async_trait]
impl Committer for Sequential {
    async fn commit(&self, batches: Vec<PartitionCommit>, at: Timestamp) -> Result<()> {
        check_distinct(&batches)?;
        for b in batches {
            self.0.archive.append_events(b.events).await?;
            self.0.archive.park_dead_letters(b.dead_letters, at).await?;
            self.0
                .series
                .append_scores(b.partition, b.points, b.changes)
                .await?;
            self.0
                .snapshots
                .commit(b.partition, b.next_offset, b.states, at)
                .await?;
        }
        Ok(())
    }
}
