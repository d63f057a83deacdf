//! The conformance suite: what every backend of every role must do.
//!
//! One module per role, each check a `pub async fn` taking the backend's [`Stores`], and one
//! macro per role that expands that role's checks into `#[tokio::test]`s for one backend
//! (given an expression that opens a fresh, empty one): a backend that implements only the
//! bus runs [`crate::bus_conformance_tests!`], one that implements everything runs
//! [`crate::conformance_tests!`]. The checks use distinct, known numbers so that a backend
//! that drops, reorders or rounds anything fails them. Where a role allows a backend to lack
//! a feature, the check passes its result through [`accept_unsupported`].

#![allow(
    unreachable_pub,
    reason = "the checks are public through the glob re-exports below"
)]

pub mod analytics;
pub mod archive;
pub mod audit;
pub mod bus;
pub mod committer;
pub mod graph;
pub mod lists;
pub mod profiles;
pub mod rules;
pub mod series;
pub mod snapshots;

pub use analytics::*;
pub use archive::*;
pub use audit::*;
pub use bus::*;
pub use committer::*;
pub use graph::*;
pub use lists::*;
pub use profiles::*;
pub use rules::*;
pub use series::*;
pub use snapshots::*;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use credence_scorer::{
    DedupWindow, ListKind, Payload, Rule, RuleHistory, RuleStatus, ScoreChange, ScoringConfig,
    SubjectState, Timestamp, Value, event_digest,
};

use crate::{
    AggregateGroupBy, AggregateRow, AggregateWindow, ArchivedEvent, ChangedState, Claim,
    EventFilter, EventLocation, ListEntry, ListFilter, Neighbor, Page, Paged, PathStep,
    QueryLimits, ReceivedEvent, Relation, RelationKey, RelationKind, Result, ScorePoint,
    StorageError, Stores, SubjectFilter, SubjectProfile, TimeRange,
};

/// The value of a call a role may answer with [`StorageError::Unsupported`]: `Some` on
/// success, `None` when unsupported (the check skips what depends on it); any other error
/// fails the check.
pub fn accept_unsupported<T>(result: Result<T>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(StorageError::Unsupported(what)) => {
            eprintln!("skipped, unsupported by this backend: {what}");
            None
        }
        Err(other) => panic!("expected success or Unsupported, got {other:?}"),
    }
}

/// Pages through a listing with page sizes 1 to 3 and checks the pages add up to `full`
/// (the listing in one page), each page within its size; then checks that forged tokens
/// are refused as Invalid, quoting at most a short prefix of them.
async fn pages_add_up<T, F, Fut>(what: &str, full: &[T], fetch: F)
where
    T: Clone + Debug + PartialEq,
    F: Fn(Page) -> Fut,
    Fut: Future<Output = Result<Paged<T>>>,
{
    for size in 1..=3_u32 {
        let mut token = String::new();
        let mut got = Vec::new();
        for _ in 0..=full.len() + 1 {
            let page = fetch(Page { size, token }).await.expect(what);
            assert!(page.items.len() <= size as usize, "{what}: page over size");
            got.extend(page.items);
            if page.next_token.is_empty() {
                break;
            }
            token = page.next_token;
        }
        assert_eq!(got, full, "{what}, paged {size} at a time");
    }
    let long = format!("1{}", "A".repeat(300));
    for forged in ["bogus", "p5", "p-1", "1", "1AAAA", "1____", long.as_str()] {
        match fetch(Page {
            size: 1,
            token: forged.to_owned(),
        })
        .await
        {
            Err(StorageError::Invalid(msg)) => {
                assert!(msg.contains("page_token"), "{what}: {msg}");
                assert!(
                    !msg.contains(&long[..40]),
                    "{what} quotes a forged token whole"
                );
            }
            other => panic!("{what}: forged token {forged:?} must be Invalid, got {other:?}"),
        }
    }
}

/// States to commit, all listed under `region`.
fn changed(states: Vec<SubjectState>, region: &str) -> Vec<ChangedState> {
    states
        .into_iter()
        .map(|state| ChangedState {
            state,
            region: region.to_owned(),
        })
        .collect()
}

/// A claim at epoch 0 (a partition nobody claimed) expecting `next_offset`.
fn unclaimed(next_offset: u64) -> Claim {
    Claim {
        epoch: 0,
        next_offset,
    }
}

