//! List entries: a table row per (subject, kind), every entry in memory for the scoring path.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use credence_proto::v1 as pb;
use duckdb::{Connection, params};

use crate::embedded::convert::{nanos, opt_nanos, timestamp};
use crate::embedded::duck::{Ctx, Duck, in_transaction};
use crate::error::Result;
use crate::lists::{ListFilter, Lists};
use crate::page::{KeyKind, KeyPart, Page, Paged};

/// The name of the entry listing in page tokens, and its key (subject, kind).
const LISTING: &str = "list_entries";
const KEY: &[KeyKind] = &[KeyKind::Text, KeyKind::I64];

/// Entries by subject, then kind: ordered for listings, and looked up by `&str` without
/// building a key on the scoring path.
pub(super) type Entries = BTreeMap<String, BTreeMap<i32, pb::ListEntry>>;

/// Every stored entry.
pub(super) fn load(conn: &Connection) -> Result<Entries> {
    let mut stmt = conn
        .prepare("SELECT subject_id, kind, reason, expires_at, created_at FROM store.list_entries")
        .ctx("loading list entries")?;
    let rows = stmt
        .query_map([], |row| {
            Ok(pb::ListEntry {
                subject_id: row.get(0)?,
                kind: row.get(1)?,
                reason: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                expires_at: row.get::<_, Option<i64>>(3)?.map(timestamp),
                created_at: row.get::<_, Option<i64>>(4)?.map(timestamp),
            })
        })
        .ctx("loading list entries")?;
    let mut out = Entries::new();
    for entry in rows {
        let entry = entry.ctx("loading list entries")?;
        out.entry(entry.subject_id.clone())
            .or_default()
            .insert(entry.kind, entry);
    }
    Ok(out)
}

#[async_trait]
impl Lists for Duck {
    async fn put_entry(&self, entry: pb::ListEntry) -> Result<bool> {
        let expires_at = opt_nanos(entry.expires_at.as_ref(), "expires_at")?;
        let created_at = opt_nanos(entry.created_at.as_ref(), "created_at")?;
        self.write(|w| {
            in_transaction(&w.conn, "storing a list entry", |conn| {
                conn.execute(
                    "DELETE FROM store.list_entries WHERE subject_id = ? AND kind = ?",
                    params![entry.subject_id, entry.kind],
                )
                .ctx("storing a list entry")?;
                conn.execute(
                    "INSERT INTO store.list_entries VALUES (?, ?, ?, ?, ?)",
                    params![
                        entry.subject_id,
                        entry.kind,
                        entry.reason,
                        expires_at,
                        created_at
                    ],
                )
                .ctx("storing a list entry")
            })?;
            Ok(self
                .lists
                .write()
                .entry(entry.subject_id.clone())
                .or_default()
                .insert(entry.kind, entry)
                .is_none())
        })
    }

    async fn remove_entry(&self, subject_id: &str, kind: i32) -> Result<bool> {
        self.write(|w| {
            w.conn
                .execute(
                    "DELETE FROM store.list_entries WHERE subject_id = ? AND kind = ?",
                    params![subject_id, kind],
                )
                .ctx("removing a list entry")?;
            let mut memory = self.lists.write();
            let Some(kinds) = memory.get_mut(subject_id) else {
                return Ok(false);
            };
            let existed = kinds.remove(&kind).is_some();
            if kinds.is_empty() {
                memory.remove(subject_id);
            }
            Ok(existed)
        })
    }

    async fn list_entries(&self, filter: &ListFilter, page: &Page) -> Result<Paged<pb::ListEntry>> {
        let after = match page.after(LISTING, KEY)? {
            Some(key) => match key.as_slice() {
                [KeyPart::Text(subject), KeyPart::I64(kind)] => {
                    Some((subject.clone(), i32::try_from(*kind).unwrap_or(i32::MAX)))
                }
                _ => None,
            },
            None => None,
        };
        let now = match filter.now {
            Some(now) => now.nanos(),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as i64),
        };
        let live = |e: &pb::ListEntry| {
            e.expires_at
                .as_ref()
                .is_none_or(|t| nanos(t, "expires_at").is_ok_and(|t| t > now))
        };
        let memory = self.lists.read();
        // Keyset: subjects from the token's on, and in its subject the kinds after its kind.
        let start = match &after {
            Some((subject, _)) => Bound::Included(subject.as_str()),
            None => Bound::Unbounded,
        };
        let subjects: Box<dyn Iterator<Item = (&String, &BTreeMap<i32, pb::ListEntry>)>> =
            if filter.subject_id.is_empty() {
                Box::new(memory.range::<str, _>((start, Bound::Unbounded)))
            } else {
                Box::new(memory.get_key_value(filter.subject_id.as_str()).into_iter())
            };
        let items = subjects
            .flat_map(|(subject, kinds)| {
                let first = match &after {
                    Some((s, kind)) if s == subject => Bound::Excluded(*kind),
                    Some((s, _)) if s > subject => Bound::Excluded(i32::MAX),
                    _ => Bound::Unbounded,
                };
                kinds.range((first, Bound::Unbounded)).map(|(_, e)| e)
            })
            .filter(|e| filter.kind == 0 || e.kind == filter.kind)
            .filter(|e| filter.include_expired || live(e))
            .take(page.limit() + 1)
            .cloned()
            .collect();
        Ok(page.paged(LISTING, items, |e| {
            vec![
                KeyPart::Text(e.subject_id.clone()),
                KeyPart::I64(i64::from(e.kind)),
            ]
        }))
    }

    async fn entries_for(&self, subject_ids: &[String]) -> Result<Vec<Vec<pb::ListEntry>>> {
        let memory = self.lists.read();
        Ok(subject_ids
            .iter()
            .map(|id| {
                memory
                    .get(id)
                    .map(|kinds| kinds.values().cloned().collect())
                    .unwrap_or_default()
            })
            .collect())
    }
}
