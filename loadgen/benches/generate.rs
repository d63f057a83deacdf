//! How fast the load generator makes events, on one core: the templated generator (what
//! the ingest benchmark sends) and the synthetic world's activity, encoded as
//! `PublishEventsRequest`s either way. The goal is 1,000,000 events/s, so the generator is
//! never the bottleneck of what it measures. Run with `make bench` (or
//! `cargo bench -p credence-loadgen --bench generate`); figures go to docs/BENCHMARKS.md.

#![allow(missing_docs, clippy::unwrap_used, reason = "benchmark harness")]

use std::hint::black_box;

use credence_loadgen::generate::{GenConfig, Generator};
use credence_loadgen::world::{Activity, ActivityConfig, World};
use credence_proto::v1 as pb;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message as _;

const BATCH: usize = 1_000;
const DAY_NS: i64 = 86_400_000_000_000;
const START_NS: i64 = 1_767_225_600 * 1_000_000_000;

fn templates(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate");
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut generator = Generator::new(&GenConfig {
        seed: 42,
        subjects: 100_000,
        templates: 100_000,
        run_id: *b"0000beef",
        start_ns: START_NS,
        step_ns: 1_000,
        end_ns: i64::MAX,
    });
    group.bench_function("templates, 1000-event requests", |b| {
        b.iter(|| black_box(generator.next_batch(BATCH)));
    });

    // The world acts 2 times per person and day: 100,000 people make ~140 events per
    // event-minute at the busiest hours, so a request takes several minutes of event time.
    let world = World::new(42, 100_000);
    let mut activity = Activity::new(ActivityConfig {
        seed: 42,
        origin_ns: START_NS,
        events_per_person_day: 2.0,
        duplicate_rate: 0.001,
        malformed_rate: 0.001,
        run_id: "0000beef".into(),
    });
    let mut pending = Vec::new();
    group.bench_function("world activity, 1000-event requests", |b| {
        b.iter(|| {
            while pending.len() < BATCH {
                let to = activity.clock_ns() + DAY_NS / 24 / 6;
                pending.extend(activity.advance(&world, to));
            }
            let events: Vec<pb::Event> = pending.drain(..BATCH).map(|(e, _)| e).collect();
            black_box(pb::PublishEventsRequest { events }.encode_to_vec())
        });
    });
    group.finish();
}

criterion_group!(benches, templates);
criterion_main!(benches);
