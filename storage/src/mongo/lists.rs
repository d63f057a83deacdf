//! List entries: one document per (subject, kind), `_id` = `<kind number>|<subject id>`.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use credence_scorer::ListKind;
use mongodb::bson::{Bson, Document, doc};
use rustc_hash::FxHashMap;

use super::{MongoDocuments, int, text, time_bson, time_of};
use crate::error::Result;
use crate::lists::{ListEntry, ListFilter, Lists};
use crate::page::{KeyKind, KeyPart, Page, Paged};
use crate::stored::{list_kind, list_kind_code};

const COLLECTION: &str = "list_entries";
/// The name of the entry listing in page tokens, and its key (subject, kind), as the
/// embedded backend's: a token from one node works on another.
const LISTING: &str = "list_entries";
const KEY: &[KeyKind] = &[KeyKind::Text, KeyKind::I64];
/// Key order of every read: subject, then kind (block before allow).
fn key_order() -> Document {
    doc! { "subject_id": 1, "kind": 1 }
}

fn key(subject_id: &str, kind: ListKind) -> String {
    format!("{}|{subject_id}", list_kind_code(kind))
}

fn to_document(e: &ListEntry) -> Document {
    doc! {
        "_id": key(&e.subject_id, e.kind),
        "subject_id": &e.subject_id,
        "kind": list_kind_code(e.kind),
        "reason": &e.reason,
        "expires_at": time_bson(e.expires_at),
        "created_at": time_bson(e.created_at),
    }
}

fn from_document(d: &Document) -> Result<ListEntry> {
    let code = int(d, "kind")
        .and_then(|k| i32::try_from(k).ok())
        .unwrap_or(0);
    Ok(ListEntry {
        subject_id: text(d, COLLECTION, "subject_id")?,
        kind: list_kind(code)?,
        reason: text(d, COLLECTION, "reason")?,
        expires_at: time_of(d, "expires_at"),
        created_at: time_of(d, "created_at"),
    })
}

/// The filter of a listing: its conditions and the keyset position, all ANDed.
fn listing_filter(filter: &ListFilter, after: Option<(String, i64)>) -> Document {
    let mut all: Vec<Document> = Vec::new();
    if let Some(kind) = filter.kind {
        all.push(doc! { "kind": list_kind_code(kind) });
    }
    if !filter.subject_id.is_empty() {
        all.push(doc! { "subject_id": &filter.subject_id });
    }
    if !filter.include_expired {
        let now = filter.now.map_or_else(
            || {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as i64)
            },
            credence_scorer::Timestamp::nanos,
        );
        all.push(
            doc! { "$or": [ { "expires_at": Bson::Null }, { "expires_at": { "$gt": now } } ] },
        );
    }
    if let Some((subject, kind)) = after {
        all.push(doc! { "$or": [
            { "subject_id": { "$gt": &subject } },
            { "subject_id": &subject, "kind": { "$gt": kind } },
        ] });
    }
    if all.is_empty() {
        doc! {}
    } else {
        doc! { "$and": all }
    }
}

#[async_trait]
impl Lists for MongoDocuments {
    async fn put_entry(&self, entry: ListEntry) -> Result<bool> {
        let stored = self
            .call(
                "storing a list entry",
                self.collection(COLLECTION)
                    .replace_one(
                        doc! { "_id": key(&entry.subject_id, entry.kind) },
                        to_document(&entry),
                    )
                    .upsert(true),
            )
            .await?;
        Ok(stored.upserted_id.is_some())
    }

    async fn remove_entry(&self, subject_id: &str, kind: ListKind) -> Result<bool> {
        let removed = self
            .call(
                "removing a list entry",
                self.collection(COLLECTION)
                    .delete_one(doc! { "_id": key(subject_id, kind) }),
            )
            .await?;
        Ok(removed.deleted_count > 0)
    }

    async fn list_entries(&self, filter: &ListFilter, page: &Page) -> Result<Paged<ListEntry>> {
        let after = match page.after(LISTING, KEY)?.as_deref() {
            Some([KeyPart::Text(subject), KeyPart::I64(kind)]) => Some((subject.clone(), *kind)),
            _ => None,
        };
        let documents = self
            .find_all(
                COLLECTION,
                listing_filter(filter, after),
                key_order(),
                page.limit() as i64 + 1,
            )
            .await?;
        let entries = documents
            .iter()
            .map(from_document)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.paged(LISTING, entries, |e| {
            vec![
                KeyPart::Text(e.subject_id.clone()),
                KeyPart::I64(i64::from(list_kind_code(e.kind))),
            ]
        }))
    }

    async fn entries_for(&self, subject_ids: &[String]) -> Result<Vec<Vec<ListEntry>>> {
        if subject_ids.is_empty() {
            return Ok(Vec::new());
        }
        // Two `_id`s per subject: keys FerretDB's SQLite backend looks up without a scan.
        let ids: Vec<String> = subject_ids
            .iter()
            .flat_map(|s| [key(s, ListKind::Block), key(s, ListKind::Allow)])
            .collect();
        let documents = self
            .find_all(COLLECTION, doc! { "_id": { "$in": ids } }, key_order(), 0)
            .await?;
        let mut by_subject: FxHashMap<String, Vec<ListEntry>> = FxHashMap::default();
        for d in &documents {
            let entry = from_document(d)?;
            by_subject
                .entry(entry.subject_id.clone())
                .or_default()
                .push(entry);
        }
        Ok(subject_ids
            .iter()
            .map(|s| by_subject.get(s).cloned().unwrap_or_default())
            .collect())
    }
}
