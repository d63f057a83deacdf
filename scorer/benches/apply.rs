//! Throughput of the engine: events applied per second to 1,000,000 subjects with the
//! example rule set, on one core. Run with `make bench` (or
//! `cargo bench -p credence-scorer --bench apply`); figures go to docs/BENCHMARKS.md.

#![allow(missing_docs, clippy::unwrap_used, reason = "benchmark harness")]

use std::hint::black_box;
use std::time::{Duration, Instant};

use credence_scorer::{Event, Outcomes, RuleFile, Scorer, Timestamp, Value};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The allocator a Credence node runs with; glibc's malloc took about a third of the
/// time here (profiled with perf), on allocation patterns a server has too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 100_000;
const JAN_2026: i64 = 1_767_225_600;

/// The mix of event kinds the example rule set scores, with payloads that make its
/// conditions and multipliers do real work.
const KINDS: &[(&str, &str, &str, f64)] = &[
    ("financial", "late_payment", "days_late", 45.0),
    ("financial", "bill_paid", "days_late", 0.0),
    ("financial", "loan_repaid", "amount", 5_000.0),
    ("social", "volunteer_work", "hours", 8.0),
    ("social", "charity_donation", "amount", 600.0),
    ("social", "traffic_violation", "severity", 0.0),
    ("online", "review", "helpful_votes", 7.0),
    ("online", "spam_report", "confirmed", 1.0),
    ("online", "misinformation_report", "reach", 20_000.0),
    ("online", "login", "device", 0.0),
];

/// A deterministic stream of synthetic events over `subjects` subjects, with fresh ids and
/// advancing event time.
struct Stream {
    rng: u64,
    next_id: u64,
    clock: i64,
    subjects: u64,
}

impl Stream {
    fn new(subjects: u64) -> Self {
        Self {
            rng: 0x9E37_79B9_7F4A_7C15,
            next_id: 0,
            clock: JAN_2026,
            subjects,
        }
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*: tiny and good enough to spread subjects and kinds
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn event_for(&mut self, subject: u64) -> Event {
        let (event_type, subtype, key, value) =
            KINDS[(self.next_u64() % KINDS.len() as u64) as usize];
        self.next_id += 1;
        self.clock += 1; // one event per second of event time across the population
        let mut event = Event::new(
            format!("evt-{:012}", self.next_id),
            format!("SUBJ-{subject:07}"),
            event_type,
            subtype,
            Timestamp::from_unix_seconds(self.clock),
        );
        let value = match key {
            "severity" => Value::from("major"),
            "confirmed" => Value::Bool(true),
            _ => Value::Number(value),
        };
        event.payload.insert(key.to_owned(), value);
        event
    }

    fn batch(&mut self, n: usize) -> Vec<Event> {
        (0..n)
            .map(|_| {
                let subject = self.next_u64() % self.subjects;
                self.event_for(subject)
            })
            .collect()
    }
}

/// Applies batches of fresh events to a population of `subjects` that all exist already.
/// One million subjects is the figure the engine is held to; ten thousand keeps every
/// subject's state in cache and shows the engine's own cost per event.
fn apply_events(c: &mut Criterion, name: &str, subjects: u64) {
    let engine = RuleFile::example().unwrap().engine(1).unwrap();
    let mut scorer = Scorer::new(engine);
    let mut stream = Stream::new(subjects);
    let mut out = Outcomes::default();
    for subject in 0..subjects {
        let event = stream.event_for(subject);
        scorer.apply(&event, &mut out);
        out.clear();
    }

    let mut group = c.benchmark_group("scorer");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(2));
    group.measurement_time(Duration::from_secs(15));
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                let events = stream.batch(BATCH); // generated outside the timed part
                let start = Instant::now();
                for chunk in events.chunks(1_000) {
                    for event in chunk {
                        black_box(scorer.apply(event, &mut out));
                    }
                    out.clear(); // a pipeline hands outcomes on per micro-batch
                }
                elapsed += start.elapsed();
            }
            elapsed
        });
    });
    group.finish();
}

fn one_million_subjects(c: &mut Criterion) {
    apply_events(c, "apply_1m_subjects_example_rules", 1_000_000);
}

fn ten_thousand_subjects(c: &mut Criterion) {
    apply_events(c, "apply_10k_subjects_example_rules", 10_000);
}

criterion_group!(benches, one_million_subjects, ten_thousand_subjects);
criterion_main!(benches);
