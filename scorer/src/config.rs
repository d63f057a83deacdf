//! The scoring config: baseline, bounds, tiers, decay, alert thresholds.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::time::Duration;

/// Default [`ScoringConfig::dedup_horizon`]: 30 days.
pub const DEFAULT_DEDUP_HORIZON: Duration = Duration::from_days(30);
/// Default [`ScoringConfig::dedup_window_events`].
pub const DEFAULT_DEDUP_WINDOW_EVENTS: u32 = 256;
/// Default [`ScoringConfig::max_rule_window`]: 365 days.
pub const DEFAULT_MAX_RULE_WINDOW: Duration = Duration::from_days(365);

/// A named score band.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Tier name, e.g. `A`.
    pub name: Arc<str>,
    /// Lowest score of the tier (inclusive).
    pub min_score: f64,
}

/// Exponential decay of `score - baseline` over event time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decay {
    /// Time for the distance to the baseline to halve; absent or zero: no decay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_life: Option<Duration>,
}

/// The global scoring parameters (see SCORING.md, "Scoring config").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScoringConfig {
    /// Version, set by the server; a score change records it.
    pub version: u32,
    /// Score of a new subject; decay pulls towards it.
    pub baseline: f64,
    /// Lower bound of every score.
    pub min_score: f64,
    /// Upper bound of every score.
    pub max_score: f64,
    /// Tier table; a subject's tier is the one with the highest `min_score` <= its score.
    pub tiers: Vec<Tier>,
    /// Decay towards the baseline.
    pub decay: Decay,
    /// Scores whose crossing emits an alert.
    pub alert_thresholds: Vec<f64>,
    /// Whether an event for an unknown subject creates it (else it is rejected).
    pub auto_create_subjects: bool,
    /// How far behind a subject's latest event an event may still be applied: older ones
    /// are refused as too late, as duplicates of them can no longer be told.
    pub dedup_horizon: Duration,
    /// Most recent events per subject kept for duplicate detection; past it the oldest is
    /// dropped and events at or before its time are refused as too late.
    pub dedup_window_events: u32,
    /// Longest cooldown or cap window a rule may have; rule histories keep only the
    /// applications a window this long can reach from the first event still accepted.
    pub max_rule_window: Duration,
    /// When the server stored this version (wall clock); absent in files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<crate::time::Timestamp>,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        let tier = |name: &str, min_score: f64| Tier {
            name: Arc::from(name),
            min_score,
        };
        Self {
            version: 1,
            baseline: 1000.0,
            min_score: 0.0,
            max_score: 2000.0,
            tiers: vec![
                tier("E", 0.0),
                tier("D", 600.0),
                tier("C", 900.0),
                tier("B", 1100.0),
                tier("A", 1300.0),
            ],
            decay: Decay {
                half_life: Some(Duration::from_days(90)),
            },
            alert_thresholds: vec![500.0],
            auto_create_subjects: true,
            dedup_horizon: DEFAULT_DEDUP_HORIZON,
            dedup_window_events: DEFAULT_DEDUP_WINDOW_EVENTS,
            max_rule_window: DEFAULT_MAX_RULE_WINDOW,
            updated_at: None,
        }
    }
}

impl ScoringConfig {
    /// The tier of `score`: the tier with the highest `min_score` <= `score`, or the empty
    /// name when the score is below every tier.
    pub fn tier_of(&self, score: f64) -> Arc<str> {
        let mut best: Option<&Tier> = None;
        for tier in &self.tiers {
            if tier.min_score <= score && best.is_none_or(|b| tier.min_score > b.min_score) {
                best = Some(tier);
            }
        }
        best.map_or_else(|| Arc::from(""), |t| Arc::clone(&t.name))
    }

    /// The dedup window's size as a count.
    pub fn dedup_window_len(&self) -> usize {
        self.dedup_window_events as usize
    }

    /// The decay half-life in nanoseconds, when decay is on.
    pub fn half_life_nanos(&self) -> Option<i64> {
        self.decay.half_life.map(Duration::nanos).filter(|&n| n > 0)
    }
}
