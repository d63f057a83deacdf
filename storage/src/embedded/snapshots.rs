//! Snapshots and committed offsets: table rows, and every snapshot in memory.
//!
//! The table is append-only: a commit appends each changed subject's state as a new row
//! with a fresh, ever-growing `sid`, in the transaction that also moves the partition's
//! offset; a subject's snapshot is its row with the highest `sid` (the `snapshots` view and
//! the load at open pick it). Old rows are dropped at open once they outnumber the live
//! ones. Why not update in place: every in-place variant measured (`DELETE USING` a key
//! then `INSERT`, the fastest of them; keyed `INSERT OR REPLACE`; `ON CONFLICT DO UPDATE`;
//! `UPDATE ... FROM`) joins against the whole table on every commit, and leaves deletions
//! spread over all of its row groups, so each DuckDB checkpoint rewrote the whole table and
//! stalled a commit for up to seconds (`docs/BENCHMARKS.md`). Appends cost neither.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use async_trait::async_trait;
use credence_scorer::{DedupWindow, RuleHistory, SubjectState, Timestamp, event_digest};
use duckdb::{Connection, params};
use rustc_hash::FxHashMap;

use crate::documents::{
    ChangedState, Claim, Snapshots, StoredSnapshot, SubjectFilter, check_fence,
};
use crate::embedded::columns as col;
use crate::embedded::duck::{Ctx, Duck, SnapshotMemory, in_transaction};
use crate::embedded::state_bytes::{decode_rules, decode_window, encode_rules, encode_window};
use crate::error::Result;
use crate::page::{KeyKind, KeyPart, Page, Paged};
use crate::stored::from_json;

/// The name of the subject listing in page tokens, and its key.
const LISTING: &str = "subjects";
const KEY: &[KeyKind] = &[KeyKind::Text];

