//! The demo `credence dev` runs unless told `--no-demo`: a small synthetic world
//! (`credence_loadgen::world`) published to the node like any producer would, over gRPC,
//! with event time running faster than the clock, and a status line every few seconds, so
//! a newcomer sees scores move within a minute.
//!
//! Event time starts 45 days back and runs `--demo-time-scale` times faster than the clock
//! (an hour per second by default) until it reaches the present, then keeps to the clock:
//! the node refuses events more than an hour ahead of it (`ingest.max_future`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use credence_loadgen::world::{Activity, ActivityConfig, Intent, World};
use credence_proto::client::Bearer;
use credence_proto::v1 as pb;
use credence_proto::v1::ingestion_service_client::IngestionServiceClient;
use credence_proto::v1::query_service_client::QueryServiceClient;
use credence_proto::v1::scoring_service_client::ScoringServiceClient;
use credence_server::metrics::Metrics;
use tonic::transport::Channel;

/// Seed of the demo's world: the same people every time.
const SEED: u64 = 2026;
/// How far back event time starts.
const HISTORY: Duration = Duration::from_secs(45 * 86_400);
/// Between two publishes.
const TICK: Duration = Duration::from_millis(250);
/// Between two status lines.
const STATUS_EVERY: Duration = Duration::from_secs(5);
/// Events per request.
const BATCH: usize = 1_000;

/// `credence dev`'s demo flags.
#[derive(Clone, Debug, clap::Args)]
pub(crate) struct DemoFlags {
    /// Do not publish the demo world (the end-to-end tests run without it).
    #[arg(long)]
    no_demo: bool,
    /// People in the demo world.
    #[arg(long, default_value_t = 3_000)]
    demo_subjects: u32,
    /// Event time per unit of wall time while the demo catches up with the present.
    #[arg(long, default_value_t = 3_600.0)]
    demo_time_scale: f64,
    /// Events per person per day of event time.
    #[arg(long, default_value_t = 1.6)]
    demo_events_per_day: f64,
}

impl DemoFlags {
    /// The demo to run, unless turned off; `why_not` says what keeps it off.
    pub(crate) fn settings(&self, why_not: Option<&str>) -> anyhow::Result<Option<DemoFlags>> {
        if self.no_demo {
            return Ok(None);
        }
        if let Some(reason) = why_not {
            println!("demo off: {reason} (--no-demo silences this line)");
            return Ok(None);
        }
        anyhow::ensure!(self.demo_subjects > 0, "--demo-subjects must be at least 1");
        anyhow::ensure!(
            self.demo_time_scale >= 1.0 && self.demo_time_scale.is_finite(),
            "--demo-time-scale must be at least 1"
        );
        anyhow::ensure!(
            self.demo_events_per_day > 0.0 && self.demo_events_per_day <= 1_000.0,
            "--demo-events-per-day must be above 0 and at most 1000"
        );
        Ok(Some(self.clone()))
    }
}

/// Starts the demo against the node at `grpc` (runs until the process ends).
pub(crate) fn start(settings: DemoFlags, grpc: std::net::SocketAddr, partitions: u32) {
    tokio::spawn(async move {
        if let Err(e) = run(&settings, grpc, partitions).await {
            println!("demo stopped: {e:#}");
        }
    });
}

/// What the demo has sent, by intent, and what the node answered.
#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    duplicates: u64,
    duplicates_refused: u64,
    malformed: u64,
    malformed_rejected: u64,
    /// Answers other than the intent called for.
    unexpected: u64,
}

async fn run(
    settings: &DemoFlags,
    grpc: std::net::SocketAddr,
    partitions: u32,
) -> anyhow::Result<()> {
    let channel = Channel::from_shared(format!("http://{grpc}"))?
        .connect()
        .await?;
    let world = World::new(SEED, settings.demo_subjects);
    credence_loadgen::publish::publish_world(&world, &channel, &Bearer::default()).await?;
    let mut ingestion = IngestionServiceClient::new(channel.clone());
    println!(
        "demo: {} people and {} relations published; events follow, {} of event time per second",
        world.people.len(),
        world.ties.len(),
        humantime::format_duration(Duration::from_secs_f64(settings.demo_time_scale))
    );
    let latest_alert = Arc::new(Mutex::new(None));
    tokio::spawn(watch_alerts(channel.clone(), Arc::clone(&latest_alert)));

    let now_ns = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    };
    let origin_ns = now_ns() - i64::try_from(HISTORY.as_nanos()).unwrap_or(0);
    let mut activity = Activity::new(ActivityConfig {
        seed: SEED,
        origin_ns,
        events_per_person_day: settings.demo_events_per_day,
        duplicate_rate: 0.002,
        malformed_rate: 0.001,
        run_id: format!("{:08x}", now_ns() as u64 & 0xFFFF_FFFF),
    });
    let started = Instant::now();
    let mut tally = Tally::default();
    let mut status = Status::new(channel, partitions);
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        #[allow(
            clippy::cast_possible_truncation,
            reason = "event time within i64 nanoseconds for centuries"
        )]
        let scaled =
            origin_ns + (started.elapsed().as_secs_f64() * settings.demo_time_scale * 1e9) as i64;
        // Never ahead of the clock (the node refuses events from the future).
        let target = scaled.min(now_ns() - 1_000_000_000);
        let events = activity.advance(&world, target);
        for batch in events.chunks(BATCH) {
            publish(&mut ingestion, batch, &mut tally).await;
        }
        if status.due() {
            status
                .print(&tally, activity.clock_ns(), &latest_alert)
                .await;
        }
    }
}

