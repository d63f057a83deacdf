//! The conformance suite: what every backend of every role must do.
//!
//! Each check is a `pub async fn` taking the backend's [`Stores`]; [`crate::conformance_tests!`]
//! expands all of them into `#[tokio::test]`s for one backend, given an expression that
//! opens a fresh, empty one. The checks use distinct, known numbers so that a backend that
//! drops, reorders or rounds anything fails them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use credence_proto::v1 as pb;
use credence_scorer::{
    Rule, RuleHistory, RuleStatus, ScoreChange, ScoringConfig, SubjectState, Timestamp, Value,
    event_digest,
};
use prost_types::value::Kind;

use crate::{
    ArchivedEvent, EventFilter, ListFilter, Page, QueryLimits, RelationKey, ScorePoint,
    StorageError, Stores, SubjectFilter, TimeRange,
};

/// 2026-01-01T00:00:00Z in nanoseconds.
const T0: i64 = 1_767_225_600_000_000_000;
const HOUR: i64 = 3_600_000_000_000;

fn ts(nanos: i64) -> Timestamp {
    Timestamp::from_nanos(nanos)
}

fn pb_ts(nanos: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: nanos.div_euclid(1_000_000_000),
        nanos: nanos.rem_euclid(1_000_000_000) as i32,
    }
}

fn profile(id: &str, region: &str) -> pb::Profile {
    pb::Profile {
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
        updated_at: Some(pb_ts(T0 + 123_456_789)),
    }
}

fn state(id: &str, score: f64, tier: &str) -> SubjectState {
    let mut s = SubjectState::new(id, score, Arc::from(tier), ts(T0 + 987_654_321));
    s.last_event_id = format!("{id}-e9");
    s.applied_events = 9;
    s.config_version = 3;
    s.applied_event_digests.insert(event_digest("x"));
    s.rules = vec![
        RuleHistory::new(Arc::from("late"), vec![ts(T0 + 1), ts(T0 + HOUR + 7)]),
        RuleHistory::new(Arc::from("fraud"), vec![ts(T0 - 5)]),
    ];
    s
}

/// What a backend returns for a committed state: everything but the digests.
fn without_digests(mut s: SubjectState) -> SubjectState {
    s.applied_event_digests.clear();
    s
}

fn number(n: f64) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::NumberValue(n)),
    }
}

fn event(id: &str, subject: &str, event_type: &str, at: i64) -> pb::Event {
    let mut inner = prost_types::Struct::default();
    inner.fields.insert("x".into(), number(0.1 + 0.2));
    let mut payload = prost_types::Struct::default();
    payload.fields.insert("days_late".into(), number(45.0));
    payload.fields.insert("tiny".into(), number(5e-324));
    payload.fields.insert(
        "tag".into(),
        prost_types::Value {
            kind: Some(Kind::StringValue("ünï\"code".into())),
        },
    );
    payload.fields.insert(
        "ok".into(),
        prost_types::Value {
            kind: Some(Kind::BoolValue(true)),
        },
    );
    payload.fields.insert(
        "nested".into(),
        prost_types::Value {
            kind: Some(Kind::StructValue(inner)),
        },
    );
    payload.fields.insert(
        "list".into(),
        prost_types::Value {
            kind: Some(Kind::ListValue(prost_types::ListValue {
                values: vec![number(-1.5), number(2.0)],
            })),
        },
    );
    pb::Event {
        event_id: id.into(),
        subject_id: subject.into(),
        event_type: event_type.into(),
        event_subtype: "sub".into(),
        source_system: "bank".into(),
        occurred_at: Some(pb_ts(at)),
        location: Some(pb::Location {
            region: "north".into(),
            district: "n-1".into(),
            lat: 59.123_456_789,
            lon: -0.1,
        }),
        payload: Some(payload),
        evidence_uri: format!("s3://evidence/{id}"),
        received_at: Some(pb_ts(at + 1)),
    }
}

fn archived(event: pb::Event, partition: u32, offset: u64, applied: bool) -> ArchivedEvent {
    ArchivedEvent {
        event,
        partition,
        offset,
        applied,
    }
}

/// Appended records come back in order with their offsets, and the end watch moves.
pub async fn bus_appends_and_reads_in_order(stores: Stores) {
    use crate::BusRecord;
    let bus = &stores.bus;
    let before = *bus.end(0).borrow();
    let offsets = bus
        .append(vec![
            BusRecord {
                partition: 0,
                payload: b"one".to_vec(),
            },
            BusRecord {
                partition: 0,
                payload: b"two".to_vec(),
            },
        ])
        .await
        .expect("append");
    let offsets: Vec<u64> = offsets
        .into_iter()
        .map(|o| o.expect("every record appended"))
        .collect();
    assert_eq!(offsets, vec![before, before + 1]);
    assert_eq!(*bus.end(0).borrow(), before + 2);
    let read = bus.read(0, before, 10).await.expect("read");
    assert_eq!(
        read,
        vec![(before, b"one".to_vec()), (before + 1, b"two".to_vec())]
    );
    assert!(
        bus.read(0, before + 2, 10)
            .await
            .expect("read at end")
            .is_empty()
    );
}

