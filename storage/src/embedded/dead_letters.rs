//! Dead letters: bus records the pipeline could not read, kept with where they sat and why.

use credence_scorer::Timestamp;
use duckdb::{Connection, params};

use crate::commit::DeadLetter;
use crate::embedded::duck::Ctx as _;
use crate::error::Result;

/// Parks dead letters inside the caller's transaction, keeping one row per (partition,
/// offset): a batch committed again after a crash changes nothing. They are rare (one per
/// unreadable record), so a statement per row costs nothing that matters.
pub(super) fn park_in(conn: &Connection, letters: &[DeadLetter], at: Timestamp) -> Result<()> {
    if letters.is_empty() {
        return Ok(());
    }
    let what = "parking dead letters";
    let mut insert = conn
        .prepare(
            "INSERT INTO store.dead_letters SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS \
             (SELECT 1 FROM store.dead_letters WHERE bus_partition = ? AND bus_offset = ?)",
        )
        .ctx(what)?;
    for d in letters {
        insert
            .execute(params![
                d.partition,
                d.offset,
                d.reason,
                d.payload,
                at.nanos(),
                d.partition,
                d.offset
            ])
            .ctx(what)?;
    }
    Ok(())
}
