//! `credence-loadgen`: see the crate README and `--help`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser as _;
use credence_loadgen::args::Args;
use credence_loadgen::generate::{GenConfig, Generator, Rng};
use credence_loadgen::metrics::{self, Metrics};
use credence_loadgen::probe::{self, ProbeConfig};
use credence_loadgen::progress;
use credence_loadgen::publish::{self, Batch, MEASURE, PublishConfig, STOPPED, WARMUP};
use credence_loadgen::report::{Latency, Report, ServerFigures};
use credence_loadgen::world::{Activity, ActivityConfig, World};
use credence_proto::v1 as pb;
use prost::Message as _;
use std::sync::Arc;
use tokio::sync::mpsc;

const SCORED: &str = "credence_events_scored_total";
const RECEIVED: &str = "credence_events_received_total";
const INGEST_TO_SNAPSHOT: &str = "credence_ingest_to_snapshot_seconds";
/// Throughput assumed when spacing event times of an unpaced run.
const ASSUMED_MAX_RATE: f64 = 400_000.0;
/// Event times start this many days before the run.
const SPAN_DAYS: i64 = 300;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    args.validate()?;
    let report = run(&args).await?;
    if let Some(path) = &args.report {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("writing --report {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.text());
    }
    Ok(())
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

async fn run(args: &Args) -> anyhow::Result<Report> {
    let run_id = args
        .run_id
        .clone()
        .unwrap_or_else(|| format!("{:08x}", Rng::new(now_ns() as u64).next_u64() as u32));
    let mut run_bytes = [0u8; 8];
    run_bytes.copy_from_slice(run_id.as_bytes());

    // Event times: increasing, spread over SPAN_DAYS (planned for twice the expected number
    // of events), never later than a minute before now.
    let total = (args.warmup + args.duration).as_secs_f64();
    let expected_events = (if args.rate > 0 {
        args.rate as f64
    } else {
        ASSUMED_MAX_RATE
    } * total)
        .max(1.0);
    let span_ns = SPAN_DAYS * 86_400 * 1_000_000_000;
    let start_ns = now_ns() - span_ns;
    let step_ns = ((span_ns as f64 / (2.0 * expected_events)) as i64).max(1_000);
    let gen_config = GenConfig {
        seed: args.seed,
        subjects: args.subjects,
        templates: (args.subjects as usize).clamp(10_000, 200_000),
        run_id: run_bytes,
        start_ns,
        step_ns,
        end_ns: now_ns() - 60 * 1_000_000_000,
    };

    // The generator thread keeps up to `capacity` batches (about 256k events) made ahead.
    let capacity = (256_000 / args.batch).clamp(16, 1024);
    let (tx, rx) = mpsc::channel::<Batch>(capacity);
    let batch = args.batch;
    let world = args.world.then(|| {
        Arc::new(World::new(
            args.seed,
            u32::try_from(args.subjects).unwrap_or(u32::MAX),
        ))
    });
    let generator = match &world {
        None => std::thread::spawn(move || {
            let mut g = Generator::new(&gen_config);
            while tx
                .blocking_send(Batch {
                    bytes: g.next_batch(batch),
                    events: batch as u32,
                    intents: Vec::new(),
                })
                .is_ok()
            {}
        }),
        Some(world) => {
            let world = Arc::clone(world);
            // How often each person acts so that event time runs `--time-scale` times faster
            // than the clock at the planned rate.
            let rate = if args.rate > 0 {
                args.rate as f64
            } else {
                ASSUMED_MAX_RATE
            };
            let config = ActivityConfig {
                seed: args.seed,
                origin_ns: start_ns,
                events_per_person_day: rate * 86_400.0 / (args.subjects as f64 * args.time_scale),
                duplicate_rate: args.duplicate_rate,
                malformed_rate: args.malformed_rate,
                run_id: run_id.clone(),
            };
            std::thread::spawn(move || world_batches(&world, config, batch, &tx))
        }
    };
    let prefill = Instant::now();
    while rx.len() < capacity && prefill.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let config = PublishConfig {
        target: args.target.clone(),
        connections: args.connections,
        inflight: args.inflight,
        rate: args.rate,
        batch: args.batch,
        bearer: credence_proto::client::Bearer::new(args.token.as_deref())
            .map_err(anyhow::Error::msg)?,
        tls: credence_proto::client::ClientTls {
            ca_pem: args
                .ca_cert
                .as_deref()
                .map(|p| {
                    std::fs::read(p).with_context(|| format!("reading --ca-cert {}", p.display()))
                })
                .transpose()?,
            identity: None,
        },
        kafka: match &args.kafka {
            Some(spec) => Some(Arc::new(connect_kafka(spec).await?)),
            None => None,
        },
    };
    let channels = publish::connect(&config).await?;
    if let (Some(world), Some(channel)) = (&world, channels.first()) {
        publish::publish_world(world, channel, &config.bearer).await?;
    }
    let mut warnings = Vec::new();
    let read_metrics = !args.metrics_url.is_empty();
    if read_metrics {
        // fail early on a wrong URL
        metrics::fetch(&args.metrics_url)
            .await
            .with_context(|| format!("reading --metrics-url {}", args.metrics_url))?;
    }

    let probe_config = ProbeConfig {
        run_id: run_id.clone(),
        every: args.probe_every,
        subjects: 8,
        timeout: Duration::from_secs(30),
    };
    let probe_channel = match channels.first() {
        Some(channel) if !args.probe_every.is_zero() => {
            match probe::prepare(channel, &config.bearer, &probe_config).await {
                Ok(()) => Some(channel.clone()),
                Err(e) => {
                    warnings.push(format!("no end-to-end probes: {e:#}"));
                    None
                }
            }
        }
        _ => None,
    };
    // Without a warm-up, the metrics are read before the first event goes out and every
    // event counts for the measured phase, so the report and the node count the same events.
    let warm = !args.warmup.is_zero();
    let mut before = None;
    if read_metrics && !warm {
        before = fetch_or_warn(&args.metrics_url, &mut warnings).await;
    }
    let first_phase = if warm { WARMUP } else { MEASURE };
    let (control, senders) = publish::start(&config, channels, rx, first_phase);
    let progress = (!args.quiet).then(|| tokio::spawn(progress::show(Arc::clone(&control))));
    if warm {
        tokio::time::sleep(args.warmup).await;
        if read_metrics {
            before = fetch_or_warn(&args.metrics_url, &mut warnings).await;
        }
    }
    control.set_phase(MEASURE);
    let t_start = Instant::now();
    let probes = probe_channel.map(|channel| {
        tokio::spawn(probe::run(
            channel,
            config.bearer.clone(),
            probe_config,
            control.stopped(),
        ))
    });
    tokio::time::sleep(args.duration).await;
    control.set_phase(STOPPED);
    let tallies = senders.await.context("the senders failed")?;
    if let Some(progress) = progress {
        progress.abort();
        let _ = progress.await;
    }
    let measured = t_start.elapsed();
    if generator.join().is_err() {
        warnings.push("the generator thread panicked".into());
    }

    // Events written straight to the topic (`--kafka`) never pass the node's ingestion, so
    // its received counter does not count them: the drain waits for them besides.
    let straight = if args.kafka.is_some() {
        (tallies.warmup.accepted + tallies.measure.accepted) as f64
    } else {
        0.0
    };
    let t = tallies.measure;
    let probed = match probes {
        Some(task) => Some(task.await.context("the probes failed")?),
        None => None,
    };
    let server = match (read_metrics, before) {
        (true, Some(before)) => {
            Some(server_figures(args, &before, t_start, straight, &mut warnings).await)
        }
        _ => None,
    };
    let requests = t.latencies.count();
    let publish_latency = Latency::of(&t.latencies);
    Ok(Report {
        target: args
            .kafka
            .as_ref()
            .map_or_else(|| args.target.clone(), |spec| format!("kafka://{spec}")),
        run_id,
        batch: args.batch,
        connections: args.connections,
        inflight: args.inflight,
        subjects: args.subjects,
        target_rate: args.rate,
        measured_s: measured.as_secs_f64(),
        events_per_s: t.accepted as f64 / measured.as_secs_f64(),
        events: t,
        publish_latency,
        requests,
        end_to_end: probed
            .as_ref()
            .filter(|p| p.latencies.count() > 0)
            .map(|p| Latency::of(&p.latencies)),
        probes: probed.as_ref().map_or(0, |p| p.latencies.count()),
        probes_lost: probed.as_ref().map_or(0, |p| p.lost),
        server,
        warnings,
    })
}

/// The SDK's Kafka producer on `BROKERS/TOPIC` (`--kafka`).
async fn connect_kafka(spec: &str) -> anyhow::Result<credence::KafkaProducer> {
    let (brokers, topic) = spec
        .rsplit_once('/')
        .filter(|(b, t)| !b.is_empty() && !t.is_empty())
        .with_context(|| {
            format!("--kafka {spec:?}: give BROKERS/TOPIC, e.g. 127.0.0.1:9092/credence.events")
        })?;
    credence::KafkaProducer::builder(brokers, topic)
        .connect()
        .await
        .with_context(|| format!("--kafka {spec:?}"))
}

/// The world's activity as batches of about `batch` events, until event time reaches a
/// minute before now or the senders stop taking them.
fn world_batches(world: &World, config: ActivityConfig, batch: usize, tx: &mpsc::Sender<Batch>) {
    let end = now_ns() - 60 * 1_000_000_000;
    let mut activity = Activity::new(config);
    let mut pending = std::collections::VecDeque::new();
    loop {
        while pending.len() < batch && activity.clock_ns() < end {
            let to = (activity.clock_ns() + 60 * 1_000_000_000).min(end);
            pending.extend(activity.advance(world, to));
        }
        if pending.is_empty() {
            return;
        }
        let (events, intents): (Vec<pb::Event>, Vec<_>) =
            pending.drain(..pending.len().min(batch)).unzip();
        let request = pb::PublishEventsRequest { events };
        let sent = Batch {
            events: intents.len() as u32,
            bytes: request.encode_to_vec().into(),
            intents,
        };
        if tx.blocking_send(sent).is_err() {
            return;
        }
    }
}

async fn fetch_or_warn(url: &str, warnings: &mut Vec<String>) -> Option<Metrics> {
    match metrics::fetch(url).await {
        Ok(m) => Some(m),
        Err(e) => {
            warnings.push(format!("metrics: {e:#}"));
            None
        }
    }
}

/// Waits (bounded) until the server scored everything it accepted, then compares the
/// metrics with those read at the start of the measured phase.
async fn server_figures(
    args: &Args,
    before: &Metrics,
    t_start: Instant,
    straight: f64,
    warnings: &mut Vec<String>,
) -> ServerFigures {
    let drain_start = Instant::now();
    let mut drained = false;
    let mut last = None;
    loop {
        if let Some(m) = fetch_or_warn(&args.metrics_url, warnings).await {
            let accepted = m.sum(RECEIVED, &[("outcome", "accepted")]);
            drained = m.sum(SCORED, &[]) >= accepted + straight;
            if !m.has(SCORED) || !m.has(RECEIVED) {
                warnings.push(format!("the server exports no {SCORED} or no {RECEIVED}"));
                drained = false;
                last = Some(m);
                break;
            }
            last = Some(m);
        }
        if drained || drain_start.elapsed() >= args.drain_timeout {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drain_wait = drain_start.elapsed();
    let end = t_start.elapsed();
    let Some(after) = last else {
        return ServerFigures::default();
    };
    if !after.has(&format!("{INGEST_TO_SNAPSHOT}_bucket")) {
        warnings.push(format!(
            "the server exports no {INGEST_TO_SNAPSHOT} histogram"
        ));
    }
    let diff = after
        .histogram(INGEST_TO_SNAPSHOT)
        .since(&before.histogram(INGEST_TO_SNAPSHOT));
    let scored = after.sum(SCORED, &[]) - before.sum(SCORED, &[]);
    ServerFigures {
        ingest_to_snapshot: Latency {
            p50_ms: diff.quantile(0.50).map(|s| s * 1000.0),
            p90_ms: diff.quantile(0.90).map(|s| s * 1000.0),
            p99_ms: diff.quantile(0.99).map(|s| s * 1000.0),
            p999_ms: diff.quantile(0.999).map(|s| s * 1000.0),
            max_ms: None,
            p50_beyond_buckets: diff.beyond_buckets(0.50),
            p99_beyond_buckets: diff.beyond_buckets(0.99),
        },
        ingest_to_snapshot_observations: diff.count(),
        events_scored: scored,
        scored_per_s: scored / end.as_secs_f64(),
        drained,
        drain_wait_s: drain_wait.as_secs_f64(),
    }
}
