//! Block and allow lists: one entry per (subject, kind), with an optional expiry.

use async_trait::async_trait;
use credence_proto::v1 as pb;
use credence_scorer::Timestamp;

use crate::error::Result;
use crate::page::{Page, Paged};

/// Filters of [`Lists::list_entries`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListFilter {
    /// Only this kind (`pb::ListKind` as i32; 0 for both).
    pub kind: i32,
    /// Only this subject ("" for all).
    pub subject_id: String,
    /// Also entries whose `expires_at` is at or before `now`.
    pub include_expired: bool,
    /// The time expiry is judged at.
    pub now: Option<Timestamp>,
}

/// List entries.
#[async_trait]
pub trait Lists: Send + Sync {
    /// Creates or replaces the entry for (subject, kind); returns whether it was new.
    async fn put_entry(&self, entry: pb::ListEntry) -> Result<bool>;
    /// Removes the entry for (subject, kind); returns whether it existed.
    async fn remove_entry(&self, subject_id: &str, kind: i32) -> Result<bool>;
    /// Entries ordered by subject then kind.
    async fn list_entries(&self, filter: &ListFilter, page: &Page) -> Result<Paged<pb::ListEntry>>;
    /// Every entry (expired or not) of each given subject, in order: what rules see.
    async fn entries_for(&self, subject_ids: &[String]) -> Result<Vec<Vec<pb::ListEntry>>>;
}
