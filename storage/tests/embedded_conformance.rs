//! The conformance suite against the embedded backend, and a restart that must lose nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::PathBuf;
use std::sync::Arc;

use credence_scorer::{
    DedupWindow, ListKind, Rule, RuleHistory, ScoreChange, ScoringConfig, SubjectState, Timestamp,
    Value, event_digest,
};
use credence_storage::embedded::{Embedded, EmbeddedOptions};
use credence_storage::{
    ArchivedEvent, ChangedState, Claim, EventFilter, ListEntry, ListFilter, Page, QueryLimits,
    ReceivedEvent, Relation, RelationKind, ScorePoint, Stores, SubjectProfile, TimeRange,
};

/// A fresh data directory that outlives the test (the OS temp dir is cleaned elsewhere).
fn data_dir() -> PathBuf {
    tempfile::tempdir().expect("temp dir").keep()
}

fn open(dir: &PathBuf) -> Stores {
    let mut options = EmbeddedOptions::new(dir);
    options.sync = false;
    options.memory_limit = "1GB".into();
    Embedded::open(&options).expect("open embedded").stores()
}

credence_storage::conformance_tests!(open(&data_dir()));

/// The ordered, transaction-free committer (what backends without cross-role transactions
/// use) passes the committer checks over the embedded roles.
mod sequential {
    use super::*;

    fn sequential(dir: &PathBuf) -> Stores {
        let mut stores = open(dir);
        stores.committer = Arc::new(credence_storage::Sequential(stores.clone()));
        stores
    }

    credence_storage::committer_conformance_tests!(sequential(&data_dir()));
}

