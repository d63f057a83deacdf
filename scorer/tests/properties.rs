//! Invariants of the engine over random event streams on the example rule set: replay is
//! deterministic, stopping and restoring state (through JSON) changes nothing, scores stay
//! within bounds, and duplicates never change anything; the bounded state (dedup window,
//! pruned rule histories) restores exactly and prunes only what no rule can see.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]

use credence_scorer::{
    Duration, Event, EventOutcome, ListEntry, ListKind, Outcomes, Profile, RuleFile, Scorer,
    SubjectContext, SubjectState, Timestamp, Value,
};
use proptest::prelude::*;

const KINDS: &[(&str, &str)] = &[
    ("financial", "late_payment"),
    ("financial", "bill_paid"),
    ("financial", "loan_default"),
    ("financial", "loan_repaid"),
    ("financial", "tax_filed"),
    ("financial", "savings_milestone"),
    ("social", "volunteer_work"),
    ("social", "charity_donation"),
    ("social", "community_service"),
    ("social", "traffic_violation"),
    ("social", "public_disturbance"),
    ("social", "cleanup"),
    ("online", "review"),
    ("online", "spam_report"),
    ("online", "fraud_flag"),
    ("online", "misinformation_report"),
    ("online", "training"),
    ("online", "account_verified"),
];
const SUBJECTS: &[&str] = &["S0", "S1", "S2"];
const JAN_2026: i64 = 1_767_225_600;

/// One generated event: (id number, subject, kind, seconds after 2026-01-01, payload number).
fn event_strategy() -> impl Strategy<Value = (u8, usize, usize, i64, f64)> {
    (
        0u8..60,
        0..SUBJECTS.len(),
        0..KINDS.len(),
        0i64..150 * 86_400,
        0.0f64..20_000.0,
    )
}

fn build(raw: &[(u8, usize, usize, i64, f64)]) -> Vec<Event> {
    raw.iter()
        .map(|&(id, subject, kind, secs, n)| {
            let (event_type, subtype) = KINDS[kind];
            let mut event = Event::new(
                format!("e{id}"),
                SUBJECTS[subject],
                event_type,
                subtype,
                Timestamp::from_unix_seconds(JAN_2026 + secs),
            );
            for key in ["days_late", "amount", "hours", "helpful_votes", "reach"] {
                event
                    .payload
                    .insert(key.into(), Value::Number((n / 100.0).floor()));
            }
            event
                .payload
                .insert("confidence".into(), Value::Number(n / 20_000.0));
            for key in ["confirmed", "on_time", "early", "verified_purchase"] {
                event.payload.insert(key.into(), Value::Bool(n > 5_000.0));
            }
            event.payload.insert(
                "severity".into(),
                Value::from(if n > 10_000.0 { "major" } else { "minor" }),
            );
            event
                .payload
                .insert("course".into(), Value::from("security basics"));
            event
        })
        .collect()
}

fn fresh_scorer() -> Scorer {
    scorer_with(&RuleFile::example().unwrap())
}

/// The example rules with a tight dedup window, so streams of a few dozen events fill it
/// and pass its horizon.
fn tight_scorer(horizon_days: i64, window_events: u32) -> Scorer {
    let mut file = RuleFile::example().unwrap();
    file.config.dedup_horizon = Duration::from_days(horizon_days);
    file.config.dedup_window_events = window_events;
    scorer_with(&file)
}

fn scorer_with(file: &RuleFile) -> Scorer {
    let mut scorer = Scorer::new(file.engine(1).unwrap());
    scorer.set_context(
        "S0",
        SubjectContext {
            lists: vec![ListEntry {
                kind: ListKind::Block,
                expires_at: None,
            }],
            association: Some(-150.0),
            ..SubjectContext::default()
        },
    );
    scorer.set_context(
        "S1",
        SubjectContext {
            profile: Some(Profile {
                occupation: Some("teacher".into()),
                flags: vec!["student".into()],
                ..Profile::default()
            }),
            lists: vec![ListEntry {
                kind: ListKind::Allow,
                expires_at: Some(Timestamp::from_unix_seconds(JAN_2026 + 60 * 86_400)),
            }],
            association: None,
        },
    );
    scorer
}

fn run(scorer: &mut Scorer, events: &[Event]) -> (Vec<EventOutcome>, Outcomes) {
    let mut out = Outcomes::default();
    let outcomes = events.iter().map(|e| scorer.apply(e, &mut out)).collect();
    (outcomes, out)
}

fn sorted_states(scorer: &Scorer) -> Vec<SubjectState> {
    let mut states: Vec<SubjectState> = scorer.states().cloned().collect();
    states.sort_by(|a, b| a.subject_id.cmp(&b.subject_id));
    states
}

