//! The engine's per-subject state: plain data a store persists and restores.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::time::{Duration, Timestamp};

/// Event times at which one rule applied to one subject, ascending: the cooldown reads the
/// latest, the cap counts those inside its window.
///
/// Every application a rule window can still reach is kept (not only the last `cap.max`),
/// because a late event's window can reach back past later applications, and a later
/// version of the rule may add a cap. Applications that no window can reach any more are
/// pruned ([`RuleHistory::prune_through`]): no event at or before the subject's dedup floor
/// is applied, and no rule window is longer than the config's `max_rule_window`.
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

    /// Forgets the applications at or before `cutoff`.
    pub fn prune_through(&mut self, cutoff: Timestamp) {
        let gone = self.applications.partition_point(|&a| a <= cutoff);
        self.applications.drain(..gone);
    }
}

/// One recently applied event: its time and the digest of its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Seen {
    at: Timestamp,
    /// The [`event_digest`] as two halves: a `u128` field would align the entry to 16 bytes
    /// and make it 32 bytes instead of 24.
    digest: [u64; 2],
}

impl Seen {
    fn new(at: Timestamp, digest: u128) -> Self {
        Self {
            at,
            digest: [(digest >> 64) as u64, digest as u64],
        }
    }

    fn digest(self) -> u128 {
        (u128::from(self.digest[0]) << 64) | u128::from(self.digest[1])
    }
}

/// The duplicate window of one subject: the (time, id digest) of its recently applied
/// events, and a floor at or before which no event is applied any more (TOO LATE).
///
/// Bounded two ways, both in event time only, so a subject restored from a snapshot decides
/// exactly as one that never stopped:
/// - entries at or before `latest - horizon` are dropped, and the floor rises to that time;
/// - past `max_events` entries the oldest is dropped, and the floor rises to its time.
///
/// Every entry is after the floor, so an event is either after the floor, where the window
/// holds every applied event of its time and later and tells a duplicate for sure, or at
/// or before it, where it cannot be told and is refused. An event id is taken to name one
/// event: a retry carries the same `occurred_at`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DedupWindow {
    floor: Option<Timestamp>,
    /// Ascending by (time, digest).
    recent: Vec<Seen>,
}

impl DedupWindow {
    /// A window from a floor and (time, digest) entries in any order; entries at or before
    /// the floor are dropped, duplicate entries kept once.
    pub fn new(
        floor: Option<Timestamp>,
        entries: impl IntoIterator<Item = (Timestamp, u128)>,
    ) -> Self {
        let mut recent: Vec<Seen> = entries
            .into_iter()
            .map(|(at, d)| Seen::new(at, d))
            .filter(|s| floor.is_none_or(|f| s.at > f))
            .collect();
        recent.sort_unstable();
        recent.dedup();
        Self { floor, recent }
    }

    /// Events at or before this time are refused as too late; `None` before the subject's
    /// first event under this window (and in states saved before it existed).
    pub fn floor(&self) -> Option<Timestamp> {
        self.floor
    }

    /// Whether an event at `t` is at or before the floor.
    pub fn is_too_late(&self, t: Timestamp) -> bool {
        self.floor.is_some_and(|f| t <= f)
    }

    /// Whether the window holds the id digest `digest`. Newest first: a retry is most often
    /// of a recent event.
    pub fn contains(&self, digest: u128) -> bool {
        let wanted = Seen::new(Timestamp::default(), digest).digest;
        self.recent.iter().rev().any(|s| s.digest == wanted)
    }

