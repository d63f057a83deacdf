//! The server's Prometheus metrics: fetching the text exposition, reading counters and
//! histograms from it, and quantiles of the difference of two histogram readings.

use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// One sample line: `name{labels} value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name (with any `_bucket`, `_sum`, `_count` suffix).
    pub name: String,
    /// Labels in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A parsed exposition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Parses the Prometheus text format; comment and malformed lines are skipped.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(parse_line)
            .collect();
        Self { samples }
    }

    /// Sum of the samples named `name` whose labels include every pair of `with`.
    pub fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name && with.iter().all(|(k, v)| s.label(k) == Some(*v)))
            .map(|s| s.value)
            .sum()
    }

    /// Whether any sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    /// The histogram family `name` (its `_bucket` samples), summed over all other labels.
    pub fn histogram(&self, name: &str) -> Histogram {
        let bucket = format!("{name}_bucket");
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        for s in self.samples.iter().filter(|s| s.name == bucket) {
            let Some(le) = s.label("le").and_then(parse_value) else {
                continue;
            };
            match buckets.iter_mut().find(|(b, _)| *b == le) {
                Some((_, count)) => *count += s.value,
                None => buckets.push((le, s.value)),
            }
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        Histogram { buckets }
    }
}

/// A cumulative histogram: `(upper bound, observations <= bound)`, ascending, usually
/// ending with `+Inf`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    /// The buckets.
    pub buckets: Vec<(f64, f64)>,
}

impl Histogram {
    /// Observations counted.
    pub fn count(&self) -> f64 {
        self.buckets.last().map_or(0.0, |b| b.1)
    }

    /// The observations made between `earlier` and `self` (bucket by bucket difference).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let buckets = self
            .buckets
            .iter()
            .map(|&(le, count)| {
                let before = earlier
                    .buckets
                    .iter()
                    .find(|b| b.0 == le)
                    .map_or(0.0, |b| b.1);
                (le, (count - before).max(0.0))
            })
            .collect();
        Histogram { buckets }
    }

    /// Whether the `q` quantile falls in the `+Inf` bucket, where [`Histogram::quantile`]
    /// can only answer the largest finite bound (the true value is above it).
    pub fn beyond_buckets(&self, q: f64) -> bool {
        let total = self.count();
        let finite = self
            .buckets
            .iter()
            .rev()
            .find(|b| b.0.is_finite())
            .map_or(0.0, |b| b.1);
        total > 0.0 && q.clamp(0.0, 1.0) * total > finite
    }

    /// The `q` quantile (0..=1) by linear interpolation inside the bucket holding it, as
    /// Prometheus' `histogram_quantile` does: the first bucket starts at 0, and a quantile
    /// in the `+Inf` bucket is the largest finite bound. `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0.0 || self.buckets.is_empty() {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total;
        let mut lower = 0.0;
        let mut below = 0.0;
        for &(le, cumulative) in &self.buckets {
            if cumulative >= rank && cumulative > below {
                if le.is_infinite() {
                    return Some(lower);
                }
                return Some(lower + (le - lower) * (rank - below) / (cumulative - below));
            }
            if le.is_finite() {
                lower = le;
            }
            below = cumulative;
        }
        Some(lower)
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, labels, rest) = if let Some(open) = line.find('{') {
        let close = line.rfind('}')?;
        let labels = parse_labels(&line[open + 1..close])?;
        (&line[..open], labels, &line[close + 1..])
    } else {
        let space = line.find(char::is_whitespace)?;
        (&line[..space], Vec::new(), &line[space..])
    };
    // value, then an optional timestamp
    let value = parse_value(rest.split_whitespace().next()?)?;
    Some(Sample {
        name: name.trim().to_owned(),
        labels,
        value,
    })
}

fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(labels);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((key.trim().to_owned(), value));
    }
}

/// Fetches `url` (plain `http://host:port/path`) with a minimal HTTP/1.0 GET and parses it.
pub async fn fetch(url: &str) -> anyhow::Result<Metrics> {
    let text = tokio::time::timeout(Duration::from_secs(10), get(url))
        .await
        .with_context(|| format!("GET {url} timed out"))??;
    Ok(Metrics::parse(&text))
}

