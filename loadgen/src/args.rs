//! The command line.

use std::time::Duration;

use clap::Parser;

/// Publishes synthetic events to a Credence node and reports throughput and latencies.
#[derive(Clone, Debug, Parser)]
#[command(name = "credence-loadgen", version, about)]
pub struct Args {
    /// gRPC endpoint of the node.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    pub target: String,
    /// Bearer token, for a node with authentication on (needs the producer role).
    #[arg(long, env = "CREDENCE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) of a node with TLS on; the target's host must be in its
    /// certificate.
    #[arg(long)]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Send the events straight to the node's Kafka topic, `BROKERS/TOPIC` (for example
    /// `127.0.0.1:9092/credence.events`), with the Rust SDK's `KafkaProducer`, instead of
    /// `PublishEvents`. Profiles, relations and probes still go to `--target`. Counted
    /// accepted: events Kafka acknowledged (the node's verdicts are not seen on this path).
    #[arg(long, value_name = "BROKERS/TOPIC")]
    pub kafka: Option<String>,
    /// Prometheus endpoint of the node; empty skips the server-side figures.
    #[arg(long, default_value = "http://127.0.0.1:9464/metrics")]
    pub metrics_url: String,
    /// Number of distinct subjects the events are spread over.
    #[arg(long, default_value_t = 100_000)]
    pub subjects: u64,
    /// Events per PublishEvents request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// HTTP/2 connections to open.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 2)]
    pub inflight: usize,
    /// Length of the measured phase, e.g. "30s".
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Length of the unmeasured phase before it.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Target events per second; 0 sends as fast as the server answers.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Seed of the synthetic data (templates and their order).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Tag inside every event id (8 hex digits); default: derived from the clock, so that
    /// two runs against one server never share an id.
    #[arg(long)]
    pub run_id: Option<String>,
    /// Longest wait, after sending, for the server to score everything it accepted.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Time between two end-to-end probes (an event published, then its score read until
    /// it shows; see the `probe` module); "0s" sends none.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub probe_every: Duration,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,
    /// No progress line while the run goes on (a live line on a terminal, a plain line
    /// every 5 s otherwise, on stderr).
    #[arg(long)]
    pub quiet: bool,
    /// Publish the synthetic world (`world`): `--subjects` people with their profiles and
    /// relations first, then their activity, instead of templated events.
    #[arg(long)]
    pub world: bool,
    /// With `--world`: event time per unit of wall time (3600 = an hour per second); with
    /// `--rate`, it sets how often each person acts.
    #[arg(long, default_value_t = 3_600.0)]
    pub time_scale: f64,
    /// With `--world`: share of events sent twice on purpose (the node must refuse them).
    #[arg(long, default_value_t = 0.001)]
    pub duplicate_rate: f64,
    /// With `--world`: share of events sent malformed on purpose (the node must reject them).
    #[arg(long, default_value_t = 0.001)]
    pub malformed_rate: f64,
}

impl Args {
    /// Checks the values clap cannot check alone.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.subjects > 0, "--subjects must be at least 1");
        anyhow::ensure!(self.batch > 0, "--batch must be at least 1");
        anyhow::ensure!(self.connections > 0, "--connections must be at least 1");
        anyhow::ensure!(self.inflight > 0, "--inflight must be at least 1");
        anyhow::ensure!(!self.duration.is_zero(), "--duration must be positive");
        anyhow::ensure!(
            self.time_scale >= 1.0 && self.time_scale.is_finite(),
            "--time-scale must be at least 1"
        );
        for (name, rate) in [
            ("--duplicate-rate", self.duplicate_rate),
            ("--malformed-rate", self.malformed_rate),
        ] {
            anyhow::ensure!((0.0..=0.5).contains(&rate), "{name} must lie in 0..=0.5");
        }
        anyhow::ensure!(
            !self.world || u32::try_from(self.subjects).is_ok(),
            "--subjects of a --world must fit in 32 bits"
        );
        if let Some(run) = &self.run_id {
            anyhow::ensure!(
                run.len() == 8 && run.bytes().all(|b| b.is_ascii_hexdigit()),
                "--run-id must be 8 hex digits, not {run:?}"
            );
        }
        Ok(())
    }
}