    /// The entries as (time, digest), ascending by time.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (Timestamp, u128)> + '_ {
        self.recent.iter().map(|s| (s.at, s.digest()))
    }

    /// How many entries the window holds.
    pub fn len(&self) -> usize {
        self.recent.len()
    }

    /// True when the window holds no entry.
    pub fn is_empty(&self) -> bool {
        self.recent.is_empty()
    }

    /// Bytes the window takes: the struct plus its entries' heap allocation.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.recent.capacity() * std::mem::size_of::<Seen>()
    }

    /// Records an applied event, then bounds the window: `latest` is the subject's latest
    /// applied event time.
    pub fn record(
        &mut self,
        t: Timestamp,
        digest: u128,
        latest: Timestamp,
        horizon: Duration,
        max_events: usize,
    ) {
        let seen = Seen::new(t, digest);
        let at = self.recent.partition_point(|&s| s <= seen);
        let mut floor = latest.saturating_sub(horizon);
        if self.recent.len() >= max_events {
            // The last entry to go, in the window with `seen` in it: decided before inserting,
            // so the entries never outgrow `max_events`.
            let last_out = self.recent.len() - max_events;
            let evicted = match last_out.cmp(&at) {
                std::cmp::Ordering::Less => self.recent[last_out].at,
                std::cmp::Ordering::Equal => seen.at,
                std::cmp::Ordering::Greater => self.recent[last_out - 1].at,
            };
            floor = floor.max(evicted);
        }
        self.raise_floor(floor);
        if self.is_too_late(seen.at) {
            return;
        }
        if self.recent.len() == self.recent.capacity() {
            // Grow by doubling, but never past `max_events`: a full window holds no slack.
            let target = (self.recent.len() * 2).max(4).min(max_events);
            self.recent
                .reserve_exact(target.saturating_sub(self.recent.len()).max(1));
        }
        let at = self.recent.partition_point(|&s| s <= seen);
        self.recent.insert(at, seen);
    }

    /// Raises the floor to `floor` (never lowers it) and drops the entries it covers.
    fn raise_floor(&mut self, floor: Timestamp) {
        if self.floor.is_some_and(|f| f >= floor) {
            return;
        }
        self.floor = Some(floor);
        let gone = self.recent.partition_point(|s| s.at <= floor);
        self.recent.drain(..gone);
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

/// The serde form of a [`DedupWindow`]: `{"floor": time, "recent": [[time, "32 hex digits"]]}`.
/// Digests as hex text, because JSON readers that take numbers as doubles would round them.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DedupWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    floor: Option<Timestamp>,
    #[serde(default)]
    recent: Vec<(Timestamp, String)>,
}

impl Serialize for DedupWindow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        DedupWire {
            floor: self.floor,
            recent: self
                .entries()
                .map(|(at, d)| (at, format!("{d:032x}")))
                .collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for DedupWindow {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = DedupWire::deserialize(deserializer)?;
        let entries = wire
            .recent
            .into_iter()
            .map(|(at, hex)| {
                u128::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 32)
                    .map(|d| (at, d))
                    .ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "dedup digest {:?} is not 32 hex digits",
                            hex.chars().take(40).collect::<String>()
                        ))
                    })
            })
            .collect::<Result<Vec<_>, D::Error>>()?;
        Ok(Self::new(wire.floor, entries))
    }
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
    /// Recently applied events and the floor under which events are too late (duplicate
    /// detection); see [`DedupWindow`]. Absent in states saved before it existed.
    #[serde(default)]
    pub dedup: DedupWindow,
    /// Cooldown and cap state per rule id, one entry per rule that applied within reach of
    /// a rule window; survives rule edits and retire/activate. A short vector rather than a map: few rules touch
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
            dedup: DedupWindow::default(),
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

    /// Forgets the rule applications at or before `cutoff` (no rule window can reach them),
    /// and the histories left empty.
    pub fn prune_rule_histories(&mut self, cutoff: Timestamp) {
        // Cheap test first: most events prune nothing.
        if self
            .rules
            .iter()
            .all(|h| h.applications.first().is_none_or(|&a| a > cutoff))
        {
            return;
        }
        for history in &mut self.rules {
            history.prune_through(cutoff);
        }
        self.rules.retain(|h| !h.applications.is_empty());
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