/// Drops superseded snapshot rows once they outnumber the live ones (at open, before any
/// write: it rewrites the table).
fn compact(conn: &Connection) -> Result<()> {
    let (rows, live): (i64, i64) = conn
        .query_row(
            "SELECT count(*), count(DISTINCT subject_id) FROM store.snapshots",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ctx("counting snapshot rows")?;
    if rows > 2 * live + 10_000 {
        conn.execute_batch(
            "DELETE FROM store.snapshots WHERE sid NOT IN \
             (SELECT max(sid) FROM store.snapshots GROUP BY subject_id); CHECKPOINT;",
        )
        .ctx("dropping superseded snapshot rows")?;
        tracing::info!(dropped = rows - live, "dropped superseded snapshot rows");
    }
    Ok(())
}

/// Every subject's latest snapshot, and the next free row key.
pub(super) fn load(conn: &Connection) -> Result<(SnapshotMemory, i64)> {
    compact(conn)?;
    let next_sid: i64 = conn
        .query_row(
            "SELECT coalesce(max(sid), 0) + 1 FROM store.snapshots",
            [],
            |r| r.get(0),
        )
        .ctx("loading snapshots")?;
    let mut stmt = conn
        .prepare(
            "SELECT sid, subject_id, bus_partition, score, tier, last_time, last_event_id, \
             applied_events, config_version, rules, updated_at, region, dedup, rule_histories \
             FROM store.snapshots \
             QUALIFY row_number() OVER (PARTITION BY subject_id ORDER BY sid DESC) = 1",
        )
        .ctx("loading snapshots")?;
    let mut rows = stmt.query([]).ctx("loading snapshots")?;
    let mut out = SnapshotMemory::default();
    // One `Arc` per tier name, as the engine shares them.
    let mut tiers: FxHashMap<String, Arc<str>> = FxHashMap::default();
    while let Some(row) = rows.next().ctx("loading snapshots")? {
        let what = "reading a snapshot";
        let tier: String = row.get(4).ctx(what)?;
        let tier = tiers
            .entry(tier)
            .or_insert_with_key(|t| Arc::from(t.as_str()))
            .clone();
        // Rows written before the histories were bytes hold them as JSON text.
        let rules = if let Some(bytes) = row.get::<_, Option<Vec<u8>>>(13).ctx(what)? {
            decode_rules(&bytes)?
        } else {
            let text: Option<String> = row.get(9).ctx(what)?;
            from_json::<Vec<RuleHistory>>(
                text.as_deref().unwrap_or("[]"),
                "snapshot rule histories",
            )?
        };
        // NULL in rows written before the window was stored: an empty window.
        let dedup: Option<Vec<u8>> = row.get(12).ctx(what)?;
        let dedup = match dedup {
            Some(bytes) => decode_window(&bytes)?,
            None => DedupWindow::default(),
        };
        let state = SubjectState {
            subject_id: row.get(1).ctx(what)?,
            score: row.get(3).ctx(what)?,
            tier,
            last_time: Timestamp::from_nanos(row.get(5).ctx(what)?),
            last_event_id: row.get(6).ctx(what)?,
            applied_events: row.get(7).ctx(what)?,
            config_version: row.get(8).ctx(what)?,
            dedup,
            rules,
        };
        out.order.insert(state.subject_id.clone());
        out.by_id.insert(
            state.subject_id.clone(),
            StoredSnapshot {
                state,
                region: row
                    .get::<_, Option<String>>(11)
                    .ctx(what)?
                    .unwrap_or_default(),
                updated_at: Timestamp::from_nanos(row.get(10).ctx(what)?),
            },
        );
    }
    drop(rows);
    drop(stmt);
    load_window_entries(conn, &mut out)?;
    Ok((out, next_sid))
}

/// Adds to each loaded window its entries: the subject's applied events above its floor,
/// read back from the archive, which holds every one of them. Only rows below their
/// partition's committed offset count: a commit written role by role archives its events
/// before it moves the offset, and the events of a batch that never committed are scored
/// again. A window is kept as its floor alone because writing its entries cost the node a
/// sixth of its rate (`docs/BENCHMARKS.md`), and the archive row is written anyway.
fn load_window_entries(conn: &Connection, memory: &mut SnapshotMemory) -> Result<()> {
    let what = "loading duplicate windows";
    // States saved before windows existed have no floor and keep an empty window.
    let Some(lowest) = memory
        .by_id
        .values()
        .filter_map(|s| s.state.dedup.floor())
        .min()
    else {
        return Ok(());
    };
    let mut extra: FxHashMap<String, Vec<(Timestamp, u128)>> = FxHashMap::default();
    let mut stmt = conn
        .prepare(
            "SELECT e.subject_id, e.occurred_at, e.event_id FROM store.events e \
             JOIN store.offsets o ON e.bus_partition = o.bus_partition \
             WHERE e.applied AND e.occurred_at > ? AND e.bus_offset < o.next_offset",
        )
        .ctx(what)?;
    let mut rows = stmt.query(params![lowest.nanos()]).ctx(what)?;
    while let Some(row) = rows.next().ctx(what)? {
        let id: String = row.get(0).ctx(what)?;
        let Some(snapshot) = memory.by_id.get(&id) else {
            continue;
        };
        let at = Timestamp::from_nanos(row.get(1).ctx(what)?);
        if snapshot.state.dedup.floor().is_none() || snapshot.state.dedup.is_too_late(at) {
            continue;
        }
        let event_id: String = row.get(2).ctx(what)?;
        extra
            .entry(id)
            .or_default()
            .push((at, event_digest(&event_id)));
    }
    for (id, entries) in extra {
        if let Some(snapshot) = memory.by_id.get_mut(&id) {
            let window = &snapshot.state.dedup;
            snapshot.state.dedup =
                DedupWindow::new(window.floor(), window.entries().chain(entries));
        }
    }
    Ok(())
}

/// The epoch and committed offset of every partition that has them.
pub(super) fn load_offsets(conn: &Connection) -> Result<FxHashMap<u32, Claim>> {
    let mut stmt = conn
        .prepare("SELECT bus_partition, next_offset, coalesce(epoch, 0) FROM store.offsets")
        .ctx("loading offsets")?;
    let rows = stmt
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                Claim {
                    next_offset: row.get(1)?,
                    epoch: row.get(2)?,
                },
            ))
        })
        .ctx("loading offsets")?;
    rows.collect::<Result<_, _>>().ctx("loading offsets")
}

