//! `/api/v1/stats`: the node's own counters (what `/metrics` exposes) as one JSON object, so
//! the page computes rates from two samples without parsing the Prometheus text format.

use std::time::Instant;

use prometheus::Histogram;
use prometheus::core::Metric as _;
use serde_json::{Value, json};

use crate::metrics::Metrics;

/// The counters of this process, with `partitions` lag gauges.
pub(super) fn snapshot(partitions: u32, started: Instant) -> Value {
    let m = Metrics::global();
    let received = |outcome: &str| m.events_received.with_label_values(&[outcome]).get();
    let lag: Vec<Value> = (0..partitions)
        .map(|p| {
            let events = m.pipeline_lag.with_label_values(&[&p.to_string()]).get();
            json!({"partition": p, "events": events})
        })
        .collect();
    let latency = &m.ingest_to_snapshot;
    json!({
        "events_received": {
            "accepted": received("accepted"),
            "duplicate": received("duplicate"),
            "rejected": received("rejected"),
        },
        "events_scored": m.events_scored.get(),
        "dead_letters": m.dead_letters.get(),
        "lag": lag,
        "ingest_to_snapshot": {
            "count": latency.get_sample_count(),
            "sum_seconds": latency.get_sample_sum(),
            "p50_seconds": quantile(latency, 0.5),
            "p99_seconds": quantile(latency, 0.99),
            "buckets": buckets(latency),
        },
        "uptime_seconds": started.elapsed().as_secs_f64(),
    })
}

/// `[upper bound, cumulative count]` per bucket, for quantiles over a window (two samples).
fn buckets(histogram: &Histogram) -> Vec<(f64, u64)> {
    histogram
        .metric()
        .get_histogram()
        .get_bucket()
        .iter()
        .map(|b| (b.upper_bound(), b.cumulative_count()))
        .collect()
}

/// The `q` quantile since the start, estimated as Prometheus' `histogram_quantile` does
/// (linear within the bucket it falls in); `None` before the first observation. A quantile
/// past the last bucket is that bucket's bound.
fn quantile(histogram: &Histogram, q: f64) -> Option<f64> {
    quantile_of(&buckets(histogram), histogram.get_sample_count(), q)
}

#[allow(
    clippy::cast_precision_loss,
    reason = "counts far below 2^52: exact as f64"
)]
fn quantile_of(buckets: &[(f64, u64)], count: u64, q: f64) -> Option<f64> {
    if count == 0 {
        return None;
    }
    let rank = q * count as f64;
    let mut lower = (0.0, 0);
    for &(bound, cumulative) in buckets {
        if cumulative as f64 >= rank {
            let in_bucket = (cumulative - lower.1) as f64;
            let into = if in_bucket > 0.0 {
                (rank - lower.1 as f64) / in_bucket
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * into);
        }
        lower = (bound, cumulative);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_their_bucket() {
        let buckets = [(0.01, 50), (0.1, 90), (1.0, 100)];
        assert_eq!(quantile_of(&buckets, 100, 0.5), Some(0.01));
        let p99 = quantile_of(&buckets, 100, 0.99).unwrap();
        assert!((p99 - 0.91).abs() < 1e-9, "{p99}");
        assert_eq!(quantile_of(&buckets, 0, 0.5), None);
        // Observations past the last bound: the bound is the best the buckets know.
        assert_eq!(quantile_of(&[(0.01, 1)], 2, 0.99), Some(0.01));
    }
}
