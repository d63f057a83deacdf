//! The engine's per-subject state: plain data a store persists and restores.

use std::sync::Arc;

use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};

use crate::time::{Duration, Timestamp};

/// Event times at which one rule applied to one subject, ascending: the cooldown reads the
/// latest, the cap counts those inside its window.
///
/// Every application is kept (not only the last `cap.max`) because a late event's window
/// can reach back past later applications, and a later version of the rule may add a cap;
/// the cost is one timestamp per score change, the same order as the applied event ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleHistory {
    /// The rule.
    pub rule_id: Arc<str>,
    /// Application times, ascending.
    applications: Vec<Timestamp>,
}

impl RuleHistory {
    /// A history of `rule_id` from application times in any order.
    pub fn new(rule_id: Arc<str>, mut applications: Vec<Timestamp>) -> Self {
        applications.sort_unstable();
        Self {
            rule_id,
            applications,
        }
    }

    /// The latest event time the rule applied at.
    pub fn last(&self) -> Option<Timestamp> {
        self.applications.last().copied()
    }

    /// How many applications lie in `(t - window, t]`.
    pub fn count_in_window(&self, t: Timestamp, window: Duration) -> usize {
        let start = t.saturating_sub(window);
        let lower = self.applications.partition_point(|&a| a <= start);
        let upper = self.applications.partition_point(|&a| a <= t);
        upper.saturating_sub(lower)
    }

    /// Records an application at `t`, keeping the times in order.
    pub fn record(&mut self, t: Timestamp) {
        let at = self.applications.partition_point(|&a| a <= t);
        self.applications.insert(at, t);
    }

    /// All application times, ascending.
    pub fn applications(&self) -> &[Timestamp] {
        &self.applications
    }
}

/// The 128-bit XXH3 digest of an id, as duplicate detection keeps event ids (and the
/// in-memory scorer keys subjects).
///
/// A digest instead of the id keeps the per-subject set free of heap strings (one
/// allocation and one cache miss less per event). Two different ids of one subject share a
/// digest with a probability of about n²/2¹²⁹ for n events: nil for any real stream. XXH3 is
/// a fixed algorithm, so persisted digests stay valid across versions of this crate.
pub fn event_digest(event_id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(event_id.as_bytes())
}

/// Everything the engine knows about one subject. Restoring a saved state and continuing
/// gives the same results, to the bit, as never having stopped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectState {
    /// The subject.
    pub subject_id: String,
    /// Current score.
    pub score: f64,
    /// Current tier.
    pub tier: Arc<str>,
    /// Latest event time applied; decay runs from here.
    pub last_time: Timestamp,
    /// Id of the last applied event.
    pub last_event_id: String,
    /// Events applied (duplicates excluded).
    pub applied_events: u64,
    /// Config version of the last applied event.
    pub config_version: u32,
    /// Digests of the ids of every applied event (duplicate detection); see [`event_digest`].
    pub applied_event_digests: FxHashSet<u128>,
    /// Cooldown and cap state per rule id, one entry per rule that ever applied; survives
    /// rule edits and retire/activate. A short vector rather than a map: few rules touch
    /// one subject, and a scan of adjacent entries costs fewer cache misses than a tree.
    pub rules: Vec<RuleHistory>,
}

impl SubjectState {
    /// A new subject at `score` in `tier`, first seen at event time `t`.
    pub fn new(subject_id: impl Into<String>, score: f64, tier: Arc<str>, t: Timestamp) -> Self {
        Self {
            subject_id: subject_id.into(),
            score,
            tier,
            last_time: t,
            last_event_id: String::new(),
            applied_events: 0,
            config_version: 0,
            applied_event_digests: FxHashSet::default(),
            rules: Vec::new(),
        }
    }

    /// The history of a rule, if it ever applied to this subject.
    pub fn rule_history(&self, rule_id: &Arc<str>) -> Option<&RuleHistory> {
        self.rules.iter().find(|h| same_id(&h.rule_id, rule_id))
    }

    /// Records an application of a rule at `t`.
    pub fn record_application(&mut self, rule_id: &Arc<str>, t: Timestamp) {
        match self.rules.iter_mut().find(|h| same_id(&h.rule_id, rule_id)) {
            Some(history) => history.record(t),
            None => self
                .rules
                .push(RuleHistory::new(Arc::clone(rule_id), vec![t])),
        }
    }

    /// Whether `event_id` was applied to this subject.
    pub fn has_applied(&self, event_id: &str) -> bool {
        self.applied_event_digests.contains(&event_digest(event_id))
    }

    /// Remembers `event_id` as applied; false when it was already.
    pub fn mark_applied(&mut self, event_id: &str) -> bool {
        self.applied_event_digests.insert(event_digest(event_id))
    }
}

/// Rule ids compare by pointer first: live, both sides share the compiled rule's `Arc`.
fn same_id(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_exclude_the_start_and_include_the_end() {
        let t = |s| Timestamp::from_unix_seconds(s);
        let mut h = RuleHistory::new(Arc::from("r"), Vec::new());
        for s in [30, 10, 20] {
            h.record(t(s));
        }
        assert_eq!(h.applications(), [t(10), t(20), t(30)]);
        assert_eq!(h.last(), Some(t(30)));
        let w = Duration::from_secs(10);
        assert_eq!(
            h.count_in_window(t(30), w),
            1,
            "(20, 30]: 20 has left the window"
        );
        assert_eq!(h.count_in_window(t(29), w), 1, "(19, 29] holds 20");
        assert_eq!(
            h.count_in_window(t(25), Duration::from_secs(20)),
            2,
            "(5, 25]"
        );
        assert_eq!(h.count_in_window(t(5), w), 0);
    }
}