/// Which rows a snapshot commit writes: per state, its new row key when it is the last state
/// of its subject in the batch (only that one is written), else `None`.
pub(super) struct SnapshotPlan {
    sids: Vec<Option<i64>>,
    /// The next free row key after this commit.
    pub(super) next_sid: i64,
}

/// Plans a snapshot commit; `next_sid` is the next free row key.
pub(super) fn plan(states: &[ChangedState], next_sid: i64) -> SnapshotPlan {
    let mut last: FxHashMap<&str, usize> = FxHashMap::default();
    for (i, s) in states.iter().enumerate() {
        last.insert(s.state.subject_id.as_str(), i);
    }
    let mut next_sid = next_sid;
    let sids = states
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (last.get(s.state.subject_id.as_str()) == Some(&i)).then(|| {
                next_sid += 1;
                next_sid - 1
            })
        })
        .collect();
    SnapshotPlan { sids, next_sid }
}

/// Writes planned snapshots and the partition's position inside the caller's transaction.
pub(super) fn write_in(
    conn: &Connection,
    plan: &SnapshotPlan,
    states: &[ChangedState],
    partition: u32,
    position: Claim,
    at: Timestamp,
) -> Result<()> {
    let kept: Vec<(&ChangedState, i64)> = states
        .iter()
        .zip(&plan.sids)
        .filter_map(|(s, sid)| sid.map(|sid| (s, sid)))
        .collect();
    let k = || kept.iter().map(|(s, _)| &s.state);
    let rules: Vec<Vec<u8>> = k().map(|s| encode_rules(&s.rules)).collect();
    // The row keeps the floor; the entries come back from the archive at open.
    let dedup: Vec<Vec<u8>> = k()
        .map(|s| encode_window(&DedupWindow::new(s.dedup.floor(), [])))
        .collect();
    let columns = vec![
        ("sid", col::i64s(kept.iter().map(|(_, sid)| *sid))),
        ("subject_id", col::text(k().map(|s| s.subject_id.as_str()))),
        ("bus_partition", col::u32s(k().map(|_| partition))),
        ("score", col::f64s(k().map(|s| s.score))),
        ("tier", col::text(k().map(|s| &*s.tier))),
        ("last_time", col::i64s(k().map(|s| s.last_time.nanos()))),
        (
            "last_event_id",
            col::text(k().map(|s| s.last_event_id.as_str())),
        ),
        ("applied_events", col::u64s(k().map(|s| s.applied_events))),
        ("config_version", col::u32s(k().map(|s| s.config_version))),
        ("rules", col::opt_text(k().map(|_| None))),
        ("updated_at", col::i64s(k().map(|_| at.nanos()))),
        (
            "region",
            col::text(kept.iter().map(|(s, _)| s.region.as_str())),
        ),
        ("dedup", col::blobs(dedup.iter().map(Vec::as_slice))),
        (
            "rule_histories",
            col::blobs(rules.iter().map(Vec::as_slice)),
        ),
    ];
    col::append(conn, "store", "snapshots", columns, "appending snapshots")?;
    write_position(conn, partition, position)
}

/// Replaces the stored position of a partition inside the caller's transaction.
fn write_position(conn: &Connection, partition: u32, position: Claim) -> Result<()> {
    conn.execute(
        "DELETE FROM store.offsets WHERE bus_partition = ?",
        params![partition],
    )
    .ctx("moving the committed offset")?;
    conn.execute(
        "INSERT INTO store.offsets VALUES (?, ?, ?)",
        params![partition, position.next_offset, position.epoch],
    )
    .ctx("moving the committed offset")?;
    Ok(())
}

impl Duck {
    /// The stored position of a partition (epoch 0, offset 0 before any claim or commit).
    /// Under the writer lock this is what the table holds: memory follows every commit
    /// while the writer is held.
    pub(super) fn stored_position(&self, partition: u32) -> Claim {
        self.offsets
            .read()
            .get(&partition)
            .copied()
            .unwrap_or_default()
    }

