//! The time series: one score point per scored event, and every score change.

use async_trait::async_trait;
use credence_scorer::{ScoreChange, Timestamp};

use crate::error::Result;
use crate::page::{Page, Paged};

/// The score of a subject right after one event.
#[derive(Clone, Debug, PartialEq)]
pub struct ScorePoint {
    /// The subject.
    pub subject_id: String,
    /// The event.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// The subject's profile region when scored ("" without a profile).
    pub region: String,
    /// Event time.
    pub at: Timestamp,
    /// Score after the event.
    pub score: f64,
    /// Tier after the event.
    pub tier: String,
    /// The sum of the rule deltas of the event (decay is not in it).
    pub delta: f64,
    /// Number of score changes (rule applications) the event made.
    pub changes: u32,
    /// Bus partition of the event.
    pub partition: u32,
    /// Bus offset of the event.
    pub offset: u64,
}

/// A time range; open ends do not bound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive start.
    pub from: Option<Timestamp>,
    /// Exclusive end.
    pub to: Option<Timestamp>,
}

/// The width of an aggregate window, aligned in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggregateWindow {
    /// One hour, aligned to the hour.
    Hour,
    /// One day, aligned to midnight.
    Day,
}

/// What aggregate rows are grouped by, beside the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AggregateGroupBy {
    /// One row per subject and window.
    Subject,
    /// One row per region (the score point's; "" without a profile) and window.
    Region,
    /// One row per event type and window.
    EventType,
}

/// One window of one group.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateRow {
    /// Start of the window (inclusive).
    pub window_start: Timestamp,
    /// The group's key: a subject id, region or event type.
    pub key: String,
    /// Events scored in the window.
    pub events: u64,
    /// Score changes made in the window.
    pub changes: u64,
    /// Sum of all deltas.
    pub delta_sum: f64,
    /// Sum of positive deltas.
    pub delta_positive: f64,
    /// Sum of negative deltas.
    pub delta_negative: f64,
}

/// What [`Series::aggregates`] computes.
#[derive(Clone, Debug, PartialEq)]
pub struct AggregateQuery {
    /// Window: hour or day.
    pub window: AggregateWindow,
    /// Grouping: subject, region or event type.
    pub group_by: AggregateGroupBy,
    /// Time range of event times.
    pub range: TimeRange,
    /// Only this subject ("" for all).
    pub subject_id: String,
    /// Only this region ("" for all).
    pub region: String,
    /// Only this event type ("" for all).
    pub event_type: String,
}

/// Score points and changes, append-only, by subject and time.
#[async_trait]
pub trait Series: Send + Sync {
    /// Appends the points and changes of one micro-batch of `partition`; `changes` carry the
    /// bus offset of their event, in the engine's order (a change's index within its event
    /// is its position among the changes of that offset). Idempotent: points are keyed by
    /// (partition, offset), changes by (partition, offset, index), and a stored key is left
    /// as stored; callers write each partition in offset order.
    async fn append_scores(
        &self,
        partition: u32,
        points: Vec<ScorePoint>,
        changes: Vec<(u64, ScoreChange)>,
    ) -> Result<()>;
    /// A subject's points in event-time order, then bus order (partition, offset).
    async fn score_history(
        &self,
        subject_id: &str,
        range: TimeRange,
        page: &Page,
    ) -> Result<Paged<ScorePoint>>;
    /// A subject's changes in event-time order, in the order the engine made them: ordered by
    /// (event time, partition, offset, index). A subject's events all sit on one partition
    /// and the engine applies them in offset order, so this is the engine's order with no
    /// process-wide counter.
    async fn score_changes(
        &self,
        subject_id: &str,
        range: TimeRange,
        page: &Page,
    ) -> Result<Paged<ScoreChange>>;
    /// Windowed counts and score deltas, ordered by window start then key.
    async fn aggregates(&self, query: &AggregateQuery, page: &Page) -> Result<Paged<AggregateRow>>;
}
