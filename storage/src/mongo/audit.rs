//! The audit trail: one document per entry, read in (`at`, `_id`) order. The `_id`s are
//! ObjectIds made here in the order of the entries, so entries recorded together at the
//! same nanosecond keep their order; entries of several nodes interleave by time.

use async_trait::async_trait;
use credence_scorer::Timestamp;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{Document, doc};

use super::{MongoDocuments, int, text};
use crate::audit::{Audit, AuditEntry};
use crate::error::{Result, StorageError};

const COLLECTION: &str = "audit";

fn from_document(d: &Document) -> Result<AuditEntry> {
    let field = |key| text(d, COLLECTION, key);
    Ok(AuditEntry {
        at: Timestamp::from_nanos(int(d, "at").ok_or_else(|| {
            StorageError::Backend(
                "an audit document has no time \"at\"; it was written by something else".into(),
            )
        })?),
        actor: field("actor")?,
        action: field("action")?,
        target: field("target")?,
        detail: field("detail")?,
    })
}

#[async_trait]
impl Audit for MongoDocuments {
    async fn record(&self, entries: Vec<AuditEntry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let documents: Vec<Document> = entries
            .iter()
            .map(|e| {
                doc! {
                    "_id": ObjectId::new(),
                    "at": e.at.nanos(),
                    "actor": &e.actor,
                    "action": &e.action,
                    "target": &e.target,
                    "detail": &e.detail,
                }
            })
            .collect();
        self.call(
            "recording audit entries",
            self.collection(COLLECTION).insert_many(documents),
        )
        .await?;
        Ok(())
    }

    async fn audit_entries(&self, since: Timestamp, limit: usize) -> Result<Vec<AuditEntry>> {
        let documents = self
            .find_all(
                COLLECTION,
                doc! { "at": { "$gte": since.nanos() } },
                doc! { "at": 1, "_id": 1 },
                i64::try_from(limit).unwrap_or(i64::MAX),
            )
            .await?;
        documents.iter().map(from_document).collect()
    }
}
