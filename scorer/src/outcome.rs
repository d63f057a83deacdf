//! What applying an event produces: score changes (the explanation), alerts, the outcome.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use crate::value::Value;

/// One application of one rule to one subject: the unit of explanation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreChange {
    /// The event that triggered the rule.
    pub event_id: String,
    /// The subject.
    pub subject_id: String,
    /// The rule.
    pub rule_id: Arc<str>,
    /// The rule's exact version.
    pub rule_version: u32,
    /// The config version in force.
    pub config_version: u32,
    /// Score before the change (after decay and earlier rules of the event).
    pub old_score: f64,
    /// Score after the change, clamped.
    pub new_score: f64,
    /// `new_score - old_score`.
    pub delta: f64,
    /// Product of the multipliers that held (1 when none did).
    pub factor: f64,
    /// Event time.
    pub at: Timestamp,
    /// The rule's name.
    pub reason: Arc<str>,
    /// Outside values the rule read (profile, flags, lists, association), by path.
    pub inputs: BTreeMap<String, Value>,
}

/// A tier change or threshold crossing caused by one event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// The subject.
    pub subject_id: String,
    /// The event.
    pub event_id: String,
    /// Score before the event (before decay).
    pub old_score: f64,
    /// Score after the event.
    pub new_score: f64,
    /// Tier before the event.
    pub old_tier: Arc<str>,
    /// Tier after the event.
    pub new_tier: Arc<str>,
    /// Thresholds crossed, in the config's order.
    pub thresholds_crossed: Vec<f64>,
    /// Event time.
    pub at: Timestamp,
}

/// What became of one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventOutcome {
    /// Applied; `changes` score changes were made (possibly none: decay alone, or no rule).
    Applied {
        /// Score changes made.
        changes: usize,
    },
    /// Its event id was applied to the subject before; nothing changed.
    Duplicate,
    /// It is at or before the subject's dedup floor (its latest event time minus the
    /// config's `dedup_horizon`, or the time of an event dropped from a full window), where
    /// a duplicate can no longer be told; nothing changed.
    TooLate,
    /// The subject is unknown and the config does not create subjects; nothing changed.
    UnknownSubject,
}

/// The changes and alerts of one or more applied events, appended in order. Reuse one buffer
/// across events (clear it between batches) to keep the hot path free of allocation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcomes {
    /// Score changes, in the order they were made.
    pub changes: Vec<ScoreChange>,
    /// Alerts, in the order they were raised.
    pub alerts: Vec<Alert>,
}

impl Outcomes {
    /// Empties the buffer, keeping its capacity.
    pub fn clear(&mut self) {
        self.changes.clear();
        self.alerts.clear();
    }
}
