//! The worked example of SCORING.md, row by row.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]

use std::sync::Arc;

use credence_scorer::{
    Cap, Condition, Decay, Duration, Engine, Event, EventOutcome, Multiplier, Operator, Outcomes,
    Rule, RuleSet, RuleStatus, Scorer, ScoringConfig, Timestamp,
};

fn at(text: &str) -> Timestamp {
    Timestamp::parse_rfc3339(text).unwrap()
}

fn engine() -> Engine {
    let mut late = Rule::new("late", "financial", -50.0);
    late.status = RuleStatus::Active;
    late.event_subtype = Some("late_payment".into());
    late.cooldown = Some(Duration::from_days(1));
    late.multipliers.push(Multiplier {
        when: Condition::new("payload.days_late", Operator::Gt, 30.0),
        factor: 2.0,
    });
    let mut volunteer = Rule::new("volunteer", "social", 20.0);
    volunteer.status = RuleStatus::Active;
    volunteer.event_subtype = Some("volunteer_work".into());
    volunteer.cap = Some(Cap {
        max: 2,
        window: Duration::from_days(7),
    });
    let config = ScoringConfig {
        decay: Decay { half_life: None },
        ..ScoringConfig::default()
    };
    Engine::new(
        Arc::new(RuleSet::compile(1, vec![late, volunteer]).unwrap()),
        Arc::new(config),
    )
    .unwrap()
}

/// One row of the table: the event, its outcome, the rule that applied with its delta (if
/// any), and the score after.
type Row = (Event, EventOutcome, Option<(&'static str, f64)>, f64);

#[test]
fn the_worked_example_scores_row_by_row() {
    let late = |id: &str, t: &str, days: f64| {
        Event::new(id, "S1", "financial", "late_payment", at(t)).with("days_late", days)
    };
    let volunteer = |id: &str, t: &str| Event::new(id, "S1", "social", "volunteer_work", at(t));
    let rows: Vec<Row> = vec![
        (
            late("e1", "2026-01-01T10:00:00Z", 10.0),
            applied(1),
            Some(("late", -50.0)),
            950.0,
        ),
        (
            late("e2", "2026-01-01T20:00:00Z", 45.0),
            applied(0),
            None,
            950.0,
        ),
        (
            late("e3", "2026-01-02T10:00:00Z", 45.0),
            applied(1),
            Some(("late", -100.0)),
            850.0,
        ),
        (
            volunteer("e4", "2026-01-03T00:00:00Z"),
            applied(1),
            Some(("volunteer", 20.0)),
            870.0,
        ),
        (
            volunteer("e5", "2026-01-04T00:00:00Z"),
            applied(1),
            Some(("volunteer", 20.0)),
            890.0,
        ),
        (
            volunteer("e6", "2026-01-05T00:00:00Z"),
            applied(0),
            None,
            890.0,
        ),
        (
            volunteer("e7", "2026-01-10T00:00:00Z"),
            applied(1),
            Some(("volunteer", 20.0)),
            910.0,
        ),
        (
            volunteer("e7", "2026-01-10T00:00:00Z"),
            EventOutcome::Duplicate,
            None,
            910.0,
        ),
    ];
    let mut scorer = Scorer::new(engine());
    for (i, (event, outcome, change, score)) in rows.into_iter().enumerate() {
        let mut out = Outcomes::default();
        assert_eq!(scorer.apply(&event, &mut out), outcome, "row {i}");
        match change {
            Some((rule, delta)) => {
                assert_eq!(out.changes.len(), 1, "row {i}");
                assert_eq!(&*out.changes[0].rule_id, rule, "row {i}");
                assert_eq!(out.changes[0].delta, delta, "row {i}");
                assert_eq!(out.changes[0].new_score, score, "row {i}");
            }
            None => assert!(out.changes.is_empty(), "row {i}"),
        }
        assert_eq!(scorer.state("S1").unwrap().score, score, "row {i}");
    }
    let state = scorer.state("S1").unwrap();
    assert_eq!(state.applied_events, 7, "the duplicate is not counted");
    assert_eq!(&*state.tier, "C");
}

fn applied(changes: usize) -> EventOutcome {
    EventOutcome::Applied { changes }
}
