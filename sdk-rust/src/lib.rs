//! Rust SDK for Credence, the event-scoring platform (synthetic data only).
//!
//! - [`Client`]: a connection to a node with a typed method for every RPC of its four
//!   services (ingestion, scoring, query, graph), friendly types in and out (builders,
//!   `chrono` times, `serde_json` payloads), retries with back-off on UNAVAILABLE for calls
//!   safe to repeat, timeouts, keep-alive, a bearer token, TLS with a custom CA, gzip.
//!   Paged listings also come as a [`futures::Stream`] that follows the cursors.
//! - [`Producer`]: batching, backpressure, retries without duplicates, per-event outcomes.
//! - [`Error`]: one variant per gRPC code, with the server's message and the attempts made.
//! - With the `local` feature: `simulate_locally`, the node's `Simulate` run in this process
//!   (the same code, so the same numbers to the bit), and `load_rule_file`, a rule file read
//!   as `credence rules check` reads it.
//! - [`proto`]: the generated `credence.v1` types and clients, for anything else.
//! - The `serde` feature: `Serialize` and `Deserialize` on every data type (events,
//!   profiles, rules, configs, queries, results, errors), in a JSON shape that is a
//!   contract: snake_case field names and enum values, RFC 3339 times, durations in seconds.
//!
//! ```no_run
//! use credence::{Client, Event};
//! use serde_json::json;
//!
//! # async fn run() -> credence::Result<()> {
//! let client = Client::connect("http://127.0.0.1:50051").await?;
//! let event = Event::new("e-1", "subject-0001", "financial", chrono::Utc::now())
//!     .subtype("late_payment")
//!     .payload(json!({"days_late": 45}));
//! client.publish_events(&[event]).await?;
//! let explanation = client
//!     .explain_score(&credence::ExplainQuery::new("subject-0001"))
//!     .await?;
//! for change in explanation.changes {
//!     println!("{} v{}: {:+.1}", change.rule_id, change.rule_version, change.delta);
//! }
//! # Ok(()) }
//! ```

/// Conversions of a crate enum to and from the generated enum of the same variant names.
macro_rules! wire_enum {
    ($name:ident, $pb:ty, [$($variant:ident),+ $(,)?]) => {
        impl $name {
            #[allow(dead_code, reason = "not every enum is sent")]
            pub(crate) fn to_proto(self) -> i32 {
                match self {
                    $(Self::$variant => <$pb>::$variant as i32,)+
                }
            }

            #[allow(dead_code, reason = "not every enum is received")]
            pub(crate) fn from_proto(n: i32) -> $crate::Result<Self> {
                match <$pb>::try_from(n) {
                    $(Ok(<$pb>::$variant) => Ok(Self::$variant),)+
                    _ => Err($crate::Error::Protocol(format!(
                        concat!("unknown ", stringify!($name), " {}"),
                        n
                    ))),
                }
            }
        }
    };
}

mod client;
mod error;
mod graph;
mod ingestion;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "local")]
mod local;
mod producer;
mod query;
mod scoring;
#[cfg(feature = "serde")]
mod serde_support;
mod time;

pub use client::{Client, ClientBuilder, Page, RetryPolicy};
pub use error::{Error, Result};
pub use graph::{
    Association, Contributor, Neighbor, NeighborQuery, Neighbors, Path, PathStep, Relation,
    RelationKey, RelationKind, RelationsResult,
};
pub use ingestion::{
    Event, EventOutcome, EventResult, Location, Profile, ProfileOutcome, ProfileResult,
    PublishResult, StreamSummary, UpsertResult,
};
#[cfg(feature = "kafka")]
pub use kafka::{Delivery as KafkaDelivery, KafkaProducer, KafkaProducerBuilder};
#[cfg(feature = "local")]
pub use local::{RuleFile, load_rule_file, simulate_locally};
pub use producer::{Outcome, OutcomeKind, Producer, ProducerBuilder, ProducerStats, Transport};
pub use query::{
    AggregateGroupBy, AggregateQuery, AggregateRow, AggregateWindow, Analytics, EventQuery,
    HistoryQuery, ScorePoint, SubjectQuery, SubjectSummary, SubjectView, TierCount,
    TierDistribution,
};
pub use scoring::{
    Alert, Cap, Condition, ExplainQuery, Explanation, ListEntry, ListEntryQuery, ListKind,
    Multiplier, Operator, Rule, RuleList, RuleQuery, RuleStatus, ScoreChange, ScoreSnapshot,
    ScoringConfig, Simulation, SimulationResult, Tier,
};

/// The examples of this crate's README and of the repository's README, compiled as doc tests
/// so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
#[doc = include_str!("../../README.md")]
pub struct ReadmeExamples;

/// The generated `credence.v1` messages, enums and service clients (see `proto/` for the
/// contracts). [`Client::channel`] gives a channel to build the generated clients on.
pub mod proto {
    pub use credence_proto::v1::*;
    pub use credence_proto::{json, partition_of};
}
