//! The audit trail: who changed the reference data scoring reads (rules, config, rule
//! status, list entries, relations, profiles), what they changed, and when.

use async_trait::async_trait;
use credence_scorer::Timestamp;

use crate::error::Result;

/// One recorded change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// When the change was made (server clock).
    pub at: Timestamp,
    /// Who made it: the name of the token the call carried ("anonymous" on a node without
    /// authentication).
    pub actor: String,
    /// The call that made it, e.g. `PutRule`.
    pub action: String,
    /// What it changed, e.g. `rule late_payment v3` or `3 profiles: s1, s2, s3`.
    pub target: String,
    /// A short description of the new value (never a whole payload).
    pub detail: String,
}

/// An append-only log of changes. Entries are never rewritten or removed through this
/// trait, and are read back in the order they were recorded.
#[async_trait]
pub trait Audit: Send + Sync {
    /// Appends entries, in order.
    async fn record(&self, entries: Vec<AuditEntry>) -> Result<()>;
    /// Entries recorded at or after `since`, oldest first (in the order recorded), at most
    /// `limit` of them (0: no limit).
    async fn audit_entries(&self, since: Timestamp, limit: usize) -> Result<Vec<AuditEntry>>;
}
