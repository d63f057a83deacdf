//! Request latencies as an HDR histogram: constant memory however long the run, three
//! significant digits at every magnitude (1 µs to an hour), and exact merges across senders.

use hdrhistogram::Histogram;

/// The longest latency kept as itself (an hour, in microseconds); longer ones count as this.
const HIGHEST_US: u64 = 3_600_000_000;

/// Latencies in microseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        // 1 µs .. an hour at 3 significant digits: fixed bounds, so it never allocates
        // while recording. The bounds are constants that the crate accepts.
        #[allow(clippy::expect_used, reason = "constant bounds the crate accepts")]
        let histogram =
            Histogram::new_with_bounds(1, HIGHEST_US, 3).expect("valid histogram bounds");
        Self(histogram)
    }
}

impl Latencies {
    /// Counts one latency.
    pub fn record_us(&mut self, us: u64) {
        self.0.saturating_record(us.clamp(1, HIGHEST_US));
    }

    /// Adds every latency of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides: the addition cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// Latencies counted.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The `q` quantile in milliseconds (`None` when nothing was counted): the smallest
    /// value that `q` of the latencies do not exceed, within the histogram's precision.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        (self.count() > 0).then(|| self.0.value_at_quantile(q) as f64 / 1000.0)
    }

    /// The largest latency in milliseconds.
    pub fn max_ms(&self) -> Option<f64> {
        (self.count() > 0).then(|| self.0.max() as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_three_digits_and_merges_are_exact() {
        let mut a = Latencies::default();
        let mut b = Latencies::default();
        for us in 1..=1_000_u64 {
            a.record_us(us * 1_000); // 1..=1000 ms
        }
        b.record_us(5_000_000); // one of 5 s
        a.merge(&b);
        assert_eq!(a.count(), 1_001);
        let close = |got: Option<f64>, want: f64| {
            let got = got.expect("counted");
            assert!((got - want).abs() <= want * 1e-3, "{got} vs {want}");
        };
        close(a.quantile_ms(0.5), 501.0);
        close(a.quantile_ms(0.99), 991.0);
        close(a.max_ms(), 5_000.0);
        assert_eq!(Latencies::default().quantile_ms(0.5), None);
        // Past the highest trackable value: counted as an hour, not lost.
        let mut c = Latencies::default();
        c.record_us(u64::MAX);
        close(c.max_ms(), 3_600_000.0);
    }
}
