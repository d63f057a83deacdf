//! The archive: every event that reached the scorer, with where it sat on the bus.

use async_trait::async_trait;
use credence_proto::v1 as pb;
use credence_scorer::Timestamp;

use crate::commit::DeadLetter;
use crate::error::Result;
use crate::page::{Page, Paged};

/// An archived event.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchivedEvent {
    /// The event as accepted (with `received_at` set).
    pub event: pb::Event,
    /// Bus partition.
    pub partition: u32,
    /// Bus offset within the partition.
    pub offset: u64,
    /// Whether the scorer applied it (false: unknown subject, or a duplicate).
    pub applied: bool,
}

/// Filters of [`Archive::list_events`]; empty fields do not filter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventFilter {
    /// Subject.
    pub subject_id: String,
    /// Event type.
    pub event_type: String,
    /// Earliest `occurred_at`, inclusive.
    pub from: Option<Timestamp>,
    /// Latest `occurred_at`, exclusive.
    pub to: Option<Timestamp>,
}

/// Every scored event, append-only, one row per (partition, offset).
#[async_trait]
pub trait Archive: Send + Sync {
    /// Appends events, idempotently: an event whose (partition, offset) is stored is left as
    /// stored. Callers write each partition's events in offset order (see
    /// [`crate::Committer`]).
    async fn append_events(&self, events: Vec<ArchivedEvent>) -> Result<()>;
    /// Parks records the pipeline could not read. Idempotent by (partition, offset): parking
    /// one twice keeps one copy. `at` is when (the commit's time).
    async fn park_dead_letters(&self, letters: Vec<DeadLetter>, at: Timestamp) -> Result<()>;
    /// Events matching the filter, ordered by `occurred_at`, event id, partition, offset
    /// (the keyset the pages follow).
    async fn list_events(&self, filter: &EventFilter, page: &Page) -> Result<Paged<ArchivedEvent>>;
}