/// 2026-01-01T00:00:00Z in nanoseconds.
const T0: i64 = 1_767_225_600_000_000_000;
/// An hour in nanoseconds.
const HOUR: i64 = 3_600_000_000_000;

fn ts(nanos: i64) -> Timestamp {
    Timestamp::from_nanos(nanos)
}

fn profile(id: &str, region: &str) -> SubjectProfile {
    SubjectProfile {
        subject_id: id.into(),
        display_name: format!("Name of {id}"),
        birth_year: 1990,
        region: region.into(),
        district: format!("{region}-1"),
        occupation: "tester".into(),
        flags: vec!["vip".into(), "new".into()],
        consent: [
            ("marketing".to_owned(), true),
            ("research".to_owned(), false),
        ]
        .into(),
        attributes: [("colour".to_owned(), "blue".to_owned())].into(),
        updated_at: Some(ts(T0 + 123_456_789)),
    }
}

fn state(id: &str, score: f64, tier: &str) -> SubjectState {
    let mut s = SubjectState::new(id, score, Arc::from(tier), ts(T0 + 987_654_321));
    s.last_event_id = format!("{id}-e9");
    s.applied_events = 9;
    s.config_version = 3;
    s.dedup = DedupWindow::new(
        Some(ts(T0 - HOUR)),
        [
            (ts(T0 + 1), event_digest("x")),
            (ts(T0 + HOUR + 7), event_digest("y")),
        ],
    );
    s.rules = vec![
        RuleHistory::new(Arc::from("late"), vec![ts(T0 + 1), ts(T0 + HOUR + 7)]),
        RuleHistory::new(Arc::from("fraud"), vec![ts(T0 - 5)]),
    ];
    s
}

