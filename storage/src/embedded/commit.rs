//! The embedded committer: every batch of a call in one DuckDB transaction (one WAL sync
//! for all partitions), the snapshots written last inside it.

use async_trait::async_trait;
use credence_scorer::Timestamp;

use crate::commit::{Committer, PartitionCommit, check_distinct};
use crate::documents::{Claim, check_fence};
use crate::embedded::duck::{Duck, HighWater, Writer, in_transaction};
use crate::embedded::series::SeriesRows;
use crate::embedded::{archive, dead_letters, series, snapshots};
use crate::error::{Result, StorageError};

/// Commits retried after stopping the analytics queries that held the memory.
const MEMORY_RETRIES: u32 = 3;
/// How long a commit waits for interrupted queries to free their memory (they stop at
/// their next interrupt check, normally within milliseconds).
const QUERY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

#[async_trait]
impl Committer for Duck {
    async fn commit(&self, batches: Vec<PartitionCommit>, at: Timestamp) -> Result<()> {
        check_distinct(&batches)?;
        if batches.is_empty() {
            return Ok(());
        }
        self.write(|w| {
            // Fenced under the writer lock: no claim or commit can come between the check and
            // the write, and a refused call writes nothing of any batch.
            for b in &batches {
                check_fence(b.partition, self.stored_position(b.partition), b.expected())?;
            }
            let mut attempt = 0;
            let plans = loop {
                let written = write_batches(w, &batches, at);
                match written {
                    // Analytics shares the instance's memory limit; scoring must not lose to
                    // a query. The rolled-back commit is retried once the queries let go.
                    Err(StorageError::LimitExceeded(e)) if attempt < MEMORY_RETRIES => {
                        attempt += 1;
                        let stopped = self.running.preempt_all(QUERY_PATIENCE);
                        tracing::warn!(error = %e, stopped, attempt,
                            "a commit ran out of memory; stopped the analytics queries and retrying");
                    }
                    other => break other?,
                }
            };
            for (b, plan) in batches.into_iter().zip(plans) {
                let position = Claim {
                    epoch: b.epoch,
                    next_offset: b.next_offset,
                };
                self.remember_snapshots(b.states, plan, b.partition, position, at);
            }
            Ok(())
        })
    }
}

/// Writes every batch in one transaction; on success raises the high-water marks and
/// the snapshot row key, and returns the snapshot plans for memory.
fn write_batches(
    w: &mut Writer,
    batches: &[PartitionCommit],
    at: Timestamp,
) -> Result<Vec<snapshots::SnapshotPlan>> {
    let mut next_sid = w.next_sid;
    let plans: Vec<_> = batches
        .iter()
        .map(|b| {
            let plan = snapshots::plan(&b.states, next_sid);
            next_sid = plan.next_sid;
            plan
        })
        .collect();
    let rows: Vec<SeriesRows<'_>> = batches
        .iter()
        .map(|b| SeriesRows::new(&w.high_water, b.partition, &b.points, &b.changes))
        .collect();
    in_transaction(&w.conn, "committing micro-batches", |conn| {
        for ((b, plan), rows) in batches.iter().zip(&plans).zip(&rows) {
            archive::append_in(conn, &b.events, &w.high_water.events)?;
            dead_letters::park_in(conn, &b.dead_letters, at)?;
            series::append_in(conn, rows)?;
            let position = Claim {
                epoch: b.epoch,
                next_offset: b.next_offset,
            };
            snapshots::write_in(conn, plan, &b.states, b.partition, position, at)?;
        }
        Ok(())
    })?;
    w.next_sid = next_sid;
    for (b, rows) in batches.iter().zip(&rows) {
        HighWater::raise(
            &mut w.high_water.events,
            b.events.iter().map(|a| (a.partition, a.offset)),
        );
        rows.raise(&mut w.high_water);
    }
    Ok(plans)
}
