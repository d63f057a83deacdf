//! Block and allow lists: one entry per (subject, kind), with an optional expiry.

use async_trait::async_trait;
use credence_scorer::{ListKind, Timestamp};

use crate::error::Result;
use crate::page::{Page, Paged};

/// A subject's entry on a list. The kind is the engine's [`ListKind`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    /// The subject.
    pub subject_id: String,
    /// Which list.
    pub kind: ListKind,
    /// Why the subject is on it.
    pub reason: String,
    /// When the entry stops counting (compared with event time); `None`: never.
    pub expires_at: Option<Timestamp>,
    /// When the entry was written.
    pub created_at: Option<Timestamp>,
}

impl ListEntry {
    /// The entry as rules see it.
    pub fn for_rules(&self) -> credence_scorer::ListEntry {
        credence_scorer::ListEntry {
            kind: self.kind,
            expires_at: self.expires_at,
        }
    }
}

/// Filters of [`Lists::list_entries`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ListFilter {
    /// Only this kind (`None`: both).
    pub kind: Option<ListKind>,
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
    async fn put_entry(&self, entry: ListEntry) -> Result<bool>;
    /// Removes the entry for (subject, kind); returns whether it existed.
    async fn remove_entry(&self, subject_id: &str, kind: ListKind) -> Result<bool>;
    /// Entries ordered by subject then kind (block before allow).
    async fn list_entries(&self, filter: &ListFilter, page: &Page) -> Result<Paged<ListEntry>>;
    /// Every entry (expired or not) of each given subject, in order: what rules see.
    async fn entries_for(&self, subject_ids: &[String]) -> Result<Vec<Vec<ListEntry>>>;
}
