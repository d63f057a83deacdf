//! Publishes synthetic events through the SDK's `Producer` to a running node, then prints
//! what happened and one subject's score.
//!
//! ```sh
//! make dev                                             # a node on 127.0.0.1:50051
//! cargo run -p credence --example producer             # or: -- http://HOST:PORT 50000
//! ```
//!
//! All data is synthetic.

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use credence::{Client, Event, OutcomeKind};
use serde_json::json;

const SUBJECTS: usize = 1_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:50051".to_owned());
    let events: usize = args.next().map_or(Ok(20_000), |n| n.parse())?;

    let client = Client::connect(&url).await?;
    let producer = client
        .producer()
        .batch_events(1_000)
        .linger(Duration::from_millis(5))
        .on_outcome(|o| {
            if !matches!(o.kind, OutcomeKind::Duplicate { .. }) {
                eprintln!("{}: {:?}", o.event_id, o.kind);
            }
        })
        .build();

    // Ids unique to this run, so running the example twice publishes new events.
    let run = Utc::now().timestamp_millis();
    let start = Utc::now() - TimeDelta::hours(1);
    let started = Instant::now();
    for i in 0..events {
        let subject = format!("subject-{:04}", i % SUBJECTS);
        let at = start + TimeDelta::milliseconds(i as i64);
        let event = match i % 3 {
            0 => Event::new(format!("ex-{run}-{i}"), subject, "financial", at)
                .subtype("late_payment")
                .payload(json!({"days_late": i % 60})),
            1 => Event::new(format!("ex-{run}-{i}"), subject, "financial", at)
                .subtype("bill_paid_on_time"),
            _ => Event::new(format!("ex-{run}-{i}"), subject, "social", at)
                .subtype("volunteer_work")
                .payload(json!({"hours": 2})),
        };
        producer.send(event).await?; // waits while the queue is full
    }
    let stats = producer.close().await?; // every event acknowledged
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} events in {secs:.1} s ({:.0} events/s): {} accepted, {} duplicates, {} rejected, {} failed",
        stats.sent,
        stats.sent as f64 / secs,
        stats.accepted,
        stats.duplicates,
        stats.rejected,
        stats.failed
    );

    // Scoring follows within milliseconds; wait for subject-0000's last event.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let score = client.get_score("subject-0000").await?;
    println!(
        "subject-0000: score {:.1}, tier {} ({} events applied)",
        score.score, score.tier, score.applied_events
    );
    Ok(())
}