/// A sole consumer is assigned every partition, each once, before anything is revoked; a
/// healthy bus says it serves.
pub async fn bus_assigns_every_partition_to_a_sole_consumer(stores: Stores) {
    use crate::{BusHealth, Rebalance};
    let bus = &stores.bus;
    assert_eq!(*bus.health().borrow(), BusHealth::Serving);
    let mut rebalances = bus.rebalances().expect("rebalances");
    let mut assigned = Vec::new();
    while assigned.len() < bus.partitions() as usize {
        match rebalances.recv().await.expect("the stream stays open") {
            Rebalance::Assigned(partitions) => assigned.extend(partitions),
            Rebalance::Revoked { partitions, .. } => {
                panic!("{partitions:?} revoked from a sole consumer")
            }
        }
    }
    assigned.sort_unstable();
    assert_eq!(assigned, (0..bus.partitions()).collect::<Vec<_>>());
}

/// Profiles are created, then replaced as a whole; unknown subjects read as `None`.
pub async fn profiles_create_replace_and_get(stores: Stores) {
    let p = &stores.profiles;
    let created = p
        .upsert_profiles(vec![profile("s1", "north"), profile("s2", "south")])
        .await
        .expect("create");
    assert_eq!(created, vec![true, true]);
    let mut changed = profile("s1", "east");
    changed.flags = vec![];
    changed.updated_at = None;
    let created = p
        .upsert_profiles(vec![changed.clone(), profile("s3", "west")])
        .await
        .expect("update");
    assert_eq!(created, vec![false, true]);
    let got = p
        .get_profiles(&["s1".into(), "nobody".into(), "s3".into(), "s2".into()])
        .await
        .expect("get");
    assert_eq!(
        got,
        vec![
            Some(changed),
            None,
            Some(profile("s3", "west")),
            Some(profile("s2", "south"))
        ]
    );
}

/// Rule writes get version latest + 1 unless they carry a higher one, old versions stay
/// readable, the rule-set version grows with every write; configs are versioned the same way.
pub async fn rules_and_configs_are_versioned(stores: Stores) {
    let r = &stores.rules;
    assert_eq!(r.get_config(None).await.expect("no config"), None);
    let v0 = r.rule_set_version().await.expect("rule set version");
    let mut late = Rule::new("late", "financial", -25.5);
    late.version = 0; // 0: always the next version
    late.status = RuleStatus::Active;
    assert_eq!(r.put_rule(late.clone()).await.expect("put v1").version, 1);
    let v1 = r.rule_set_version().await.expect("rule set version");
    assert!(v1 > v0, "rule set version must grow: {v0} then {v1}");
    let mut late2 = late.clone();
    late2.points = -30.0;
    late2.name = "Late payment".into();
    late2.version = 1; // not above the latest: the next one
    assert_eq!(r.put_rule(late2.clone()).await.expect("put v2").version, 2);
    let v2 = r.rule_set_version().await.expect("rule set version");
    assert!(v2 > v1, "rule set version must grow: {v1} then {v2}");
    let mut late7 = late2.clone();
    late7.version = 7; // above the latest: kept
    assert_eq!(r.put_rule(late7).await.expect("put v7").version, 7);
    let v3 = r.rule_set_version().await.expect("rule set version");
    assert!(v3 > v2, "rule set version must grow: {v2} then {v3}");
    let mut late8 = late2.clone();
    late8.version = 3;
    assert_eq!(r.put_rule(late8).await.expect("put v8").version, 8);
    let alpha = Rule::new("alpha", "social", 3.0);
    assert_eq!(r.put_rule(alpha).await.expect("put alpha").version, 1);
    assert!(r.rule_set_version().await.expect("rule set version") > v3);

    let latest = r
        .get_rule("late", None)
        .await
        .expect("get")
        .expect("latest exists");
    assert_eq!(
        (latest.version, latest.points, latest.name.as_str()),
        (8, -30.0, "Late payment")
    );
    let first = r
        .get_rule("late", Some(1))
        .await
        .expect("get v1")
        .expect("v1 exists");
    assert_eq!(first, Rule { version: 1, ..late });
    let second = r
        .get_rule("late", Some(2))
        .await
        .expect("get v2")
        .expect("v2 exists");
    assert_eq!(
        second,
        Rule {
            version: 2,
            ..late2
        }
    );
    assert_eq!(r.get_rule("late", Some(3)).await.expect("get v3"), None);
    assert_eq!(r.get_rule("nope", None).await.expect("get unknown"), None);

    let ids = |rules: Vec<Rule>| {
        rules
            .into_iter()
            .map(|r| (r.id, r.version))
            .collect::<Vec<_>>()
    };
    let late_id = |v| ("late".to_owned(), v);
    assert_eq!(
        ids(r.list_rules(false).await.expect("list latest")),
        vec![("alpha".to_owned(), 1), late_id(8)]
    );
    assert_eq!(
        ids(r.list_rules(true).await.expect("list all")),
        vec![
            ("alpha".to_owned(), 1),
            late_id(1),
            late_id(2),
            late_id(7),
            late_id(8)
        ]
    );

    let config = ScoringConfig {
        version: 0,
        baseline: 1000.5,
        ..ScoringConfig::default()
    };
    assert_eq!(
        r.put_config(config.clone())
            .await
            .expect("config 1")
            .version,
        1
    );
    let second = ScoringConfig {
        version: 5,
        baseline: 900.25,
        ..config.clone()
    };
    assert_eq!(
        r.put_config(second.clone())
            .await
            .expect("config 5")
            .version,
        5
    );
    let third = ScoringConfig {
        version: 2,
        baseline: 950.0,
        ..config.clone()
    };
    assert_eq!(
        r.put_config(third.clone()).await.expect("config 6").version,
        6
    );
    assert_eq!(
        r.get_config(None).await.expect("latest config"),
        Some(ScoringConfig {
            version: 6,
            ..third
        })
    );
    assert_eq!(r.get_config(Some(5)).await.expect("config 5"), Some(second));
    assert_eq!(
        r.get_config(Some(1)).await.expect("config 1"),
        Some(ScoringConfig {
            version: 1,
            ..config
        })
    );
    assert_eq!(r.get_config(Some(2)).await.expect("config 2"), None);
}