    /// After the commit: memory answers what was written.
    pub(super) fn remember_snapshots(
        &self,
        mut states: Vec<ChangedState>,
        plan: SnapshotPlan,
        partition: u32,
        position: Claim,
        at: Timestamp,
    ) {
        let mut memory = self.snapshots.write();
        for (changed, sid) in states.drain(..).zip(plan.sids) {
            if sid.is_none() {
                continue;
            }
            let ChangedState { state, region } = changed;
            if !memory.by_id.contains_key(&state.subject_id) {
                memory.order.insert(state.subject_id.clone());
            }
            memory.by_id.insert(
                state.subject_id.clone(),
                StoredSnapshot {
                    state,
                    region,
                    updated_at: at,
                },
            );
        }
        drop(memory);
        self.offsets.write().insert(partition, position);
    }
}

#[async_trait]
impl Snapshots for Duck {
    async fn claim(&self, partition: u32) -> Result<Claim> {
        self.write(|w| {
            let stored = self.stored_position(partition);
            let claim = Claim {
                epoch: stored.epoch + 1,
                next_offset: stored.next_offset,
            };
            in_transaction(&w.conn, "claiming a partition", |conn| {
                write_position(conn, partition, claim)
            })?;
            self.offsets.write().insert(partition, claim);
            Ok(claim)
        })
    }

    async fn position(&self, partition: u32) -> Result<Claim> {
        Ok(self.stored_position(partition))
    }

    async fn commit(
        &self,
        partition: u32,
        expected: Claim,
        next_offset: u64,
        states: Vec<ChangedState>,
        at: Timestamp,
    ) -> Result<()> {
        self.write(|w| {
            check_fence(partition, self.stored_position(partition), expected)?;
            let position = Claim {
                epoch: expected.epoch,
                next_offset,
            };
            let plan = plan(&states, w.next_sid);
            in_transaction(&w.conn, "committing snapshots", |conn| {
                write_in(conn, &plan, &states, partition, position, at)
            })?;
            w.next_sid = plan.next_sid;
            self.remember_snapshots(states, plan, partition, position, at);
            Ok(())
        })
    }

    async fn committed_offset(&self, partition: u32) -> Result<u64> {
        Ok(self.stored_position(partition).next_offset)
    }

    async fn get_snapshots(&self, subject_ids: &[String]) -> Result<Vec<Option<StoredSnapshot>>> {
        let memory = self.snapshots.read();
        Ok(subject_ids
            .iter()
            .map(|id| memory.by_id.get(id).cloned())
            .collect())
    }

    async fn list_subjects(
        &self,
        filter: &SubjectFilter,
        page: &Page,
    ) -> Result<Paged<StoredSnapshot>> {
        let start = match page.after(LISTING, KEY)?.as_deref() {
            Some([KeyPart::Text(last)]) => Bound::Excluded(last.clone()),
            _ => Bound::Unbounded,
        };
        let snapshots = self.snapshots.read();
        let items = snapshots
            .order
            .range((start, Bound::Unbounded))
            .filter_map(|id| snapshots.by_id.get(id))
            .filter(|s| {
                let state = &s.state;
                (filter.region.is_empty() || s.region == filter.region)
                    && (filter.tier.is_empty() || *state.tier == *filter.tier)
                    && filter.min_score.is_none_or(|min| state.score >= min)
                    && filter.max_score.is_none_or(|max| state.score <= max)
            })
            .take(page.limit() + 1)
            .cloned()
            .collect();
        Ok(page.paged(LISTING, items, |s| {
            vec![KeyPart::Text(s.state.subject_id.clone())]
        }))
    }

    async fn tier_counts(&self, region: &str) -> Result<Vec<(String, u64)>> {
        let snapshots = self.snapshots.read();
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for s in snapshots.by_id.values() {
            if region.is_empty() || s.region == region {
                *counts.entry(&s.state.tier).or_default() += 1;
            }
        }
        Ok(counts
            .into_iter()
            .map(|(tier, n)| (tier.to_owned(), n))
            .collect())
    }
}
