//! The audit trail: an append-only table, each row numbered in the order recorded.

use async_trait::async_trait;
use credence_scorer::Timestamp;
use duckdb::params;

use crate::audit::{Audit, AuditEntry};
use crate::embedded::duck::{Ctx, Duck, in_transaction};
use crate::error::Result;

#[async_trait]
impl Audit for Duck {
    async fn record(&self, entries: Vec<AuditEntry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.write(|w| {
            in_transaction(&w.conn, "recording audit entries", |conn| {
                // Admin changes are rare next to events: numbering from the stored maximum
                // costs one scan of a small table, and needs no counter kept in memory.
                let mut stmt = conn
                    .prepare(
                        "INSERT INTO store.audit SELECT coalesce(max(seq), 0) + 1, ?, ?, ?, ?, ? \
                         FROM store.audit",
                    )
                    .ctx("recording audit entries")?;
                for e in &entries {
                    stmt.execute(params![e.at.nanos(), e.actor, e.action, e.target, e.detail])
                        .ctx("recording audit entries")?;
                }
                Ok(())
            })
        })
    }

    async fn audit_entries(&self, since: Timestamp, limit: usize) -> Result<Vec<AuditEntry>> {
        let limit = if limit == 0 { i64::MAX } else { limit as i64 };
        self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT recorded_at, actor, action, target, detail FROM store.audit \
                     WHERE recorded_at >= ? \
                     ORDER BY seq LIMIT ?",
                )
                .ctx("reading audit entries")?;
            let rows = stmt
                .query_map(params![since.nanos(), limit], |row| {
                    Ok(AuditEntry {
                        at: Timestamp::from_nanos(row.get(0)?),
                        actor: row.get(1)?,
                        action: row.get(2)?,
                        target: row.get(3)?,
                        detail: row.get(4)?,
                    })
                })
                .ctx("reading audit entries")?;
            rows.map(|r| r.ctx("reading audit entries")).collect()
        })
    }
}