/// A commit stores the states and the offset together; states restore to the bit (but
/// for the duplicate digests), by partition and by subject; a later commit replaces.
pub async fn snapshots_commit_and_restore_exactly(stores: Stores) {
    let s = &stores.snapshots;
    assert_eq!(s.committed_offset(0).await.expect("offset"), 0);
    let a = state("a", 0.1 + 0.2, "C");
    let b = state("b", 1e-300, "E");
    let c = state("c", 1_999.999_999_999_9, "A");
    let at = ts(T0 + 42);
    s.commit(0, 10, vec![a.clone(), b.clone()], at)
        .await
        .expect("commit p0");
    s.commit(1, 5, vec![c.clone()], at)
        .await
        .expect("commit p1");
    assert_eq!(s.committed_offset(0).await.expect("offset 0"), 10);
    assert_eq!(s.committed_offset(1).await.expect("offset 1"), 5);
    assert_eq!(s.committed_offset(2).await.expect("offset 2"), 0);

    let mut p0 = s.load_partition(0).await.expect("load p0");
    p0.sort_by(|x, y| x.subject_id.cmp(&y.subject_id));
    assert_eq!(
        p0,
        vec![without_digests(a.clone()), without_digests(b.clone())]
    );
    assert_eq!(p0[0].score.to_bits(), (0.1_f64 + 0.2).to_bits());
    assert_eq!(
        s.load_partition(1).await.expect("load p1"),
        vec![without_digests(c.clone())]
    );

    let got = s
        .get_snapshots(&["c".into(), "zz".into(), "a".into()])
        .await
        .expect("get");
    assert_eq!(got.len(), 3);
    let got_c = got[0].clone().expect("c stored");
    assert_eq!(got_c.state, without_digests(c));
    assert_eq!(got_c.updated_at, at);
    assert!(got[1].is_none());
    assert_eq!(
        got[2].clone().expect("a stored").state,
        without_digests(a.clone())
    );

    // A later commit replaces the state (once, not twice) and moves the offset.
    let mut a2 = a;
    a2.score = 512.125;
    a2.tier = Arc::from("D");
    a2.applied_events = 10;
    let later = ts(T0 + 99);
    s.commit(0, 20, vec![a2.clone()], later)
        .await
        .expect("second commit");
    assert_eq!(s.committed_offset(0).await.expect("offset"), 20);
    let got = s.get_snapshots(&["a".into()]).await.expect("get a");
    assert_eq!(
        got[0].clone().map(|x| (x.state, x.updated_at)),
        Some((without_digests(a2), later))
    );
    assert_eq!(s.load_partition(0).await.expect("load p0").len(), 2);
    // An empty commit still moves the offset.
    s.commit(0, 25, vec![], later).await.expect("empty commit");
    assert_eq!(s.committed_offset(0).await.expect("offset"), 25);
    assert_eq!(s.load_partition(0).await.expect("load p0").len(), 2);
}

/// Subjects list in id order with region (from the profile), tier and score filters and
/// paging; tier counts follow the same region filter.
pub async fn snapshots_list_filter_page_and_count_tiers(stores: Stores) {
    stores
        .profiles
        .upsert_profiles(vec![
            profile("s1", "north"),
            profile("s2", "south"),
            profile("s3", "north"),
            profile("s4", "north"),
        ])
        .await
        .expect("profiles");
    let states = vec![
        state("s4", 1200.0, "B"),
        state("s1", 500.0, "E"),
        state("s3", 950.0, "C"),
        state("s2", 1150.0, "B"),
        state("s5", 1000.0, "C"), // no profile
    ];
    stores
        .snapshots
        .commit(0, 5, states, ts(T0))
        .await
        .expect("commit");
    let list = |filter: SubjectFilter, page: Page| {
        let snapshots = stores.snapshots.clone();
        async move {
            let paged = snapshots.list_subjects(&filter, &page).await.expect("list");
            let ids: Vec<(String, Option<String>)> = paged
                .items
                .into_iter()
                .map(|(s, p)| (s.state.subject_id, p.map(|p| p.region)))
                .collect();
            (ids, paged.next_token)
        }
    };
    let id = |s: &str, r: Option<&str>| (s.to_owned(), r.map(str::to_owned));
    let (all, token) = list(SubjectFilter::default(), Page::first(0)).await;
    assert_eq!(
        all,
        vec![
            id("s1", Some("north")),
            id("s2", Some("south")),
            id("s3", Some("north")),
            id("s4", Some("north")),
            id("s5", None)
        ]
    );
    assert!(token.is_empty());

    let north = SubjectFilter {
        region: "north".into(),
        ..SubjectFilter::default()
    };
    let (first, token) = list(north.clone(), Page::first(2)).await;
    assert_eq!(
        first,
        vec![id("s1", Some("north")), id("s3", Some("north"))]
    );
    assert!(!token.is_empty(), "a second page exists");
    let (second, token) = list(north.clone(), Page { size: 2, token }).await;
    assert_eq!(second, vec![id("s4", Some("north"))]);
    assert!(token.is_empty());

    let tier_b = SubjectFilter {
        tier: "B".into(),
        ..SubjectFilter::default()
    };
    assert_eq!(
        list(tier_b, Page::first(0)).await.0,
        vec![id("s2", Some("south")), id("s4", Some("north"))]
    );
    let scores = SubjectFilter {
        min_score: Some(950.0),
        max_score: Some(1150.0),
        ..SubjectFilter::default()
    };
    assert_eq!(
        list(scores, Page::first(0)).await.0,
        vec![
            id("s2", Some("south")),
            id("s3", Some("north")),
            id("s5", None)
        ]
    );
    let bad = stores
        .snapshots
        .list_subjects(
            &SubjectFilter::default(),
            &Page {
                size: 2,
                token: "bogus".into(),
            },
        )
        .await;
    assert!(matches!(bad, Err(StorageError::Invalid(_))), "{bad:?}");

    let counts = |v: Vec<(String, u64)>| v.into_iter().collect::<BTreeMap<_, _>>();
    assert_eq!(
        counts(stores.snapshots.tier_counts("").await.expect("tiers")),
        BTreeMap::from([("B".into(), 2), ("C".into(), 2), ("E".into(), 1)])
    );
    assert_eq!(
        counts(
            stores
                .snapshots
                .tier_counts("north")
                .await
                .expect("tiers north")
        ),
        BTreeMap::from([("B".into(), 1), ("C".into(), 1), ("E".into(), 1)])
    );
}

