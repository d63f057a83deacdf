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

/// Every scored event, append-only.
#[async_trait]
pub trait Archive: Send + Sync {
    /// Appends events (a micro-batch of one partition).
    async fn append_events(&self, events: Vec<ArchivedEvent>) -> Result<()>;
    /// Removes the events of `partition` at `offset` or later: recovery calls it with the
    /// committed offset, dropping what a crash left past the last snapshot commit (those
    /// events are scored again).
    async fn truncate_events(&self, partition: u32, offset: u64) -> Result<u64>;
    /// Parks records the pipeline could not read. Idempotent by (partition, offset): parking
    /// one twice keeps one copy. `at` is when (the commit's time).
    async fn park_dead_letters(&self, letters: Vec<DeadLetter>, at: Timestamp) -> Result<()>;
    /// Events matching the filter, ordered by `occurred_at` then event id.
    async fn list_events(&self, filter: &EventFilter, page: &Page) -> Result<Paged<ArchivedEvent>>;
}