fn score_bits(scorer: &Scorer) -> Vec<u64> {
    sorted_states(scorer)
        .iter()
        .map(|s| s.score.to_bits())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn replaying_the_same_events_gives_bit_identical_results(
        raw in prop::collection::vec(event_strategy(), 1..80)
    ) {
        let events = build(&raw);
        let mut first = fresh_scorer();
        let mut second = fresh_scorer();
        let a = run(&mut first, &events);
        let b = run(&mut second, &events);
        prop_assert_eq!(a, b);
        prop_assert_eq!(score_bits(&first), score_bits(&second));
        prop_assert_eq!(sorted_states(&first), sorted_states(&second));
    }

    #[test]
    fn stopping_and_restoring_state_through_json_changes_nothing(
        raw in prop::collection::vec(event_strategy(), 1..80),
        split in any::<prop::sample::Index>(),
        horizon_days in 1i64..60,
        window_events in 1u32..24,
    ) {
        let events = build(&raw);
        let at = split.index(events.len() + 1);
        let fresh_scorer = || tight_scorer(horizon_days, window_events);
        let mut straight = fresh_scorer();
        let (straight_outcomes, straight_out) = run(&mut straight, &events);

        let mut before = fresh_scorer();
        let (mut outcomes, mut out) = run(&mut before, &events[..at]);
        let saved = serde_json::to_string(&sorted_states(&before)).unwrap();
        let restored: Vec<SubjectState> = serde_json::from_str(&saved).unwrap();
        let mut after = fresh_scorer();
        for state in restored {
            after.restore(state);
        }
        let (rest_outcomes, rest_out) = run(&mut after, &events[at..]);
        outcomes.extend(rest_outcomes);
        out.changes.extend(rest_out.changes);
        out.alerts.extend(rest_out.alerts);

        prop_assert_eq!(outcomes, straight_outcomes);
        prop_assert_eq!(out, straight_out);
        prop_assert_eq!(score_bits(&after), score_bits(&straight));
        prop_assert_eq!(sorted_states(&after), sorted_states(&straight));
    }

    #[test]
    fn scores_always_stay_within_bounds(
        raw in prop::collection::vec(event_strategy(), 1..120)
    ) {
        let events = build(&raw);
        let mut scorer = fresh_scorer();
        let (min, max) = (scorer.engine().config().min_score, scorer.engine().config().max_score);
        let mut out = Outcomes::default();
        for event in &events {
            scorer.apply(event, &mut out);
            let score = scorer.state(&event.subject_id).unwrap().score;
            prop_assert!((min..=max).contains(&score), "{score} outside [{min}, {max}]");
        }
        for change in &out.changes {
            prop_assert!((min..=max).contains(&change.new_score));
            prop_assert_eq!(change.delta, change.new_score - change.old_score);
        }
    }

    #[test]
    fn duplicates_never_change_anything(
        raw in prop::collection::vec(event_strategy(), 1..60),
        pick in any::<prop::sample::Index>(),
        place in any::<prop::sample::Index>(),
        horizon_days in 1i64..60,
        window_events in 1u32..24,
    ) {
        // Unique ids, so the only duplicate is the one inserted below.
        let raw: Vec<_> = raw.iter().enumerate().map(|(i, r)| (i as u8, r.1, r.2, r.3, r.4)).collect();
        let events = build(&raw);
        let original = pick.index(events.len());
        let position = original + 1 + place.index(events.len() - original);
        // Same id, subject and time (a retry), another type: the window tells it, or it is
        // at or before the floor and too late; either way it never applies.
        let mut duplicate = events[original].clone();
        duplicate.event_type = "financial".into();
        duplicate.event_subtype = "bankruptcy".into();
        let mut with_duplicate = events.clone();
        with_duplicate.insert(position, duplicate);

        let mut plain = tight_scorer(horizon_days, window_events);
        let (plain_outcomes, plain_out) = run(&mut plain, &events);
        let mut duped = tight_scorer(horizon_days, window_events);
        let (mut duped_outcomes, duped_out) = run(&mut duped, &with_duplicate);
        let outcome = duped_outcomes.remove(position);
        prop_assert!(matches!(outcome, EventOutcome::Duplicate | EventOutcome::TooLate), "{:?}", outcome);
        prop_assert_eq!(duped_outcomes, plain_outcomes);
        prop_assert_eq!(duped_out, plain_out);
        prop_assert_eq!(sorted_states(&duped), sorted_states(&plain));
    }

    #[test]
    fn the_window_is_bounded_and_every_entry_is_above_the_floor(
        raw in prop::collection::vec(event_strategy(), 1..120),
        horizon_days in 1i64..60,
        window_events in 1u32..24,
    ) {
        let events = build(&raw);
        let mut scorer = tight_scorer(horizon_days, window_events);
        let mut out = Outcomes::default();
        for event in &events {
            let outcome = scorer.apply(event, &mut out);
            let state = scorer.state(&event.subject_id).unwrap();
            let window = &state.dedup;
            prop_assert!(window.len() <= window_events as usize);
            let floor = window.floor().unwrap();
            prop_assert!(floor >= state.last_time.saturating_sub(Duration::from_days(horizon_days)));
            prop_assert!(window.entries().all(|(t, _)| t > floor));
            if outcome == EventOutcome::TooLate {
                prop_assert!(event.occurred_at <= floor);
            }
        }
    }
}
