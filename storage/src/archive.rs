//! The archive: every event that reached the scorer, with where it sat on the bus.

use async_trait::async_trait;
use credence_scorer::{Payload, Timestamp};

use crate::commit::DeadLetter;
use crate::error::Result;
use crate::page::{Page, Paged};

/// Where an event happened, as the client gave it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventLocation {
    /// Region name ("" when not given).
    pub region: String,
    /// District name ("" when not given).
    pub district: String,
    /// Latitude in degrees (informational; scoring does not read it).
    pub lat: f64,
    /// Longitude in degrees (informational; scoring does not read it).
    pub lon: f64,
}

/// An event exactly as the client sent it, with the time the platform accepted it.
///
/// Not the engine's [`credence_scorer::Event`]: the archive keeps every field, also those
/// the engine ignores (coordinates, evidence link, `received_at`) and the difference between
/// an absent payload and an empty one, so that a listing hands back what was sent. Fields
/// the contract leaves optional are `Option` for the same reason.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReceivedEvent {
    /// Idempotency key.
    pub event_id: String,
    /// The subject.
    pub subject_id: String,
    /// Category.
    pub event_type: String,
    /// Kind inside the category ("" when not given).
    pub event_subtype: String,
    /// Reporting system ("" when not given).
    pub source_system: String,
    /// Event time. Ingestion requires it; a record written straight to the bus may lack it.
    pub occurred_at: Option<Timestamp>,
    /// Where it happened.
    pub location: Option<EventLocation>,
    /// Free-form details; `None` when the event had none, which is not an empty payload.
    /// Numbers keep their bits. Non-finite numbers, which ingestion refuses, read back as
    /// null.
    pub payload: Option<Payload>,
    /// Link to evidence kept elsewhere ("" when not given).
    pub evidence_uri: String,
    /// When the platform accepted it.
    pub received_at: Option<Timestamp>,
}

/// An archived event.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchivedEvent {
    /// The event as accepted (with `received_at` set).
    pub event: ReceivedEvent,
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