/// Publishes one batch and checks each answer against what the event was meant to be.
async fn publish(
    ingestion: &mut IngestionServiceClient<Channel>,
    batch: &[(pb::Event, Intent)],
    tally: &mut Tally,
) {
    let request = pb::PublishEventsRequest {
        events: batch.iter().map(|(e, _)| e.clone()).collect(),
    };
    // A refused batch (the node stopping, backpressure) is simply skipped: the demo shows
    // activity, it does not promise delivery.
    let Ok(answer) = ingestion.publish_events(request).await else {
        return;
    };
    for (result, (_, intent)) in answer.into_inner().results.iter().zip(batch) {
        tally.sent += 1;
        let outcome = result.outcome();
        match intent {
            Intent::Valid => {
                if outcome != pb::EventOutcome::Accepted {
                    tally.unexpected += 1;
                }
            }
            Intent::Duplicate => {
                tally.duplicates += 1;
                if outcome == pb::EventOutcome::Duplicate {
                    tally.duplicates_refused += 1;
                } else {
                    tally.unexpected += 1;
                }
            }
            Intent::Malformed => {
                tally.malformed += 1;
                if outcome == pb::EventOutcome::Rejected {
                    tally.malformed_rejected += 1;
                } else {
                    tally.unexpected += 1;
                }
            }
        }
    }
}

async fn watch_alerts(channel: Channel, latest: Arc<Mutex<Option<pb::Alert>>>) {
    let mut scoring = ScoringServiceClient::new(channel);
    let Ok(stream) = scoring
        .watch_alerts(pb::WatchAlertsRequest::default())
        .await
    else {
        return;
    };
    let mut stream = stream.into_inner();
    while let Ok(Some(message)) = stream.message().await {
        if let (Some(alert), Ok(mut slot)) = (message.alert, latest.lock()) {
            *slot = Some(alert);
        }
    }
}

/// The status line's state: the counts at the last line, for rates.
struct Status {
    query: QueryServiceClient<Channel>,
    partitions: u32,
    last: Instant,
    last_sent: u64,
    last_scored: u64,
}

impl Status {
    fn new(channel: Channel, partitions: u32) -> Self {
        Self {
            query: QueryServiceClient::new(channel),
            partitions,
            last: Instant::now(),
            last_sent: 0,
            last_scored: Metrics::global().events_scored.get(),
        }
    }

    fn due(&self) -> bool {
        self.last.elapsed() >= STATUS_EVERY
    }

    #[allow(clippy::cast_precision_loss, reason = "rates for people to read")]
    async fn print(&mut self, tally: &Tally, clock_ns: i64, alert: &Mutex<Option<pb::Alert>>) {
        let seconds = self.last.elapsed().as_secs_f64().max(1e-3);
        let scored = Metrics::global().events_scored.get();
        let lag: i64 = (0..self.partitions)
            .map(|p| {
                Metrics::global()
                    .pipeline_lag
                    .with_label_values(&[&p.to_string()])
                    .get()
            })
            .sum();
        let tiers = match self
            .query
            .get_tier_distribution(pb::GetTierDistributionRequest::default())
            .await
        {
            Ok(answer) => answer
                .into_inner()
                .tiers
                .iter()
                .rev()
                .map(|t| format!("{} {}", t.tier, t.subjects))
                .collect::<Vec<_>>()
                .join(" · "),
            Err(e) => format!("unavailable ({})", e.message()),
        };
        let alert = alert.lock().ok().and_then(|a| a.clone()).map_or_else(
            || "none yet".to_owned(),
            |a| {
                format!(
                    "{} {}→{} ({:.0}→{:.0})",
                    a.subject_id, a.old_tier, a.new_tier, a.old_score, a.new_score
                )
            },
        );
        let unexpected = if tally.unexpected > 0 {
            format!(", {} answered otherwise than expected", tally.unexpected)
        } else {
            String::new()
        };
        println!(
            "demo: {:.0} events/s sent, {:.0} scored/s, lag {lag} | event time {} | tiers {tiers} | \
             duplicates refused {}/{}, malformed rejected {}/{}{unexpected} | latest alert {alert}",
            (tally.sent - self.last_sent) as f64 / seconds,
            scored.saturating_sub(self.last_scored) as f64 / seconds,
            event_time(clock_ns),
            tally.duplicates_refused,
            tally.duplicates,
            tally.malformed_rejected,
            tally.malformed,
        );
        self.last = Instant::now();
        self.last_sent = tally.sent;
        self.last_scored = scored;
    }
}

/// `2026-10-20 14:00` (UTC).
fn event_time(ns: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0));
    // "2026-10-20T14:00:00Z" cut to the minute.
    let text = humantime::format_rfc3339_seconds(at).to_string();
    text.get(..16).unwrap_or(&text).replacen('T', " ", 1)
}
