//! List entries: a table row per (subject, kind), every entry in memory for the scoring path.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use credence_scorer::{ListKind, Timestamp};
use duckdb::{Connection, params};

use crate::embedded::duck::{Ctx, Duck, in_transaction};
use crate::error::Result;
use crate::lists::{ListEntry, ListFilter, Lists};
use crate::page::{KeyKind, KeyPart, Page, Paged};
use crate::stored::{list_kind, list_kind_code};

/// The name of the entry listing in page tokens, and its key (subject, kind).
const LISTING: &str = "list_entries";
const KEY: &[KeyKind] = &[KeyKind::Text, KeyKind::I64];

/// Entries by subject, then kind: ordered for listings, and looked up by `&str` without
/// building a key on the scoring path.
pub(super) type Entries = BTreeMap<String, BTreeMap<ListKind, ListEntry>>;

/// Every stored entry.
pub(super) fn load(conn: &Connection) -> Result<Entries> {
    let mut stmt = conn
        .prepare("SELECT subject_id, kind, reason, expires_at, created_at FROM store.list_entries")
        .ctx("loading list entries")?;
    let rows = stmt
        .query_map([], |row| {
            let time = |i| -> duckdb::Result<Option<Timestamp>> {
                Ok(row.get::<_, Option<i64>>(i)?.map(Timestamp::from_nanos))
            };
            Ok((
                row.get::<_, i32>(1)?,
                ListEntry {
                    subject_id: row.get(0)?,
                    // Set from the stored number below.
                    kind: ListKind::Block,
                    reason: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                    expires_at: time(3)?,
                    created_at: time(4)?,
                },
            ))
        })
        .ctx("loading list entries")?;
    let mut out = Entries::new();
    for row in rows {
        let (code, mut entry) = row.ctx("loading list entries")?;
        entry.kind = list_kind(code)?;
        out.entry(entry.subject_id.clone())
            .or_default()
            .insert(entry.kind, entry);
    }
    Ok(out)
}

#[async_trait]
impl Lists for Duck {
    async fn put_entry(&self, entry: ListEntry) -> Result<bool> {
        let code = list_kind_code(entry.kind);
        self.write(|w| {
            in_transaction(&w.conn, "storing a list entry", |conn| {
                conn.execute(
                    "DELETE FROM store.list_entries WHERE subject_id = ? AND kind = ?",
                    params![entry.subject_id, code],
                )
                .ctx("storing a list entry")?;
                conn.execute(
                    "INSERT INTO store.list_entries VALUES (?, ?, ?, ?, ?)",
                    params![
                        entry.subject_id,
                        code,
                        entry.reason,
                        entry.expires_at.map(Timestamp::nanos),
                        entry.created_at.map(Timestamp::nanos),
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

    async fn remove_entry(&self, subject_id: &str, kind: ListKind) -> Result<bool> {
        self.write(|w| {
            w.conn
                .execute(
                    "DELETE FROM store.list_entries WHERE subject_id = ? AND kind = ?",
                    params![subject_id, list_kind_code(kind)],
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

    async fn list_entries(&self, filter: &ListFilter, page: &Page) -> Result<Paged<ListEntry>> {
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
        let live = |e: &ListEntry| e.expires_at.is_none_or(|t| t.nanos() > now);
        let memory = self.lists.read();
        // Keyset: subjects from the token's on, and in its subject the kinds after its kind.
        let start = match &after {
            Some((subject, _)) => Bound::Included(subject.as_str()),
            None => Bound::Unbounded,
        };
        let subjects: Box<dyn Iterator<Item = (&String, &BTreeMap<ListKind, ListEntry>)>> =
            if filter.subject_id.is_empty() {
                Box::new(memory.range::<str, _>((start, Bound::Unbounded)))
            } else {
                Box::new(memory.get_key_value(filter.subject_id.as_str()).into_iter())
            };
        let items = subjects
            .flat_map(|(subject, kinds)| {
                // The token's key holds the kind's stored number; kinds sort as their numbers.
                let first = match &after {
                    Some((s, kind)) if s == subject => *kind,
                    Some((s, _)) if s > subject => i32::MAX,
                    _ => i32::MIN,
                };
                kinds
                    .values()
                    .filter(move |e| list_kind_code(e.kind) > first)
            })
            .filter(|e| filter.kind.is_none_or(|k| e.kind == k))
            .filter(|e| filter.include_expired || live(e))
            .take(page.limit() + 1)
            .cloned()
            .collect();
        Ok(page.paged(LISTING, items, |e| {
            vec![
                KeyPart::Text(e.subject_id.clone()),
                KeyPart::I64(i64::from(list_kind_code(e.kind))),
            ]
        }))
    }

    async fn entries_for(&self, subject_ids: &[String]) -> Result<Vec<Vec<ListEntry>>> {
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