async fn get(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("metrics url {url:?} must start with http://"))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = TcpStream::connect(host)
        .await
        .with_context(|| format!("connecting to {host}"))?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: text/plain\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("GET {url}: malformed HTTP response");
    };
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("GET {url}: {status}");
    }
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    Ok(if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    })
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16);
        match size {
            Ok(0) | Err(_) => break,
            Ok(n) if n <= rest.len() => {
                out.push_str(&rest[..n]);
                body = rest[n..].trim_start_matches("\r\n");
            }
            Ok(_) => {
                out.push_str(rest);
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"
# HELP credence_ingest_to_snapshot_seconds From ingest ack to snapshot commit.
# TYPE credence_ingest_to_snapshot_seconds histogram
credence_ingest_to_snapshot_seconds_bucket{le="0.005"} 10
credence_ingest_to_snapshot_seconds_bucket{le="0.01"} 20
credence_ingest_to_snapshot_seconds_bucket{le="0.05"} 30
credence_ingest_to_snapshot_seconds_bucket{le="+Inf"} 30
credence_ingest_to_snapshot_seconds_sum 0.4
credence_ingest_to_snapshot_seconds_count 30
credence_events_received_total{outcome="accepted"} 30
credence_events_received_total{outcome="rejected"} 2
credence_events_scored_total 30
"#;

    // 100 more observations: 0 in (0, 5ms], 50 in (5, 10ms], 40 in (10, 50ms], 10 above.
    const AFTER: &str = r#"
credence_ingest_to_snapshot_seconds_bucket{le="0.005"} 10
credence_ingest_to_snapshot_seconds_bucket{le="0.01"} 70
credence_ingest_to_snapshot_seconds_bucket{le="0.05"} 120
credence_ingest_to_snapshot_seconds_bucket{le="+Inf"} 130
credence_events_received_total{outcome="accepted"} 130
credence_events_scored_total 125 1700000000000
"#;

    #[test]
    fn quantiles_of_the_difference_interpolate_inside_buckets() {
        let before = Metrics::parse(BEFORE).histogram("credence_ingest_to_snapshot_seconds");
        let after = Metrics::parse(AFTER).histogram("credence_ingest_to_snapshot_seconds");
        let diff = after.since(&before);
        assert_eq!(diff.count(), 100.0);
        // rank 50: the 50th of the 50 in (0.005, 0.01] -> the bucket's top
        assert!((diff.quantile(0.5).unwrap() - 0.01).abs() < 1e-12);
        // rank 25: half way through (0.005, 0.01]
        assert!((diff.quantile(0.25).unwrap() - 0.0075).abs() < 1e-12);
        // rank 70: 20 of the 40 in (0.01, 0.05] -> 0.01 + 0.04 * 0.5
        assert!((diff.quantile(0.7).unwrap() - 0.03).abs() < 1e-12);
        // rank 99 falls in +Inf: the largest finite bound
        assert_eq!(diff.quantile(0.99).unwrap(), 0.05);
        assert!(diff.beyond_buckets(0.99) && !diff.beyond_buckets(0.9));
        assert_eq!(Histogram::default().quantile(0.5), None);
        assert_eq!(after.since(&after).quantile(0.5), None);
    }

    #[test]
    fn first_bucket_interpolates_from_zero() {
        let h = Histogram {
            buckets: vec![(0.1, 4.0), (f64::INFINITY, 4.0)],
        };
        assert!((h.quantile(0.5).unwrap() - 0.05).abs() < 1e-12);
        assert!((h.quantile(1.0).unwrap() - 0.1).abs() < 1e-12);
    }

    #[test]
    fn counters_sum_over_labels_and_filter() {
        let m = Metrics::parse(BEFORE);
        assert_eq!(
            m.sum("credence_events_received_total", &[("outcome", "accepted")]),
            30.0
        );
        assert_eq!(m.sum("credence_events_received_total", &[]), 32.0);
        let m = Metrics::parse(AFTER);
        assert_eq!(m.sum("credence_events_scored_total", &[]), 125.0);
        assert!(!m.has("nothing_total"));
    }

    #[test]
    fn labels_with_escapes_and_histograms_over_other_labels() {
        let text = "x_bucket{partition=\"0\",le=\"1\"} 2\nx_bucket{partition=\"1\",le=\"1\"} 3\n\
                    x_bucket{partition=\"0\",le=\"+Inf\"} 2\nx_bucket{partition=\"1\",le=\"+Inf\"} 5\n\
                    y{a=\"q\\\"uote\",b=\"c,d\"} 1";
        let m = Metrics::parse(text);
        assert_eq!(
            m.histogram("x").buckets,
            vec![(1.0, 5.0), (f64::INFINITY, 7.0)]
        );
        assert_eq!(m.samples.last().unwrap().label("a"), Some("q\"uote"));
        assert_eq!(m.samples.last().unwrap().label("b"), Some("c,d"));
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            "hello world"
        );
    }
}
