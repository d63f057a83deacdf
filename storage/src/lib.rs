//! Credence storage: one trait per storage role, and the backends that implement them.
//!
//! The roles follow the polyglot design: a partitioned durable [`Bus`] for events in flight;
//! [`Profiles`], [`Rules`] (rules and scoring config, versioned) and [`Snapshots`] (live score
//! state with the bus offset it reflects) — the document store; the [`Archive`] of every
//! scored event; the [`Series`] of score points and changes (history, explanations,
//! aggregates); the social [`Graph`]; [`Lists`] of subjects; the [`Audit`] trail of changes
//! to those; and read-only SQL [`Analytics`] over all of it.
//!
//! [`embedded::Embedded`] implements every role in one process over one data directory (an
//! append-only log per bus partition and a DuckDB file). [`conformance`] holds the checks
//! every backend must pass; [`crate::conformance_tests!`] expands them into tests for one backend.
//! The cluster clients (Kafka, MongoDB protocol, CQL, InfluxDB, Dgraph) sit behind cargo
//! features: [`kafka::KafkaBus`] (feature `kafka`) is the bus on Kafka,
//! [`mongo::MongoDocuments`] (feature `mongodb`) the document roles on the MongoDB protocol,
//! and [`dgraph::DgraphGraph`] (feature `dgraph`) the graph on Dgraph.

mod analytics;
mod archive;
mod audit;
mod bus;
mod commit;
pub mod conformance;
#[cfg(feature = "dgraph")]
pub mod dgraph;
mod documents;
pub mod embedded;
mod error;
mod graph;
mod graph_search;
#[cfg(feature = "kafka")]
pub mod kafka;
mod lists;
#[cfg(feature = "mongodb")]
pub mod mongo;
mod page;
mod series;
mod stored;

use std::sync::Arc;

pub use analytics::{
    Analytics, AnalyticsPart, AnalyticsResult, AnalyticsStream, COLLECTED_RESULT_BYTES,
    QueryLimits, result_too_large,
};
pub use archive::{Archive, ArchivedEvent, EventFilter, EventLocation, ReceivedEvent};
pub use audit::{Audit, AuditEntry};
pub use bus::{Bus, BusHealth, BusRecord, Rebalance};
pub use commit::{Committer, DeadLetter, PartitionCommit, Sequential, check_distinct};
pub use documents::{
    ChangedState, Claim, Profiles, Rules, Snapshots, StoredSnapshot, SubjectFilter, SubjectProfile,
    check_fence,
};
pub use error::{Result, StorageError};
pub use graph::{Graph, Neighbor, PathStep, Relation, RelationKey, RelationKind};
pub use lists::{ListEntry, ListFilter, Lists};
pub use page::{KeyKind, KeyPart, Page, Paged};
pub use series::{
    AggregateGroupBy, AggregateQuery, AggregateRow, AggregateWindow, ScorePoint, Series, TimeRange,
};

/// Every role, as the server uses them. A backend hands out one of these.
#[derive(Clone)]
pub struct Stores {
    /// Events in flight, partitioned by subject.
    pub bus: Arc<dyn Bus>,
    /// Subject profiles.
    pub profiles: Arc<dyn Profiles>,
    /// Rule versions and scoring config versions.
    pub rules: Arc<dyn Rules>,
    /// Live score state per subject and the bus offset it reflects.
    pub snapshots: Arc<dyn Snapshots>,
    /// Every scored event.
    pub archive: Arc<dyn Archive>,
    /// Score points and score changes over time.
    pub series: Arc<dyn Series>,
    /// Relations between subjects.
    pub graph: Arc<dyn Graph>,
    /// Block and allow lists.
    pub lists: Arc<dyn Lists>,
    /// Read-only SQL over all of the data.
    pub analytics: Arc<dyn Analytics>,
    /// Who changed rules, config, lists, relations and profiles, and when.
    pub audit: Arc<dyn Audit>,
    /// The pipeline's write path (archive, series, snapshots) for whole micro-batches.
    pub committer: Arc<dyn Committer>,
}
