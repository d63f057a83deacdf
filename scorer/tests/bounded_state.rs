//! The per-subject state stays bounded: the dedup window (TOO LATE below its floor) and the
//! pruned rule histories, which never change a result on a stream the engine accepts.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]

use std::sync::Arc;

use credence_scorer::{
    Cap, DedupWindow, Duration, Event, EventOutcome, Outcomes, Rule, RuleSet, RuleStatus, Scorer,
    ScoringConfig, SubjectState, Timestamp, event_digest,
};
use proptest::prelude::*;

const JAN_2026: i64 = 1_767_225_600;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

fn at(secs: i64) -> Timestamp {
    Timestamp::from_unix_seconds(JAN_2026 + secs)
}

fn event(id: &str, subtype: &str, secs: i64) -> Event {
    Event::new(id, "S", "t", subtype, at(secs))
}

/// Three rules with short windows: a cooldown, a cap, and both.
fn rules() -> Vec<Rule> {
    let active = |mut r: Rule| {
        r.status = RuleStatus::Active;
        r
    };
    let mut a = active(Rule::new("a", "t", -5.0));
    a.event_subtype = Some("a".into());
    a.cooldown = Some(Duration::from_days(1));
    let mut b = active(Rule::new("b", "t", 3.0));
    b.event_subtype = Some("b".into());
    b.cap = Some(Cap {
        max: 2,
        window: Duration::from_days(3),
    });
    let mut c = active(Rule::new("c", "t", 1.0));
    c.cooldown = Some(Duration::from_hours(12));
    c.cap = Some(Cap {
        max: 1,
        window: Duration::from_days(2),
    });
    vec![a, b, c]
}

fn config(horizon: Duration, window_events: u32, max_rule_window: Duration) -> ScoringConfig {
    ScoringConfig {
        decay: credence_scorer::Decay { half_life: None },
        dedup_horizon: horizon,
        dedup_window_events: window_events,
        max_rule_window,
        ..ScoringConfig::default()
    }
}

fn scorer(config: ScoringConfig) -> Scorer {
    let rules = RuleSet::compile(1, rules()).unwrap();
    Scorer::new(credence_scorer::Engine::new(Arc::new(rules), Arc::new(config)).unwrap())
}

#[test]
fn an_event_at_or_before_the_horizon_is_too_late_and_changes_nothing() {
    let mut s = scorer(config(Duration::from_days(2), 256, Duration::from_days(3)));
    let mut out = Outcomes::default();
    assert!(matches!(
        s.apply(&event("e1", "b", 10 * DAY), &mut out),
        EventOutcome::Applied { .. }
    ));
    let before = s.state("S").unwrap().clone();
    assert_eq!(before.dedup.floor(), Some(at(8 * DAY)));
    assert_eq!(
        s.apply(&event("e0", "b", 8 * DAY), &mut out),
        EventOutcome::TooLate,
        "the floor itself is too late"
    );
    assert_eq!(s.state("S").unwrap(), &before, "nothing changed");
    assert!(matches!(
        s.apply(&event("e2", "b", 8 * DAY + 1), &mut out),
        EventOutcome::Applied { .. }
    ));
    assert_eq!(
        s.apply(&event("e2", "b", 8 * DAY + 1), &mut out),
        EventOutcome::Duplicate
    );
}

#[test]
fn a_full_window_drops_its_oldest_entry_and_raises_the_floor_to_it() {
    let mut s = scorer(config(Duration::from_days(30), 3, Duration::from_days(3)));
    let mut out = Outcomes::default();
    for (i, secs) in [HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR].into_iter().enumerate() {
        s.apply(&event(&format!("e{i}"), "x", secs), &mut out);
    }
    let window = &s.state("S").unwrap().dedup;
    assert_eq!(window.floor(), Some(at(HOUR)), "e0 was dropped");
    let times: Vec<_> = window.entries().map(|(t, _)| t).collect();
    assert_eq!(times, [at(2 * HOUR), at(3 * HOUR), at(4 * HOUR)]);
    assert_eq!(
        s.apply(&event("e0", "x", HOUR), &mut out),
        EventOutcome::TooLate
    );
    assert_eq!(
        s.apply(&event("e1", "x", 2 * HOUR), &mut out),
        EventOutcome::Duplicate
    );
    assert!(matches!(
        s.apply(&event("late", "x", 90 * 60), &mut out),
        EventOutcome::Applied { .. }
    ));
    assert_eq!(
        s.state("S").unwrap().dedup.floor(),
        Some(at(90 * 60)),
        "the late event filled the window and was the oldest"
    );
}

#[test]
fn a_longer_horizon_in_a_new_config_never_lowers_the_floor() {
    let mut s = scorer(config(Duration::from_days(1), 256, Duration::from_days(3)));
    let mut out = Outcomes::default();
    s.apply(&event("e1", "x", 10 * DAY), &mut out);
    let rules = RuleSet::compile(1, rules()).unwrap();
    let wider = config(Duration::from_days(30), 256, Duration::from_days(3));
    s.set_engine(credence_scorer::Engine::new(Arc::new(rules), Arc::new(wider)).unwrap());
    assert_eq!(
        s.apply(&event("e0", "x", 8 * DAY), &mut out),
        EventOutcome::TooLate,
        "what the old floor dropped stays unknowable"
    );
}

