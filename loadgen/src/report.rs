//! The result of a run, as text for people or as one JSON object.

use std::fmt::Write as _;

use serde::Serialize;

use crate::latency::Latencies;
use crate::publish::Tally;

/// Latency figures, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: Option<f64>,
    /// 90th percentile.
    pub p90_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// 99.9th percentile.
    pub p999_ms: Option<f64>,
    /// Largest (only known on the client side).
    pub max_ms: Option<f64>,
    /// True when p50 lies above the histogram's largest finite bucket: `p50_ms` is then
    /// that bound, a lower limit.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub p50_beyond_buckets: bool,
    /// The same for p99.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub p99_beyond_buckets: bool,
}

impl Latency {
    /// The figures of a client-side histogram (exact maximum, no bucket limits).
    pub fn of(latencies: &Latencies) -> Self {
        Self {
            p50_ms: latencies.quantile_ms(0.50),
            p90_ms: latencies.quantile_ms(0.90),
            p99_ms: latencies.quantile_ms(0.99),
            p999_ms: latencies.quantile_ms(0.999),
            max_ms: latencies.max_ms(),
            p50_beyond_buckets: false,
            p99_beyond_buckets: false,
        }
    }
}

/// What the server's metrics said about the measured phase.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ServerFigures {
    /// `credence_ingest_to_snapshot_seconds` over the measured phase and the drain.
    pub ingest_to_snapshot: Latency,
    /// Observations in that histogram difference.
    pub ingest_to_snapshot_observations: f64,
    /// Increase of `credence_events_scored_total`.
    pub events_scored: f64,
    /// That increase per second, from the start of the measured phase to the end of the drain.
    pub scored_per_s: f64,
    /// Whether scoring caught up with every accepted event before the drain timeout.
    pub drained: bool,
    /// Seconds waited after sending for scoring to catch up.
    pub drain_wait_s: f64,
}

/// The whole report.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// gRPC endpoint.
    pub target: String,
    /// Tag inside the event ids of this run.
    pub run_id: String,
    /// Events per request.
    pub batch: usize,
    /// Connections.
    pub connections: usize,
    /// Requests in flight per connection.
    pub inflight: usize,
    /// Subjects.
    pub subjects: u64,
    /// Target rate (0: as fast as possible).
    pub target_rate: u64,
    /// Wall time of the measured phase, in seconds (until the last answer came back).
    pub measured_s: f64,
    /// What the senders saw in the measured phase.
    #[serde(flatten)]
    pub events: Tally,
    /// Accepted events per second of measured wall time.
    pub events_per_s: f64,
    /// `PublishEvents` round trips.
    pub publish_latency: Latency,
    /// Requests answered.
    pub requests: u64,
    /// Publish-to-visible latency of the probes (`probe`); absent when none were sent.
    pub end_to_end: Option<Latency>,
    /// Probes that became visible.
    pub probes: u64,
    /// Probes not visible within their timeout, or refused.
    pub probes_lost: u64,
    /// Server-side figures; absent when the metrics endpoint was not read.
    pub server: Option<ServerFigures>,
    /// Problems met while reading the metrics.
    pub warnings: Vec<String>,
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2} ms"))
}

impl Report {
    /// The text report.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let rate = if self.target_rate == 0 {
            "as fast as possible".to_owned()
        } else {
            format!("{} events/s target", self.target_rate)
        };
        let _ = writeln!(
            s,
            "credence-loadgen → {} (run {}): batch {}, {} connections × {} in flight, {} subjects, {rate}",
            self.target, self.run_id, self.batch, self.connections, self.inflight, self.subjects
        );
        let _ = writeln!(
            s,
            "  events   sent {}  accepted {}  duplicates {}  rejected {}  failed {}",
            self.events.sent,
            self.events.accepted,
            self.events.duplicates,
            self.events.rejected,
            self.events.failed.values().sum::<u64>()
        );
        let e = &self.events;
        if e.intended_duplicates + e.intended_malformed + e.unexpected > 0 {
            let _ = writeln!(
                s,
                "           on purpose: {} duplicates, {} malformed; answered otherwise than meant: {}",
                e.intended_duplicates, e.intended_malformed, e.unexpected
            );
        }
        for (code, n) in &self.events.failed {
            let msg = self
                .events
                .failure_messages
                .get(code)
                .map_or("", String::as_str);
            let _ = writeln!(s, "           {n} events in failed requests: {code}: {msg}");
        }
        for r in &self.events.rejection_samples {
            let _ = writeln!(s, "           rejected {r}");
        }
        let _ = writeln!(
            s,
            "  achieved {:.0} events/s accepted over {:.1} s ({} requests)",
            self.events_per_s, self.measured_s, self.requests
        );
        let l = &self.publish_latency;
        // A batch's latency: PublishEvents answered, or (--kafka) every event acknowledged.
        let what = if self.target.starts_with("kafka://") {
            "Kafka produce latency"
        } else {
            "PublishEvents latency"
        };
        let _ = writeln!(
            s,
            "  {what}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            ms(l.p50_ms),
            ms(l.p90_ms),
            ms(l.p99_ms),
            ms(l.p999_ms),
            ms(l.max_ms)
        );
        if let Some(l) = &self.end_to_end {
            let _ = writeln!(
                s,
                "  publish-to-visible (probes)  p50 {}  p90 {}  p99 {}  max {}  ({} probes, {} lost)",
                ms(l.p50_ms),
                ms(l.p90_ms),
                ms(l.p99_ms),
                ms(l.max_ms),
                self.probes,
                self.probes_lost
            );
        }
        if let Some(server) = &self.server {
            let i = &server.ingest_to_snapshot;
            let _ = writeln!(
                s,
                "  server ingest-to-snapshot  p50 {}{}  p99 {}{}  ({:.0} observations)",
                if i.p50_beyond_buckets { "> " } else { "" },
                ms(i.p50_ms),
                if i.p99_beyond_buckets { "> " } else { "" },
                ms(i.p99_ms),
                server.ingest_to_snapshot_observations
            );
            let _ = writeln!(
                s,
                "  server scored {:.0} events, {:.0} events/s; {} after {:.1} s of drain",
                server.events_scored,
                server.scored_per_s,
                if server.drained {
                    "drained"
                } else {
                    "NOT drained"
                },
                server.drain_wait_s
            );
        }
        for w in &self.warnings {
            let _ = writeln!(s, "  warning: {w}");
        }
        s
    }
}