fn ts(nanos: i64) -> Timestamp {
    Timestamp::from_nanos(nanos)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reopen_keeps_everything_acknowledged() {
    let dir = data_dir();
    let t0 = 1_767_225_600_123_456_789;
    let profile = SubjectProfile {
        subject_id: "s1".into(),
        display_name: "One".into(),
        region: "north".into(),
        flags: vec!["vip".into()],
        consent: [("marketing".to_owned(), true)].into(),
        attributes: [("k".to_owned(), "v".to_owned())].into(),
        updated_at: Some(ts(1_767_225_600_000_000_005)),
        ..SubjectProfile::default()
    };
    let mut state = SubjectState::new("s1", 0.1 + 0.2, Arc::from("C"), ts(t0));
    state.last_event_id = "e1".into();
    state.applied_events = 3;
    state.config_version = 2;
    state.rules = vec![RuleHistory::new(
        Arc::from("late"),
        vec![ts(t0 - 1), ts(t0)],
    )];
    // The duplicate window restores exactly, floor included: its entries are the subject's
    // applied events in the archive below the committed offset.
    state.dedup = DedupWindow::new(
        Some(ts(t0 - 7)),
        [
            (ts(t0 - 1), event_digest("e0")),
            (ts(t0), event_digest("e1")),
        ],
    );
    let payload = [("days_late".to_owned(), Value::Number(0.1 + 0.7))].into();
    let event = ArchivedEvent {
        event: ReceivedEvent {
            event_id: "e1".into(),
            subject_id: "s1".into(),
            event_type: "financial".into(),
            occurred_at: Some(ts(t0)),
            payload: Some(payload),
            ..ReceivedEvent::default()
        },
        partition: 2,
        offset: 7,
        applied: true,
    };
    let point = ScorePoint {
        subject_id: "s1".into(),
        event_id: "e1".into(),
        event_type: "financial".into(),
        region: "north".into(),
        at: ts(t0),
        score: 0.1 + 0.2,
        tier: "C".into(),
        delta: -999.7,
        changes: 1,
        partition: 2,
        offset: 7,
    };
    let change = ScoreChange {
        event_id: "e1".into(),
        subject_id: "s1".into(),
        rule_id: Arc::from("late"),
        rule_version: 1,
        config_version: 2,
        old_score: 1000.0,
        new_score: 0.1 + 0.2,
        delta: 0.1 + 0.2 - 1000.0,
        factor: 1.0,
        at: ts(t0),
        reason: Arc::from("Late"),
        inputs: std::collections::BTreeMap::new(),
    };
    let relation = Relation {
        subject_id: "s1".into(),
        other_subject_id: "s2".into(),
        kind: RelationKind::Friend,
        weight: 0.25,
        since: None,
    };
    let entry = ListEntry {
        subject_id: "s1".into(),
        kind: ListKind::Block,
        reason: "fraud".into(),
        expires_at: None,
        created_at: Some(ts(1_000_000_002)),
    };
    let rule = Rule::new("late", "financial", -20.0);
    {
        let stores = open(&dir);
        stores
            .profiles
            .upsert_profiles(vec![profile.clone()])
            .await
            .unwrap();
        stores.rules.put_rule(rule.clone()).await.unwrap();
        stores.rules.put_rule(rule.clone()).await.unwrap();
        stores
            .rules
            .put_config(ScoringConfig::default())
            .await
            .unwrap();
        let other = |id: &str, offset: u64, at: i64, applied: bool| {
            let mut e = event.clone();
            e.event.event_id = id.into();
            e.event.occurred_at = Some(ts(at));
            (e.offset, e.applied) = (offset, applied);
            e
        };
        stores
            .archive
            .append_events(vec![
                other("e0", 5, t0 - 1, true),
                other("refused", 6, t0 - 1, false),
                event.clone(),
                // Archived by a role-by-role commit that never moved the offset: scored again.
                other("uncommitted", 8, t0 + 5, true),
            ])
            .await
            .unwrap();
        stores
            .series
            .append_scores(2, vec![point.clone()], vec![(7, change.clone())])
            .await
            .unwrap();
        stores.graph.put_relations(vec![relation]).await.unwrap();
        stores.lists.put_entry(entry.clone()).await.unwrap();
        let claim = stores.snapshots.claim(2).await.unwrap();
        stores
            .snapshots
            .commit(
                2,
                claim,
                8,
                vec![ChangedState {
                    state: state.clone(),
                    region: "north".into(),
                }],
                ts(t0 + 1),
            )
            .await
            .unwrap();
    }
    let stores = open(&dir);
    assert_eq!(
        stores.profiles.get_profiles(&["s1".into()]).await.unwrap(),
        vec![Some(profile)]
    );
    assert_eq!(stores.rules.rule_set_version().await.unwrap(), 2);
    assert_eq!(
        stores
            .rules
            .get_rule("late", None)
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
    // Versions continue from what was stored.
    assert_eq!(stores.rules.put_rule(rule).await.unwrap().version, 3);
    assert_eq!(
        stores
            .rules
            .get_config(None)
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
    assert_eq!(
        stores.snapshots.position(2).await.unwrap(),
        Claim {
            epoch: 1,
            next_offset: 8
        },
        "the epoch and offset survive a reopen"
    );
    let snap = stores
        .snapshots
        .get_snapshots(&["s1".into()])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    assert_eq!(snap.state, state);
    assert_eq!(snap.state.score.to_bits(), state.score.to_bits());
    assert_eq!(
        (snap.updated_at, snap.region.as_str()),
        (ts(t0 + 1), "north")
    );
    // The high-water marks survive too: the same rows again add nothing.
    stores
        .series
        .append_scores(2, vec![point.clone()], vec![(7, change.clone())])
        .await
        .unwrap();
    let events = stores
        .archive
        .list_events(&EventFilter::default(), &Page::first(0))
        .await
        .unwrap();
    assert_eq!(events.items.len(), 4);
    assert!(events.items.contains(&event));
    let history = stores
        .series
        .score_history("s1", TimeRange::default(), &Page::first(0))
        .await
        .unwrap();
    assert_eq!(history.items, vec![point]);
    let changes = stores
        .series
        .score_changes("s1", TimeRange::default(), &Page::first(0))
        .await
        .unwrap();
    assert_eq!(changes.items, vec![change]);
    let (neighbours, _) = stores.graph.neighbors("s2", 1, &[], 10).await.unwrap();
    assert_eq!(neighbours.len(), 1);
    assert_eq!(
        (neighbours[0].subject_id.as_str(), neighbours[0].path_weight),
        ("s1", 0.25)
    );
    let filter = ListFilter {
        include_expired: true,
        ..ListFilter::default()
    };
    assert_eq!(
        stores
            .lists
            .list_entries(&filter, &Page::first(0))
            .await
            .unwrap()
            .items,
        vec![entry]
    );
    let counted = stores
        .analytics
        .run_sql(
            "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM snapshots) AS n",
            QueryLimits {
                max_rows: 10,
                timeout: std::time::Duration::from_secs(30),
            },
        )
        .await
        .unwrap();
    assert_eq!(counted.rows, 1);
}

/// Snapshots are appended; a reopen keeps only the latest row of each subject once the
/// superseded ones outnumber them, and every subject restores to its latest state.
#[tokio::test(flavor = "multi_thread")]
async fn superseded_snapshot_rows_are_dropped_at_reopen() {
    let dir = data_dir();
    let subjects = 5_000;
    {
        let stores = open(&dir);
        for round in 1..=5u32 {
            let states = (0..subjects)
                .map(|i| {
                    let mut state = SubjectState::new(
                        format!("c{i}"),
                        f64::from(round),
                        Arc::from("C"),
                        ts(i64::from(round)),
                    );
                    state.applied_events = u64::from(round);
                    ChangedState {
                        state,
                        region: String::new(),
                    }
                })
                .collect();
            stores
                .snapshots
                .commit(
                    0,
                    Claim {
                        epoch: 0,
                        next_offset: u64::from(round - 1),
                    },
                    u64::from(round),
                    states,
                    ts(0),
                )
                .await
                .unwrap();
        }
    }
    let stores = open(&dir);
    let count = |sql: &'static str| {
        let stores = stores.clone();
        async move {
            let result = stores
                .analytics
                .run_sql(
                    sql,
                    QueryLimits {
                        max_rows: 10,
                        timeout: std::time::Duration::from_secs(30),
                    },
                )
                .await
                .unwrap();
            let mut reader =
                arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(result.ipc), None)
                    .unwrap();
            let batch = reader.next().unwrap().unwrap();
            batch
                .column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap()
                .value(0)
        }
    };
    assert_eq!(count("select count(*) from store.snapshots").await, 5_000);
    assert_eq!(
        count("select count(*) from snapshots where score = 5").await,
        5_000
    );
    let found = stores
        .snapshots
        .get_snapshots(&["c0".into(), "c4999".into()])
        .await
        .unwrap();
    for s in found {
        let s = s.unwrap().state;
        assert_eq!((s.score, s.applied_events), (5.0, 5));
    }
    assert_eq!(stores.snapshots.committed_offset(0).await.unwrap(), 5);
}

/// A data directory written before rule histories were bytes and before snapshots had a
/// region and a duplicate window: its snapshots load with their JSON histories, and new
/// commits write the current form.
#[tokio::test(flavor = "multi_thread")]
async fn snapshots_of_an_older_schema_load() {
    let dir = data_dir();
    {
        let old = duckdb::Connection::open(dir.join("credence.duckdb")).unwrap();
        old.execute_batch(
            "CREATE SCHEMA store;
             CREATE TABLE store.snapshots (
                 sid BIGINT NOT NULL, subject_id VARCHAR NOT NULL, bus_partition UINTEGER,
                 score DOUBLE, tier VARCHAR, last_time BIGINT, last_event_id VARCHAR,
                 applied_events UBIGINT, config_version UINTEGER, rules VARCHAR,
                 updated_at BIGINT);
             INSERT INTO store.snapshots VALUES (1, 'old', 0, 12.5, 'B', 7, 'e7', 3, 1,
                 '[{\"rule_id\":\"late\",\"applications\":[\"1970-01-01T00:00:00.000000005Z\"]}]', 9);",
        )
        .unwrap();
    }
    let stores = open(&dir);
    let got = stores
        .snapshots
        .get_snapshots(&["old".into()])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    let mut expected = SubjectState::new("old", 12.5, Arc::from("B"), ts(7));
    expected.last_event_id = "e7".into();
    expected.applied_events = 3;
    expected.config_version = 1;
    expected.rules = vec![RuleHistory::new(Arc::from("late"), vec![ts(5)])];
    assert_eq!(got.state, expected);
    assert_eq!(got.region, "");
}