#[test]
fn a_window_round_trips_through_json_and_refuses_bad_digests() {
    let window = DedupWindow::new(
        Some(at(0)),
        [
            (at(5), event_digest("b")),
            (at(1), event_digest("a")),
            (at(0), 7),
        ],
    );
    assert_eq!(window.len(), 2, "the entry at the floor is dropped");
    let text = serde_json::to_string(&window).unwrap();
    assert_eq!(serde_json::from_str::<DedupWindow>(&text).unwrap(), window);
    let bad = r#"{"recent": [["2026-01-01T00:00:00Z", "xyz"]]}"#;
    let err = serde_json::from_str::<DedupWindow>(bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("32 hex digits"), "{err}");
}

#[test]
fn a_subject_with_100k_events_keeps_a_bounded_state() {
    let mut s = scorer(config(Duration::from_days(30), 256, Duration::from_days(3)));
    let mut out = Outcomes::default();
    let subtypes = ["a", "b", "x"];
    for i in 0..100_000i64 {
        // One event every 10 minutes, about 694 days in all.
        let e = event(&format!("e{i}"), subtypes[(i % 3) as usize], i * 600);
        assert!(matches!(
            s.apply(&e, &mut out),
            EventOutcome::Applied { .. }
        ));
        out.clear();
    }
    let state = s.state("S").unwrap();
    assert_eq!(state.applied_events, 100_000);
    assert_eq!(state.dedup.len(), 256);
    // Entries span 256 events of 10 minutes; applications reach back floor - 3 days.
    let kept: usize = state.rules.iter().map(|h| h.applications().len()).sum();
    let cutoff = state
        .dedup
        .floor()
        .unwrap()
        .saturating_sub(Duration::from_days(3));
    assert!(
        state
            .rules
            .iter()
            .all(|h| h.applications().iter().all(|&t| t > cutoff))
    );
    // a: once a day; b: twice per 3 days; c: once per 2 days; over the ~4.8 days kept.
    assert!(kept <= 20, "{kept} applications kept");
    let json = serde_json::to_string(state).unwrap();
    assert!(json.len() < 40_000, "a snapshot of {} bytes", json.len());
}

/// Memory of the dedup window per subject (figures for docs/BENCHMARKS.md; run with
/// `--nocapture` to see them).
#[test]
fn window_memory_per_subject() {
    let mut s = scorer(config(Duration::from_days(30), 256, Duration::from_days(3)));
    let mut out = Outcomes::default();
    for i in 0..1000i64 {
        s.apply(&event(&format!("full{i}"), "x", i * 60), &mut out);
    }
    let full = s.state("S").unwrap().dedup.memory_bytes();
    let mut typical = SubjectState::new("T", 1000.0, Arc::from("C"), at(0));
    // A subject with an event every other day: 15 inside a 30-day horizon.
    for i in 0..60i64 {
        typical.dedup.record(
            at(i * 2 * DAY),
            event_digest(&format!("t{i}")),
            at(i * 2 * DAY),
            Duration::from_days(30),
            256,
        );
    }
    let empty = DedupWindow::default().memory_bytes();
    println!(
        "dedup window per subject: empty {empty} B, typical (15 entries) {} B, full (256 entries) {full} B",
        typical.dedup.memory_bytes()
    );
    assert_eq!(typical.dedup.len(), 15);
    assert_eq!(empty, 40, "an Option<Timestamp> and a Vec");
    assert_eq!(
        full,
        empty + 256 * 24,
        "24 bytes an entry, no slack in a full window"
    );
}

/// A stream for one subject: mostly forward in time with jitter, so some events are late.
fn stream() -> impl Strategy<Value = Vec<(usize, i64)>> {
    prop::collection::vec((0usize..3, -3 * DAY..DAY), 1..150).prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (kind, jitter))| (kind, i as i64 * 8 * HOUR + jitter))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn pruned_histories_give_the_results_of_unpruned_ones(
        raw in stream(),
        horizon_hours in 1i64..240,
        window_events in 1u32..40,
    ) {
        let horizon = Duration::from_hours(horizon_hours);
        let mut pruned = scorer(config(horizon, window_events, Duration::from_days(3)));
        // Ten years reach back past every event of the stream: nothing is pruned.
        let mut full = scorer(config(horizon, window_events, Duration::from_days(3650)));
        let mut out_pruned = Outcomes::default();
        let mut out_full = Outcomes::default();
        for (i, &(kind, secs)) in raw.iter().enumerate() {
            let e = event(&format!("e{i}"), ["a", "b", "x"][kind], secs);
            let a = pruned.apply(&e, &mut out_pruned);
            let b = full.apply(&e, &mut out_full);
            prop_assert_eq!(a, b, "event {}", i);
        }
        prop_assert_eq!(&out_pruned, &out_full);
        let (p, f) = (pruned.state("S").unwrap(), full.state("S").unwrap());
        prop_assert_eq!(p.score.to_bits(), f.score.to_bits());
        prop_assert_eq!(&p.dedup, &f.dedup);
        let cutoff = p.dedup.floor().unwrap().saturating_sub(Duration::from_days(3));
        for history in &f.rules {
            let kept: Vec<_> = history.applications().iter().copied().filter(|&t| t > cutoff).collect();
            let got = p.rule_history(&history.rule_id).map_or(&[][..], |h| h.applications());
            prop_assert_eq!(got, &kept[..], "rule {}", history.rule_id);
        }
    }
}