/// Archived events round-trip exactly, list in event-time order with filters and paging,
/// and truncation drops a partition's tail.
pub async fn archive_round_trips_filters_and_truncates(stores: Stores) {
    let a = &stores.archive;
    let mut bare = event("e0", "s2", "social", T0 + 5);
    bare.location = None;
    bare.payload = None;
    bare.received_at = None;
    bare.event_subtype = String::new();
    let p0 = vec![
        archived(
            event("e3", "s1", "financial", T0 + 3 * HOUR + 1),
            0,
            0,
            true,
        ),
        archived(event("e1", "s1", "financial", T0 + HOUR), 0, 1, true),
        archived(event("e2", "s1", "social", T0 + HOUR), 0, 2, false),
        archived(event("e4", "s1", "financial", T0 + 4 * HOUR), 0, 3, true),
    ];
    a.append_events(p0.clone()).await.expect("append p0");
    a.append_events(vec![archived(bare.clone(), 1, 0, true)])
        .await
        .expect("append p1");

    let all = a
        .list_events(&EventFilter::default(), &Page::first(0))
        .await
        .expect("list");
    assert_eq!(
        all.items,
        vec![
            archived(bare, 1, 0, true),
            p0[1].clone(),
            p0[2].clone(),
            p0[0].clone(),
            p0[3].clone()
        ],
        "exact round trip, ordered by occurred_at then event id"
    );

    let ids = |items: Vec<ArchivedEvent>| {
        items
            .into_iter()
            .map(|e| e.event.event_id)
            .collect::<Vec<_>>()
    };
    let filter = EventFilter {
        subject_id: "s1".into(),
        event_type: "financial".into(),
        from: Some(ts(T0 + HOUR)),
        to: Some(ts(T0 + 4 * HOUR)),
    };
    let page = a
        .list_events(&filter, &Page::first(1))
        .await
        .expect("filtered");
    assert_eq!(ids(page.items), vec!["e1"]);
    let page = a
        .list_events(
            &filter,
            &Page {
                size: 1,
                token: page.next_token,
            },
        )
        .await
        .expect("page 2");
    assert_eq!(ids(page.items), vec!["e3"], "to is exclusive");
    assert!(page.next_token.is_empty());

    assert_eq!(a.truncate_events(0, 2).await.expect("truncate"), 2);
    let left = a
        .list_events(&EventFilter::default(), &Page::first(0))
        .await
        .expect("list");
    assert_eq!(ids(left.items), vec!["e0", "e1", "e3"]);
    assert_eq!(a.truncate_events(0, 2).await.expect("truncate again"), 0);
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

/// Score history and changes by subject and time, paged; aggregates with known numbers.
pub async fn series_history_changes_and_aggregates(stores: Stores) {
    let s = &stores.series;
    let points = vec![
        point("s1", "financial", "north", T0 + 10, -10.5, 2, 0),
        point("s1", "social", "north", T0 + HOUR + 1, 4.25, 1, 1),
        point("s2", "financial", "south", T0 + 20, 2.0, 1, 2),
        point("s1", "financial", "north", T0 + 5, 0.5, 0, 3), // late: earlier event time
        point("s2", "financial", "south", T0 + 25 * HOUR, -1.0, 3, 4),
    ];
    // Engine order within one event: "z-rule" before "a-rule" (not alphabetical).
    let changes = vec![
        (0, change("s1", "z-rule", T0 + 10, -8.0)),
        (0, change("s1", "a-rule", T0 + 10, -2.5)),
        (1, change("s1", "social", T0 + HOUR + 1, 4.25)),
        (2, change("s2", "fin", T0 + 20, 2.0)),
    ];
    s.append_scores(0, points.clone(), changes.clone())
        .await
        .expect("append");

    let history = s
        .score_history("s1", TimeRange::default(), &Page::first(2))
        .await
        .expect("history");
    assert_eq!(history.items, vec![points[3].clone(), points[0].clone()]);
    let rest = s
        .score_history(
            "s1",
            TimeRange::default(),
            &Page {
                size: 2,
                token: history.next_token,
            },
        )
        .await
        .expect("history page 2");
    assert_eq!(rest.items, vec![points[1].clone()]);
    assert!(rest.next_token.is_empty());
    let ranged = s
        .score_history(
            "s1",
            TimeRange {
                from: Some(ts(T0 + 10)),
                to: Some(ts(T0 + HOUR + 1)),
            },
            &Page::first(0),
        )
        .await
        .expect("ranged history");
    assert_eq!(ranged.items, vec![points[0].clone()]);

    let got = s
        .score_changes("s1", TimeRange::default(), &Page::first(0))
        .await
        .expect("changes");
    assert_eq!(
        got.items,
        vec![
            changes[0].1.clone(),
            changes[1].1.clone(),
            changes[2].1.clone()
        ]
    );
    let got = s
        .score_changes(
            "s1",
            TimeRange {
                from: Some(ts(T0 + HOUR)),
                to: None,
            },
            &Page::first(0),
        )
        .await
        .expect("ranged changes");
    assert_eq!(got.items, vec![changes[2].1.clone()]);

    let row = |start: i64, key: &str, events: u64, changes: u64, sum: f64, pos: f64, neg: f64| {
        pb::AggregateRow {
            window_start: Some(pb_ts(start)),
            key: key.into(),
            events,
            changes,
            delta_sum: sum,
            delta_positive: pos,
            delta_negative: neg,
        }
    };
    let query = crate::AggregateQuery {
        window: pb::AggregateWindow::Hour,
        group_by: pb::AggregateGroupBy::Subject,
        range: TimeRange::default(),
        subject_id: String::new(),
        region: String::new(),
        event_type: String::new(),
    };
    let hourly = s.aggregates(&query, &Page::first(0)).await.expect("hourly");
    assert_eq!(
        hourly.items,
        vec![
            row(T0, "s1", 2, 2, -10.0, 0.5, -10.5),
            row(T0, "s2", 1, 1, 2.0, 2.0, 0.0),
            row(T0 + HOUR, "s1", 1, 1, 4.25, 4.25, 0.0),
            row(T0 + 25 * HOUR, "s2", 1, 3, -1.0, 0.0, -1.0),
        ]
    );
    let paged = s.aggregates(&query, &Page::first(3)).await.expect("paged");
    assert_eq!(paged.items.len(), 3);
    let last = s
        .aggregates(
            &query,
            &Page {
                size: 3,
                token: paged.next_token,
            },
        )
        .await
        .expect("last page");
    assert_eq!(
        last.items,
        vec![row(T0 + 25 * HOUR, "s2", 1, 3, -1.0, 0.0, -1.0)]
    );

    let daily = crate::AggregateQuery {
        window: pb::AggregateWindow::Day,
        group_by: pb::AggregateGroupBy::EventType,
        event_type: "financial".into(),
        ..query.clone()
    };
    assert_eq!(
        s.aggregates(&daily, &Page::first(0))
            .await
            .expect("daily")
            .items,
        vec![
            row(T0, "financial", 3, 3, -8.0, 2.5, -10.5),
            row(T0 + 24 * HOUR, "financial", 1, 3, -1.0, 0.0, -1.0)
        ]
    );
    let by_region = crate::AggregateQuery {
        window: pb::AggregateWindow::Day,
        group_by: pb::AggregateGroupBy::Region,
        region: "north".into(),
        range: TimeRange {
            from: Some(ts(T0 + 10)),
            to: None,
        },
        ..query.clone()
    };
    assert_eq!(
        s.aggregates(&by_region, &Page::first(0))
            .await
            .expect("by region")
            .items,
        vec![row(T0, "north", 2, 3, -6.25, 4.25, -10.5)]
    );
    for (bad, field) in [
        (
            crate::AggregateQuery {
                window: pb::AggregateWindow::Unspecified,
                ..query.clone()
            },
            "window",
        ),
        (
            crate::AggregateQuery {
                group_by: pb::AggregateGroupBy::Unspecified,
                ..query.clone()
            },
            "group_by",
        ),
    ] {
        match s.aggregates(&bad, &Page::first(0)).await {
            Err(StorageError::Invalid(msg)) => assert!(msg.contains(field), "{msg}"),
            other => panic!("expected Invalid naming {field}, got {other:?}"),
        }
    }

    // Truncation drops points and changes at the offset or later.
    assert_eq!(s.truncate_scores(0, 2).await.expect("truncate"), 3 + 1);
    let left = s
        .score_history("s2", TimeRange::default(), &Page::first(0))
        .await
        .expect("history");
    assert!(left.items.is_empty());
    let left = s
        .score_changes("s1", TimeRange::default(), &Page::first(0))
        .await
        .expect("changes");
    assert_eq!(left.items.len(), 3);
}

fn relation(a: &str, b: &str, kind: pb::RelationKind, weight: f64) -> pb::Relation {
    pb::Relation {
        subject_id: a.into(),
        other_subject_id: b.into(),
        kind: kind as i32,
        weight,
        since: Some(pb_ts(T0)),
    }
}

/// Neighbours by depth with the heaviest shortest path, kind filters and limits; paths;
/// replacement and removal of relations.
pub async fn graph_neighbors_paths_and_updates(stores: Stores) {
    use pb::RelationKind::{Colleague, Family, Friend};
    let g = &stores.graph;
    let written = g
        .put_relations(vec![
            relation("a", "b", Friend, 0.5),
            relation("c", "b", Family, 0.0), // weight 0 means 1
            relation("a", "d", Colleague, 0.9),
            relation("d", "c", Friend, 0.8),
            relation("c", "e", Friend, 1.0),
        ])
        .await
        .expect("put");
    assert_eq!(written, 5);
    let neighbors = |depth: u32, kinds: Vec<i32>, limit: usize| {
        let g = g.clone();
        async move {
            g.neighbors("a", depth, &kinds, limit)
                .await
                .expect("neighbors")
        }
    };
    let summary = |(n, truncated): (Vec<pb::Neighbor>, bool)| {
        (
            n.into_iter()
                .map(|n| (n.subject_id, n.depth, n.kind, n.path_weight, n.path))
                .collect::<Vec<_>>(),
            truncated,
        )
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let (f, fa, co) = (Friend as i32, Family as i32, Colleague as i32);
    assert_eq!(
        summary(neighbors(1, vec![], 100).await),
        (
            vec![
                ("b".into(), 1, f, 0.5, s(&["b"])),
                ("d".into(), 1, co, 0.9, s(&["d"]))
            ],
            false
        )
    );
    let two = summary(neighbors(2, vec![], 100).await);
    assert_eq!(
        two.0[2],
        ("c".into(), 2, f, 0.9 * 0.8, s(&["d", "c"])),
        "c at depth 2 through the heavier path"
    );
    assert_eq!(two.0.len(), 3);
    let three = summary(neighbors(3, vec![], 100).await);
    assert_eq!(
        three.0.iter().map(|n| n.0.as_str()).collect::<Vec<_>>(),
        ["b", "d", "c", "e"]
    );
    assert_eq!(
        three.0[3],
        ("e".into(), 3, f, 0.9 * 0.8 * 1.0, s(&["d", "c", "e"]))
    );
    let limited = summary(neighbors(3, vec![], 2).await);
    assert_eq!((limited.0.len(), limited.1), (2, true));
    assert_eq!(
        summary(neighbors(3, vec![f], 100).await).0,
        vec![("b".into(), 1, f, 0.5, s(&["b"]))]
    );
    assert!(
        g.neighbors("nobody", 2, &[], 10)
            .await
            .expect("unknown")
            .0
            .is_empty()
    );

    let steps = |p: Option<Vec<pb::PathStep>>| {
        p.map(|steps| {
            steps
                .into_iter()
                .map(|s| (s.subject_id, s.kind, s.weight))
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        steps(g.find_path("a", "e", 6, &[]).await.expect("path")),
        Some(vec![
            ("d".into(), co, 0.9),
            ("c".into(), f, 0.8),
            ("e".into(), f, 1.0)
        ])
    );
    assert_eq!(
        steps(g.find_path("a", "e", 2, &[]).await.expect("too short")),
        None
    );
    assert_eq!(
        steps(
            g.find_path("a", "e", 6, &[co])
                .await
                .expect("colleagues only")
        ),
        None
    );
    assert_eq!(
        steps(g.find_path("a", "zz", 6, &[]).await.expect("unknown")),
        None
    );

    // Replace a-d (given the other way round): the path through b becomes the heavier.
    g.put_relations(vec![relation("d", "a", Colleague, 0.1)])
        .await
        .expect("replace");
    assert_eq!(
        steps(g.find_path("e", "a", 6, &[]).await.expect("path back")),
        Some(vec![
            ("c".into(), f, 1.0),
            ("b".into(), fa, 1.0),
            ("a".into(), f, 0.5)
        ])
    );
    let removed = g
        .remove_relations(vec![
            RelationKey {
                subject_id: "b".into(),
                other_subject_id: "c".into(),
                kind: fa,
            },
            RelationKey {
                subject_id: "a".into(),
                other_subject_id: "b".into(),
                kind: co,
            },
        ])
        .await
        .expect("remove");
    assert_eq!(removed, 1, "only b-c family existed");
    assert_eq!(
        steps(g.find_path("a", "c", 3, &[]).await.expect("path")),
        Some(vec![("d".into(), co, 0.1), ("c".into(), f, 0.8)])
    );
    // Kind 0 removes every kind between the two.
    g.put_relations(vec![relation("a", "d", Friend, 0.3)])
        .await
        .expect("second kind");
    let removed = g
        .remove_relations(vec![RelationKey {
            subject_id: "d".into(),
            other_subject_id: "a".into(),
            kind: 0,
        }])
        .await
        .expect("remove all kinds");
    assert_eq!(removed, 2, "colleague and friend between a and d");
    assert_eq!(
        steps(g.find_path("a", "c", 3, &[]).await.expect("no path")),
        None
    );
    let (left, _) = g.neighbors("a", 3, &[], 10).await.expect("neighbors");
    assert_eq!(
        left.into_iter().map(|n| n.subject_id).collect::<Vec<_>>(),
        ["b"]
    );
}

fn entry(subject: &str, kind: pb::ListKind, expires: Option<i64>) -> pb::ListEntry {
    pb::ListEntry {
        subject_id: subject.into(),
        kind: kind as i32,
        reason: format!("{subject} {kind:?}"),
        expires_at: expires.map(pb_ts),
        created_at: Some(pb_ts(T0)),
    }
}

/// One entry per (subject, kind); listings filter by kind, subject and expiry and page.
pub async fn lists_filter_expire_and_page(stores: Stores) {
    use pb::ListKind::{Allow, Block};
    let l = &stores.lists;
    let now = T0 + 10 * HOUR;
    let expired = entry("s1", Block, Some(now));
    let allow = entry("s1", Allow, None);
    let live = entry("s2", Block, Some(now + 1));
    assert!(l.put_entry(expired.clone()).await.expect("put"));
    assert!(l.put_entry(allow.clone()).await.expect("put"));
    assert!(l.put_entry(entry("s2", Block, None)).await.expect("put"));
    assert!(
        !l.put_entry(live.clone()).await.expect("replace"),
        "replacing is not new"
    );

    let list = |filter: ListFilter, page: Page| {
        let l = l.clone();
        async move { l.list_entries(&filter, &page).await.expect("list") }
    };
    let at_now = ListFilter {
        now: Some(ts(now)),
        ..ListFilter::default()
    };
    assert_eq!(
        list(at_now.clone(), Page::first(0)).await.items,
        vec![allow.clone(), live.clone()]
    );
    let everything = ListFilter {
        include_expired: true,
        ..at_now.clone()
    };
    let first = list(everything.clone(), Page::first(2)).await;
    assert_eq!(
        first.items,
        vec![expired.clone(), allow.clone()],
        "subject then kind"
    );
    let second = list(
        everything.clone(),
        Page {
            size: 2,
            token: first.next_token,
        },
    )
    .await;
    assert_eq!(second.items, vec![live.clone()]);
    assert!(second.next_token.is_empty());
    let blocks = ListFilter {
        kind: Block as i32,
        ..everything.clone()
    };
    assert_eq!(
        list(blocks, Page::first(0)).await.items,
        vec![expired.clone(), live.clone()]
    );
    let s2 = ListFilter {
        subject_id: "s2".into(),
        ..at_now
    };
    assert_eq!(list(s2, Page::first(0)).await.items, vec![live.clone()]);

    let for_subjects = l
        .entries_for(&["s1".into(), "nobody".into(), "s2".into()])
        .await
        .expect("entries for");
    assert_eq!(for_subjects, vec![vec![expired, allow], vec![], vec![live]]);
    assert!(l.remove_entry("s1", Block as i32).await.expect("remove"));
    assert!(
        !l.remove_entry("s1", Block as i32)
            .await
            .expect("remove again")
    );
    assert_eq!(
        l.entries_for(&["s1".into()]).await.expect("after remove")[0].len(),
        1
    );
}

/// Decodes an analytics result: (column names, rows as text).
fn decode(ipc: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    use arrow::util::display::array_value_to_string;
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None)
        .expect("an Arrow IPC stream");
    let names = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.expect("a record batch");
        for r in 0..batch.num_rows() {
            rows.push(
                batch
                    .columns()
                    .iter()
                    .map(|c| array_value_to_string(c, r).expect("displayable"))
                    .collect(),
            );
        }
    }
    (names, rows)
}

fn limits(max_rows: u64, timeout: Duration) -> QueryLimits {
    QueryLimits { max_rows, timeout }
}

/// Queries over the views answer Arrow IPC that decodes, with the schema even for no rows,
/// cut at `max_rows`.
pub async fn analytics_answers_arrow_ipc(stores: Stores) {
    stores
        .profiles
        .upsert_profiles(vec![profile("s2", "south"), profile("s1", "north")])
        .await
        .expect("profiles");
    stores
        .archive
        .append_events(vec![archived(
            event("e1", "s1", "financial", T0 + 1),
            0,
            0,
            true,
        )])
        .await
        .expect("archive");
    let a = &stores.analytics;
    let long = Duration::from_secs(30);
    let result = a
        .run_sql(
            "SELECT subject_id, region FROM profiles ORDER BY subject_id",
            limits(100, long),
        )
        .await
        .expect("select");
    assert_eq!((result.rows, result.truncated), (2, false));
    assert_eq!(
        decode(&result.ipc),
        (
            vec!["subject_id".to_owned(), "region".to_owned()],
            vec![
                vec!["s1".to_owned(), "north".to_owned()],
                vec!["s2".to_owned(), "south".to_owned()]
            ]
        )
    );
    let result = a
        .run_sql(
            "SELECT event_id, occurred_at FROM events",
            limits(100, long),
        )
        .await
        .expect("events view");
    let (_, rows) = decode(&result.ipc);
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0][1].starts_with("2026-01-01T00:00:00.000000001"),
        "a timestamp: {}",
        rows[0][1]
    );

    let empty = a
        .run_sql(
            "SELECT subject_id FROM profiles WHERE false",
            limits(100, long),
        )
        .await
        .expect("no rows");
    assert_eq!((empty.rows, empty.truncated), (0, false));
    assert_eq!(decode(&empty.ipc), (vec!["subject_id".to_owned()], vec![]));

    let cut = a
        .run_sql("SELECT range AS n FROM range(100000)", limits(5, long))
        .await
        .expect("cut");
    assert_eq!((cut.rows, cut.truncated), (5, true));
    assert_eq!(decode(&cut.ipc).1.len(), 5);
    let exact = a
        .run_sql("SELECT * FROM range(5)", limits(5, long))
        .await
        .expect("exact");
    assert_eq!((exact.rows, exact.truncated), (5, false));

    for view in [
        "events",
        "score_changes",
        "score_points",
        "snapshots",
        "profiles",
        "relations",
        "list_entries",
        "rules",
    ] {
        let r = a
            .run_sql(
                &format!("SELECT count(*) AS n FROM {view}"),
                limits(10, long),
            )
            .await
            .unwrap_or_else(|e| panic!("view {view}: {e}"));
        assert_eq!(r.rows, 1, "view {view}");
    }
}

