//! Benchmark: the SDK's `Producer` against a hand-written `StreamEvents` loop over the
//! generated client, in one run against one node (`make bench-sdk` starts a release node on
//! a throwaway data directory and runs this).
//!
//! Each round publishes `--events` new events three ways, one after the other, each timed
//! from the first send to the last acknowledgement:
//! - `raw`: one `StreamEvents` call of pre-built `StreamEventsRequest` batches (the
//!   floor: no batching work, no copies kept for retries, no outcome bookkeeping);
//! - `producer`: `Producer::send_proto` of the same generated events;
//! - `producer+event`: `Producer::send` of `credence::Event` values (adds the conversion
//!   of friendly events, JSON payloads included);
//! - `producer/unary`: `Producer::send_proto` with `Transport::Unary` (`PublishEvents` per
//!   batch), to choose the default transport.
//!
//! Before each run the node is left to finish scoring the previous one (its archive holds
//! every event published so far), so no run inherits the previous one's backlog.
//!
//! ```sh
//! cargo run --release -p credence --example bench_producer -- \
//!     --url http://127.0.0.1:50151 --events 500000 --rounds 2
//! ```

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use credence::proto::ingestion_service_client::IngestionServiceClient;
use credence::proto::{self as pb};
use credence::{Client, Event, Transport};

struct Args {
    url: String,
    events: usize,
    rounds: usize,
    batch: usize,
}

fn args() -> Result<Args, Box<dyn std::error::Error>> {
    let mut out = Args {
        url: "http://127.0.0.1:50051".into(),
        events: 500_000,
        rounds: 2,
        batch: 1_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => out.url = value,
            "--events" => out.events = value.parse()?,
            "--rounds" => out.rounds = value.parse()?,
            "--batch" => out.batch = value.parse()?,
            _ => {
                return Err(
                    format!("unknown flag {flag} (--url, --events, --rounds, --batch)").into(),
                );
            }
        }
    }
    Ok(out)
}

/// `n` synthetic events with ids `PREFIX-i` over 10,000 subjects, one millisecond apart.
fn events(prefix: &str, n: usize, start: DateTime<Utc>) -> Vec<Event> {
    (0..n)
        .map(|i| {
            Event::new(
                format!("{prefix}-{i}"),
                format!("bench-{:05}", i % 10_000),
                "financial",
                start + TimeDelta::milliseconds(i as i64),
            )
            .subtype("bill_paid_on_time")
            .payload(serde_json::json!({"amount": i % 500}))
        })
        .collect()
}

async fn raw(
    client: &Client,
    events: &[Event],
    batch: usize,
) -> Result<u64, Box<dyn std::error::Error>> {
    let requests: Vec<pb::StreamEventsRequest> = events
        .chunks(batch)
        .map(|c| pb::StreamEventsRequest {
            events: c.iter().map(Event::to_proto).collect(),
        })
        .collect();
    let mut ingestion = IngestionServiceClient::new(client.channel())
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);
    let started = Instant::now();
    let summary = ingestion
        .stream_events(futures::stream::iter(requests))
        .await?
        .into_inner();
    let elapsed = started.elapsed();
    print_run("raw StreamEvents", events.len(), elapsed, summary.accepted);
    Ok(summary.accepted)
}

async fn producer(
    client: &Client,
    events: Vec<Event>,
    batch: usize,
    friendly: bool,
    transport: Transport,
) -> Result<u64, Box<dyn std::error::Error>> {
    let n = events.len();
    let protos: Vec<pb::Event> = if friendly {
        Vec::new()
    } else {
        events.iter().map(Event::to_proto).collect()
    };
    let p = client
        .producer()
        .batch_events(batch)
        .transport(transport)
        .build();
    let started = Instant::now();
    if friendly {
        for e in events {
            p.send(e).await?;
        }
    } else {
        for e in protos {
            p.send_proto(e).await?;
        }
    }
    let stats = p.close().await?;
    let elapsed = started.elapsed();
    let name = match (friendly, transport) {
        (true, _) => "Producer::send(Event)",
        (false, Transport::Stream) => "Producer::send_proto",
        (false, Transport::Unary) => "Producer(Unary)::send_proto",
    };
    print_run(name, n, elapsed, stats.accepted);
    if stats.failed + stats.rejected > 0 {
        return Err(format!("{name}: {stats:?}").into());
    }
    Ok(stats.accepted)
}

fn print_run(name: &str, n: usize, elapsed: Duration, accepted: u64) {
    println!(
        "{name:<24} {n:>9} events in {:>6.2} s = {:>9.0} events/s ({accepted} accepted)",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}

/// Waits until the node has archived (scored) `total` events.
async fn caught_up(client: &Client, total: u64) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    loop {
        let result = client
            .run_analytics("select count(*) from events", None, None)
            .await?;
        let batches = result.record_batches()?;
        let stored = batches
            .first()
            .and_then(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
            })
            .map_or(0, |c| c.value(0));
        if u64::try_from(stored)? >= total {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("the node scored {stored} of {total} events in 10 minutes").into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args()?;
    let client = Client::connect(&args.url).await?;
    let start = Utc::now() - TimeDelta::days(1);
    let mut total = 0u64;
    let mut rates: [Vec<f64>; 4] = Default::default();
    for round in 0..args.rounds {
        for (mode, rate) in rates.iter_mut().enumerate() {
            caught_up(&client, total).await?;
            let prefix = format!("b{round}m{mode}");
            // Each run's events come later in time than the previous run's.
            let at = start + TimeDelta::milliseconds((total) as i64);
            let batch = events(&prefix, args.events, at);
            let started = Instant::now();
            let accepted = match mode {
                0 => raw(&client, &batch, args.batch).await?,
                1 => producer(&client, batch, args.batch, false, Transport::Stream).await?,
                2 => producer(&client, batch, args.batch, true, Transport::Stream).await?,
                _ => producer(&client, batch, args.batch, false, Transport::Unary).await?,
            };
            rate.push(args.events as f64 / started.elapsed().as_secs_f64());
            total += accepted;
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        if v.len() % 2 == 0 {
            f64::midpoint(v[mid - 1], v[mid])
        } else {
            v[mid]
        }
    };
    let [
        mut raw_rates,
        mut proto_rates,
        mut event_rates,
        mut unary_rates,
    ] = rates;
    let (r, p, e, u) = (
        median(&mut raw_rates),
        median(&mut proto_rates),
        median(&mut event_rates),
        median(&mut unary_rates),
    );
    println!(
        "median of {} rounds: raw {r:.0}/s, Producer::send_proto {p:.0}/s ({:.2}x), \
         Producer::send {e:.0}/s ({:.2}x), Producer(Unary)::send_proto {u:.0}/s ({:.2}x)",
        args.rounds,
        p / r,
        e / r,
        u / r
    );
    Ok(())
}
