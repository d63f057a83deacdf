//! The embedded committer: every batch of a call in one DuckDB transaction (one WAL sync
//! for all partitions), the snapshots written last inside it.

use async_trait::async_trait;
use credence_scorer::Timestamp;

use crate::commit::{Committer, PartitionCommit, check_distinct};
use crate::embedded::duck::{Duck, in_transaction};
use crate::embedded::{archive, dead_letters, series, snapshots};
use crate::error::Result;

#[async_trait]
impl Committer for Duck {
    async fn commit(&self, batches: Vec<PartitionCommit>, at: Timestamp) -> Result<()> {
        check_distinct(&batches)?;
        if batches.is_empty() {
            return Ok(());
        }
        self.write(|w| {
            let mut next_sid = w.next_sid;
            let plans: Vec<_> = batches
                .iter()
                .map(|b| {
                    let plan = snapshots::plan(&b.states, next_sid);
                    next_sid = plan.next_sid;
                    plan
                })
                .collect();
            let mut seq = w.next_change_seq;
            in_transaction(&w.conn, "committing micro-batches", |conn| {
                for (b, plan) in batches.iter().zip(&plans) {
                    archive::append_in(conn, &b.events)?;
                    dead_letters::park_in(conn, &b.dead_letters, at)?;
                    series::append_in(conn, seq, b.partition, &b.points, &b.changes)?;
                    seq += b.changes.len() as u64;
                    snapshots::write_in(conn, plan, &b.states, b.partition, b.next_offset, at)?;
                }
                Ok(())
            })?;
            w.next_sid = next_sid;
            w.next_change_seq = seq;
            for (b, plan) in batches.into_iter().zip(plans) {
                self.remember_snapshots(b.states, plan, b.partition, b.next_offset, at);
            }
            Ok(())
        })
    }
}
