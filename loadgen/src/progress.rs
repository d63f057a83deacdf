//! The progress line of a run, on stderr: live (redrawn in place, by `indicatif`) when
//! stderr is a terminal, a plain line every few seconds otherwise (a log, CI), so that a
//! stalled or failing run shows while it runs rather than in the report at the end.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::publish::{Control, LiveCounts};

/// How often a plain line is printed when stderr is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// One progress line: totals, and the rates since the previous reading.
pub fn line(now: LiveCounts, before: LiveCounts, elapsed: Duration, since: Duration) -> String {
    let secs = since.as_secs_f64().max(1e-9);
    let rate = |a: u64, b: u64| a.saturating_sub(b) as f64 / secs;
    format!(
        "{:>5.0}s  sent {} ({:.0}/s)  accepted {} ({:.0}/s)  refused {}  failed {}",
        elapsed.as_secs_f64(),
        now.sent,
        rate(now.sent, before.sent),
        now.accepted,
        rate(now.accepted, before.accepted),
        now.refused,
        now.failed,
    )
}

/// Shows the progress of the senders `control` drives until the task is aborted.
pub async fn show(control: Arc<Control>) {
    let start = Instant::now();
    let live = std::io::stderr().is_terminal();
    let bar = live.then(|| {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    });
    // The bar goes when the task is aborted (dropped mid-await).
    let _clear = ClearOnDrop(bar.clone());
    let every = if live {
        Duration::from_secs(1)
    } else {
        PLAIN_EVERY
    };
    let mut before = control.live();
    let mut at = Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let now = control.live();
        let text = line(now, before, start.elapsed(), at.elapsed());
        match &bar {
            Some(bar) => bar.set_message(text),
            None => eprintln!("{text}"),
        }
        before = now;
        at = Instant::now();
    }
}

struct ClearOnDrop(Option<ProgressBar>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_totals_and_rates_since_the_last_reading() {
        let before = LiveCounts {
            sent: 1_000,
            accepted: 900,
            refused: 10,
            failed: 0,
        };
        let now = LiveCounts {
            sent: 6_000,
            accepted: 5_400,
            refused: 20,
            failed: 500,
        };
        let text = line(now, before, Duration::from_secs(12), Duration::from_secs(5));
        assert_eq!(
            text,
            "   12s  sent 6000 (1000/s)  accepted 5400 (900/s)  refused 20  failed 500"
        );
    }
}