/// Only one read-only statement runs, files are out of reach, and slow queries are cancelled.
pub async fn analytics_refuses_writes_files_and_slow_queries(stores: Stores) {
    stores
        .profiles
        .upsert_profiles(vec![profile("s1", "north")])
        .await
        .expect("profiles");
    let a = &stores.analytics;
    let long = Duration::from_secs(30);
    for sql in [
        "DELETE FROM profiles",
        "SELECT 1; DELETE FROM profiles",
        "DROP VIEW profiles",
        "COPY profiles TO '/tmp/credence-conformance.csv'",
        "SET memory_limit = '100GB'",
        "",
    ] {
        match a.run_sql(sql, limits(10, long)).await {
            Err(StorageError::Invalid(msg)) => assert!(msg.contains("read-only"), "{sql}: {msg}"),
            other => panic!("{sql:?} should be refused, got {other:?}"),
        }
    }
    let files = a
        .run_sql("SELECT * FROM read_csv('/etc/passwd')", limits(10, long))
        .await;
    match files {
        Err(StorageError::Invalid(msg)) => assert!(msg.contains("/etc/passwd"), "{msg}"),
        other => panic!("reading a file must fail, got {other:?}"),
    }
    let still = a
        .run_sql("SELECT count(*) FROM profiles", limits(10, long))
        .await
        .expect("count");
    assert_eq!(
        decode(&still.ipc).1,
        vec![vec!["1".to_owned()]],
        "nothing was deleted"
    );

    let started = Instant::now();
    let slow = a
        .run_sql(
            "SELECT count(*) FROM range(1000000000) a, range(1000000000) b WHERE a.range + b.range = 7",
            limits(10, Duration::from_millis(200)),
        )
        .await;
    match slow {
        Err(StorageError::LimitExceeded(msg)) => assert!(msg.contains("cancelled"), "{msg}"),
        other => panic!("expected a cancelled query, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cancelled promptly: {:?}",
        started.elapsed()
    );
    // The store still answers after a cancelled query.
    a.run_sql("SELECT 1", limits(10, long))
        .await
        .expect("after cancel");
}

/// A committer writes every role of every batch, moves each partition's offset, and refuses
/// two batches of one partition in one call.
pub async fn committer_writes_every_role_then_the_offset(stores: Stores) {
    let batch = |partition: u32, subject: &str, offsets: std::ops::Range<u64>| {
        let mut b = crate::PartitionCommit {
            partition,
            next_offset: offsets.end,
            ..Default::default()
        };
        for offset in offsets {
            #[allow(clippy::cast_possible_wrap, reason = "small test offsets")]
            let at = T0 + offset as i64 * HOUR;
            let mut e = event(&format!("{subject}-{offset}"), subject, "financial", at);
            e.received_at = Some(pb_ts(at));
            b.events.push(archived(e, partition, offset, true));
            let mut p = point(subject, "financial", "north", at, -5.0, 1, offset);
            p.partition = partition;
            p.event_id = format!("{subject}-{offset}");
            b.points.push(p);
            b.changes.push((offset, change(subject, "late", at, -5.0)));
        }
        b.states.push(state(subject, 995.0, "C"));
        b
    };
    let committer = &stores.committer;
    committer
        .commit(vec![batch(0, "cm-a", 0..3), batch(1, "cm-b", 0..2)], ts(T0))
        .await
        .expect("commit two partitions");
    assert_eq!(
        stores.snapshots.committed_offset(0).await.expect("offset"),
        3
    );
    assert_eq!(
        stores.snapshots.committed_offset(1).await.expect("offset"),
        2
    );
    let found = stores
        .snapshots
        .get_snapshots(&["cm-a".into(), "cm-b".into()])
        .await
        .expect("snapshots");
    assert!(found.iter().all(Option::is_some), "{found:?}");
    let events = stores
        .archive
        .list_events(
            &crate::EventFilter {
                subject_id: "cm-a".into(),
                ..Default::default()
            },
            &Page::first(10),
        )
        .await
        .expect("events");
    assert_eq!(events.items.len(), 3);
    let history = stores
        .series
        .score_history("cm-b", crate::TimeRange::default(), &Page::first(10))
        .await
        .expect("history");
    assert_eq!(history.items.len(), 2);
    let changes = stores
        .series
        .score_changes("cm-a", crate::TimeRange::default(), &Page::first(10))
        .await
        .expect("changes");
    assert_eq!(changes.items.len(), 3);
    // A later batch continues the partition.
    committer
        .commit(vec![batch(0, "cm-a", 3..4)], ts(T0 + HOUR))
        .await
        .expect("commit again");
    assert_eq!(
        stores.snapshots.committed_offset(0).await.expect("offset"),
        4
    );
    let err = committer
        .commit(vec![batch(2, "cm-c", 0..1), batch(2, "cm-d", 1..2)], ts(T0))
        .await
        .expect_err("two batches of partition 2");
    assert!(err.to_string().contains("one batch per partition"), "{err}");
    assert_eq!(
        stores.snapshots.committed_offset(2).await.expect("offset"),
        0
    );
}

/// Expands every check of the suite into a test for one backend. `$open` is an async
/// expression that evaluates to a fresh, empty [`Stores`] (a `(Stores, guard)` pair is not
/// needed: keep temporary directories alive inside the backend or leak them). The tests
/// run on a multi-thread runtime, as the server does (blocking backends rely on it).
#[macro_export]
macro_rules! conformance_tests {
    ($open:expr) => {
        $crate::conformance_tests!(@each $open;
            bus_appends_and_reads_in_order,
            bus_assigns_every_partition_to_a_sole_consumer,
            profiles_create_replace_and_get,
            rules_and_configs_are_versioned,
            snapshots_commit_and_restore_exactly,
            snapshots_list_filter_page_and_count_tiers,
            archive_round_trips_filters_and_truncates,
            series_history_changes_and_aggregates,
            graph_neighbors_paths_and_updates,
            lists_filter_expire_and_page,
            analytics_answers_arrow_ipc,
            analytics_refuses_writes_files_and_slow_queries,
            committer_writes_every_role_then_the_offset,
        );
    };
    (@each $open:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread")]
            async fn $check() {
                let stores = $open;
                $crate::conformance::$check(stores).await;
            }
        )*
    };
}
