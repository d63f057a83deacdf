//! One pipeline micro-batch against the embedded backend: 5,000 archived events, 5,000
//! score points, 5,000 score changes and a snapshot commit of 4,000 subjects, over a store
//! that already holds 200,000 subjects. `cargo bench -p credence-storage --bench
//! embedded_commit` (needs `DUCKDB_LIB_DIR`, see the workspace README).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "bench"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use credence_scorer::{Payload, RuleHistory, ScoreChange, SubjectState, Timestamp, Value};
use credence_storage::embedded::{Embedded, EmbeddedOptions};
use credence_storage::{
    ArchivedEvent, ChangedState, EventLocation, ReceivedEvent, ScorePoint, Stores,
};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const SUBJECTS: u64 = 200_000;
const EVENTS: u64 = 5_000;
const STATES: u64 = 4_000;
const T0: i64 = 1_767_225_600_000_000_000;

struct Batch {
    events: Vec<ArchivedEvent>,
    points: Vec<ScorePoint>,
    changes: Vec<(u64, ScoreChange)>,
    states: Vec<ChangedState>,
    next_offset: u64,
}

fn changed(state: SubjectState) -> ChangedState {
    ChangedState {
        state,
        region: "north".into(),
    }
}

fn subject(i: u64) -> String {
    format!("SUBJ-{:07}", i % SUBJECTS)
}

fn state(i: u64, score: f64) -> SubjectState {
    let at = Timestamp::from_nanos(T0 + i as i64);
    let mut s = SubjectState::new(subject(i), score, Arc::from("C"), at);
    s.last_event_id = format!("evt-{i}");
    s.applied_events = i % 50;
    s.config_version = 1;
    s.rules = vec![RuleHistory::new(Arc::from("late_payment"), vec![at])];
    s
}

/// The micro-batch number `round`: bus offsets `round * EVENTS ..`, subjects spread over
/// the whole population (about 4,000 distinct ones).
fn batch(round: u64) -> Batch {
    let first = round * EVENTS;
    let mut events = Vec::new();
    let mut points = Vec::new();
    let mut changes = Vec::new();
    for k in 0..EVENTS {
        let offset = first + k;
        let who = (offset * 7_919) % SUBJECTS;
        let at = T0 + offset as i64 * 1_000_003;
        let payload: Payload = [
            ("days_late".to_owned(), Value::Number((k % 90) as f64)),
            ("amount".to_owned(), Value::Number(123.45 + k as f64)),
        ]
        .into();
        events.push(ArchivedEvent {
            event: ReceivedEvent {
                event_id: format!("evt-{offset}"),
                subject_id: subject(who),
                event_type: "financial".into(),
                event_subtype: "late_payment".into(),
                source_system: "bank".into(),
                occurred_at: Some(Timestamp::from_nanos(at)),
                location: Some(EventLocation {
                    region: "north".into(),
                    district: "n-3".into(),
                    lat: 59.3,
                    lon: 18.0,
                }),
                payload: Some(payload),
                evidence_uri: String::new(),
                received_at: None,
            },
            partition: 0,
            offset,
            applied: true,
        });
        points.push(ScorePoint {
            subject_id: subject(who),
            event_id: format!("evt-{offset}"),
            event_type: "financial".into(),
            region: "north".into(),
            at: Timestamp::from_nanos(at),
            score: 990.5,
            tier: "C".into(),
            delta: -9.5,
            changes: 1,
            partition: 0,
            offset,
        });
        changes.push((
            offset,
            ScoreChange {
                event_id: format!("evt-{offset}"),
                subject_id: subject(who),
                rule_id: Arc::from("late_payment"),
                rule_version: 1,
                config_version: 1,
                old_score: 1000.0,
                new_score: 990.5,
                delta: -9.5,
                factor: 1.0,
                at: Timestamp::from_nanos(at),
                reason: Arc::from("Late payment"),
                inputs: BTreeMap::from([("subject.flags".to_owned(), Value::List(vec![]))]),
            },
        ));
    }
    let states = (0..STATES)
        .map(|k| changed(state(((first + k) * 7_919) % SUBJECTS, 990.5 + k as f64)))
        .collect();
    Batch {
        events,
        points,
        changes,
        states,
        next_offset: first + EVENTS,
    }
}

async fn commit(stores: &Stores, b: Batch) -> [Duration; 3] {
    let start = Instant::now();
    stores.archive.append_events(b.events).await.unwrap();
    let archived = Instant::now();
    stores
        .series
        .append_scores(0, b.points, b.changes)
        .await
        .unwrap();
    let scored = Instant::now();
    let expected = stores.snapshots.position(0).await.unwrap();
    stores
        .snapshots
        .commit(
            0,
            expected,
            b.next_offset,
            b.states,
            Timestamp::from_nanos(T0),
        )
        .await
        .unwrap();
    [archived - start, scored - archived, scored.elapsed()]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut options = EmbeddedOptions::new(dir.path());
    options.sync = false;
    let stores = Embedded::open(&options).unwrap().stores();
    rt.block_on(async {
        for chunk in 0..SUBJECTS / 20_000 {
            let states = (chunk * 20_000..(chunk + 1) * 20_000)
                .map(|i| changed(state(i, 1000.0)))
                .collect();
            let expected = stores.snapshots.position(1).await.unwrap();
            stores
                .snapshots
                .commit(1, expected, 0, states, Timestamp::from_nanos(T0))
                .await
                .unwrap();
        }
    });

    // A breakdown first (criterion reports the total only).
    let mut parts = [Duration::ZERO; 3];
    let rounds = 10;
    for round in 0..rounds {
        let b = batch(round);
        let took = rt.block_on(commit(&stores, b));
        if std::env::var_os("CREDENCE_BENCH_VERBOSE").is_some() {
            println!("round {round}: {took:?}");
        }
        for (sum, d) in parts.iter_mut().zip(took) {
            *sum += d;
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0 / rounds as f64;
    println!(
        "per micro-batch: archive {:.2} ms, points+changes {:.2} ms, snapshot commit {:.2} ms",
        ms(parts[0]),
        ms(parts[1]),
        ms(parts[2])
    );

    let mut round = rounds;
    let mut group = c.benchmark_group("embedded");
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("micro_batch_5000_events", |b| {
        b.iter_batched(
            || {
                round += 1;
                batch(round)
            },
            |batch| rt.block_on(commit(&stores, batch)),
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