fn event(id: &str, subject: &str, event_type: &str, at: i64) -> ReceivedEvent {
    let inner: BTreeMap<String, Value> = [("x".to_owned(), Value::Number(0.1 + 0.2))].into();
    let payload: Payload = [
        ("days_late", Value::Number(45.0)),
        ("tiny", Value::Number(5e-324)),
        ("tag", Value::String("ünï\"code".into())),
        ("ok", Value::Bool(true)),
        ("none", Value::Null),
        ("nested", Value::Map(inner)),
        (
            "list",
            Value::List(vec![Value::Number(-1.5), Value::Number(2.0)]),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    ReceivedEvent {
        event_id: id.into(),
        subject_id: subject.into(),
        event_type: event_type.into(),
        event_subtype: "sub".into(),
        source_system: "bank".into(),
        occurred_at: Some(ts(at)),
        location: Some(EventLocation {
            region: "north".into(),
            district: "n-1".into(),
            lat: 59.123_456_789,
            lon: -0.1,
        }),
        payload: Some(payload),
        evidence_uri: format!("s3://evidence/{id}"),
        received_at: Some(ts(at + 1)),
    }
}

fn archived(event: ReceivedEvent, partition: u32, offset: u64, applied: bool) -> ArchivedEvent {
    ArchivedEvent {
        event,
        partition,
        offset,
        applied,
    }
}

fn point(
    subject: &str,
    event_type: &str,
    region: &str,
    at: i64,
    delta: f64,
    changes: u32,
    offset: u64,
) -> ScorePoint {
    ScorePoint {
        subject_id: subject.into(),
        event_id: format!("{subject}-{offset}"),
        event_type: event_type.into(),
        region: region.into(),
        at: ts(at),
        score: 1000.0 + delta,
        tier: "C".into(),
        delta,
        changes,
        partition: 0,
        offset,
    }
}

fn change(subject: &str, rule: &str, at: i64, delta: f64) -> ScoreChange {
    ScoreChange {
        event_id: format!("{subject}-{at}"),
        subject_id: subject.into(),
        rule_id: Arc::from(rule),
        rule_version: 2,
        config_version: 1,
        old_score: 1000.0,
        new_score: 1000.0 + delta,
        delta,
        factor: 1.5,
        at: ts(at),
        reason: Arc::from(format!("because {rule}")),
        inputs: BTreeMap::from([
            (
                "subject.flags".to_owned(),
                Value::List(vec![Value::String("vip".into())]),
            ),
            ("list.block".to_owned(), Value::Bool(false)),
            ("association".to_owned(), Value::Number(0.1 + 0.7)),
        ]),
    }
}

/// Expands the named checks of [`crate::conformance`] into tests for one backend. The
/// tests run on a multi-thread runtime, as the server does (blocking backends rely on it).
#[doc(hidden)]
#[macro_export]
macro_rules! conformance_checks {
    ($open:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $check() {
                let stores = $open;
                $crate::conformance::$check(stores).await;
            }
        )*
    };
}

/// The bus checks, as tests for one backend (`$open`: an async expression evaluating to a
/// fresh, empty [`Stores`]; keep temporary directories alive inside the backend or leak them).
#[macro_export]
macro_rules! bus_conformance_tests {
    ($open:expr) => {
        $crate::conformance_checks!($open;
            bus_appends_and_reads_in_order,
            bus_reads_from_any_offset_of_any_partition,
            bus_assigns_every_partition_to_a_sole_consumer,
        );
    };
}

/// The profile checks, as tests for one backend (see [`crate::bus_conformance_tests!`]).
#[macro_export]
macro_rules! profiles_conformance_tests {
    ($open:expr) => {
        $crate::conformance_checks!($open; profiles_create_replace_and_get);
    };
}

/// The rule and config checks, as tests for one backend (see [`crate::bus_conformance_tests!`]).
#[macro_export]
macro_rules! rules_conformance_tests {
    ($open:expr) => {
        $crate::conformance_checks!($open; rules_and_configs_are_versioned);
    };
}

/// The snapshot checks, as tests for one backend (see [`crate::bus_conformance_tests!`]).
#[macro_export]
macro_rules! snapshots_conformance_tests {
    ($open:expr) => {
        $crate::conformance_checks!($open;
            snapshots_commit_and_restore_exactly,
            snapshots_claims_fence_old_owners,
            snapshots_list_filter_page_and_count_tiers,
        );
    };
}

/// The archive checks, as tests for one backend (see [`crate::bus_conformance_tests!`]).
#[macro_export]
macro_rules! archive_conformance_tests {
    ($open:expr) => {
        $crate::conformance_checks!($open; archive_round_trips_filters_pages_and_dedups);
    };
}

/// The series checks, as tests for one backend (see [`crate::bus_conformance_tests!`]).
#[macro_export]
macro_rules! series_conformance_tests {
    ($open:expr) => {
        $crate::conformance_checks!($open; series_history_changes_and_aggregates);
    };
}

/// The graph checks, as tests for one backend (see [`crate::bus_conformance_tests!`]).
#[macro_export]
macro_rules! graph_conformance_tests {
    ($open:expr) => {
        $crate::conformance_checks!($open;
            graph_neighbors_paths_and_updates,
            graph_path_search_stops_at_its_budget,
        );
    };
}

/// The list checks, as tests for one backend (see [`crate::bus_conformance_tests!`]).
#[macro_export]
macro_rules! lists_conformance_tests {
    ($open:expr) => {
        $crate::conformance_checks!($open; lists_filter_expire_and_page);
    };
}

/// The analytics checks, as tests for one backend (see [`crate::bus_conformance_tests!`]).
#[macro_export]
macro_rules! analytics_conformance_tests {
    ($open:expr) => {
        $crate::conformance_checks!($open;
            analytics_answers_arrow_ipc,
            analytics_refuses_writes_files_and_slow_queries,
        );
    };
}

/// The audit checks, as tests for one backend (see [`crate::bus_conformance_tests!`]).
#[macro_export]
macro_rules! audit_conformance_tests {
    ($open:expr) => {
        $crate::conformance_checks!($open; audit_keeps_entries_in_order);
    };
}

/// The committer checks, as tests for one backend (see [`crate::bus_conformance_tests!`]).
#[macro_export]
macro_rules! committer_conformance_tests {
    ($open:expr) => {
        $crate::conformance_checks!($open;
            committer_writes_every_role_then_the_offset,
            committer_fences_an_old_owner,
            committer_rewrites_nothing_twice,
            committer_parks_dead_letters_once,
        );
    };
}

/// Every role's checks, as tests for one backend that implements them all.
#[macro_export]
macro_rules! conformance_tests {
    ($open:expr) => {
        $crate::bus_conformance_tests!($open);
        $crate::profiles_conformance_tests!($open);
        $crate::rules_conformance_tests!($open);
        $crate::snapshots_conformance_tests!($open);
        $crate::archive_conformance_tests!($open);
        $crate::series_conformance_tests!($open);
        $crate::graph_conformance_tests!($open);
        $crate::lists_conformance_tests!($open);
        $crate::audit_conformance_tests!($open);
        $crate::analytics_conformance_tests!($open);
        $crate::committer_conformance_tests!($open);
    };
}
