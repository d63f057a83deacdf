//! The edges of SCORING.md, one test each: cooldown and cap boundaries, clamping, decay,
//! late events, statuses, validity, priorities, alerts, unknown subjects, replay inputs.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]

use std::sync::Arc;

use credence_scorer::{
    Cap, Condition, Decay, Duration, Engine, Event, EventOutcome, ListEntry, ListKind, Multiplier,
    Operator, Outcomes, Profile, Rule, RuleSet, RuleStatus, Scorer, ScoringConfig, SubjectContext,
    Timestamp, Value,
};

const DAY: i64 = 86_400;

fn t(secs: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_767_225_600 + secs) // 2026-01-01T00:00:00Z + secs
}

fn active(id: &str, event_type: &str, points: f64) -> Rule {
    let mut rule = Rule::new(id, event_type, points);
    rule.status = RuleStatus::Active;
    rule
}

fn no_decay() -> ScoringConfig {
    ScoringConfig {
        decay: Decay { half_life: None },
        ..ScoringConfig::default()
    }
}

fn scorer(rules: Vec<Rule>, config: ScoringConfig) -> Scorer {
    let rules = RuleSet::compile(1, rules).unwrap();
    Scorer::new(Engine::new(Arc::new(rules), Arc::new(config)).unwrap())
}

fn ev(id: &str, event_type: &str, at: Timestamp) -> Event {
    Event::new(id, "S", event_type, "", at)
}

/// Applies the events and returns the score after each.
fn scores(scorer: &mut Scorer, events: &[Event]) -> Vec<f64> {
    let mut out = Outcomes::default();
    events
        .iter()
        .map(|e| {
            scorer.apply(e, &mut out);
            scorer.state(&e.subject_id).map_or(f64::NAN, |s| s.score)
        })
        .collect()
}

#[test]
fn cooldown_allows_exactly_at_its_end_and_not_a_nanosecond_before() {
    let mut rule = active("r", "x", 10.0);
    rule.cooldown = Some(Duration::from_hours(1));
    let mut s = scorer(vec![rule], no_decay());
    let just_before = Timestamp::from_nanos(t(3600).nanos() - 1);
    let got = scores(
        &mut s,
        &[
            ev("a", "x", t(0)),
            ev("b", "x", just_before),
            ev("c", "x", t(3600)),
        ],
    );
    assert_eq!(got, [1010.0, 1010.0, 1020.0]);
}

#[test]
fn cap_window_is_open_at_its_start() {
    let mut rule = active("r", "x", 10.0);
    rule.cap = Some(Cap {
        max: 1,
        window: Duration::from_days(1),
    });
    let mut s = scorer(vec![rule], no_decay());
    let one_ns_short = Timestamp::from_nanos(t(DAY).nanos() - 1);
    // at t(DAY) the window is (t(0), t(DAY)]: the application at t(0) has left it
    let got = scores(
        &mut s,
        &[
            ev("a", "x", t(0)),
            ev("b", "x", one_ns_short),
            ev("c", "x", t(DAY)),
        ],
    );
    assert_eq!(got, [1010.0, 1010.0, 1020.0]);
}

#[test]
fn late_events_see_the_cap_window_around_their_own_time() {
    let mut rule = active("r", "x", 10.0);
    rule.cap = Some(Cap {
        max: 1,
        window: Duration::from_days(2),
    });
    let mut s = scorer(vec![rule], no_decay());
    // applied at day 10; a late event at day 9 has window (day 7, day 9]: empty -> applies;
    // another late event at day 9.5 has (day 7.5, day 9.5]: holds day 9 -> capped.
    let got = scores(
        &mut s,
        &[
            ev("a", "x", t(10 * DAY)),
            ev("b", "x", t(9 * DAY)),
            ev("c", "x", t(9 * DAY + DAY / 2)),
        ],
    );
    assert_eq!(got, [1010.0, 1020.0, 1020.0]);
    assert_eq!(
        s.state("S").unwrap().last_time,
        t(10 * DAY),
        "last_time keeps the latest"
    );
}

#[test]
fn late_events_do_not_decay_backwards() {
    let config = ScoringConfig {
        decay: Decay {
            half_life: Some(Duration::from_days(10)),
        },
        ..ScoringConfig::default()
    };
    let mut s = scorer(vec![active("r", "x", 100.0)], config);
    let got = scores(
        &mut s,
        &[ev("a", "x", t(20 * DAY)), ev("b", "x", t(10 * DAY))],
    );
    assert_eq!(
        got,
        [1100.0, 1200.0],
        "dt = max(0, t - last_time) = 0: no decay"
    );
}

#[test]
fn decay_across_a_gap_is_the_exact_formula() {
    let half_life = Duration::from_days(90);
    let config = ScoringConfig {
        decay: Decay {
            half_life: Some(half_life),
        },
        ..ScoringConfig::default()
    };
    let mut s = scorer(
        vec![active("r", "x", -300.0), active("zero", "y", 0.0)],
        config,
    );
    let gap = Duration::from_secs(37 * DAY + 12_345);
    let later = t(0).saturating_add(gap);
    let got = scores(&mut s, &[ev("a", "x", t(0)), ev("b", "y", later)]);
    let expected =
        1000.0 + (700.0_f64 - 1000.0) * 0.5f64.powf(gap.nanos() as f64 / half_life.nanos() as f64);
    assert_eq!(got[1].to_bits(), expected.to_bits());
    // half a life after, exactly halfway back (up to the formula's own rounding)
    let mut s = scorer(
        vec![active("r", "x", -400.0), active("zero", "y", 0.0)],
        ScoringConfig {
            decay: Decay {
                half_life: Some(Duration::from_days(10)),
            },
            ..ScoringConfig::default()
        },
    );
    assert_eq!(
        scores(&mut s, &[ev("a", "x", t(0)), ev("b", "y", t(10 * DAY))]),
        [600.0, 800.0]
    );
}

#[test]
fn decay_alone_writes_no_change_and_its_value_is_the_next_old_score() {
    let config = ScoringConfig {
        decay: Decay {
            half_life: Some(Duration::from_days(10)),
        },
        ..ScoringConfig::default()
    };
    let mut s = scorer(
        vec![active("r", "x", -400.0), active("p", "y", 10.0)],
        config,
    );
    let mut out = Outcomes::default();
    s.apply(&ev("a", "x", t(0)), &mut out);
    out.clear();
    assert_eq!(
        s.apply(&ev("b", "nothing-matches", t(10 * DAY)), &mut out),
        EventOutcome::Applied { changes: 0 }
    );
    assert!(out.changes.is_empty());
    assert_eq!(s.state("S").unwrap().score, 800.0);
    s.apply(&ev("c", "y", t(10 * DAY)), &mut out);
    assert_eq!(
        out.changes[0].old_score, 800.0,
        "zero gap: no further decay"
    );
    assert_eq!(out.changes[0].new_score, 810.0);
}

#[test]
fn scores_clamp_at_both_bounds_and_delta_is_what_actually_moved() {
    let mut s = scorer(
        vec![active("down", "down", -700.0), active("up", "up", 700.0)],
        no_decay(),
    );
    let mut out = Outcomes::default();
    for (i, kind) in ["down", "down"].iter().enumerate() {
        s.apply(&ev(&format!("d{i}"), kind, t(i as i64)), &mut out);
    }
    assert_eq!(s.state("S").unwrap().score, 0.0);
    assert_eq!(out.changes[1].delta, -300.0, "clamped at min_score");
    assert_eq!(out.changes[1].factor, 1.0);
    out.clear();
    for i in 0..4 {
        s.apply(&ev(&format!("u{i}"), "up", t(10 + i)), &mut out);
    }
    assert_eq!(s.state("S").unwrap().score, 2000.0);
    assert_eq!(out.changes[3].delta, 0.0, "clamped at max_score");
}

#[test]
fn draft_and_retired_rules_do_not_score() {
    let mut draft = active("draft", "x", 10.0);
    draft.status = RuleStatus::Draft;
    let mut retired = active("retired", "x", 10.0);
    retired.status = RuleStatus::Retired;
    let mut s = scorer(vec![draft, retired], no_decay());
    assert_eq!(scores(&mut s, &[ev("a", "x", t(0))]), [1000.0]);
}

#[test]
fn validity_is_inclusive_at_the_start_and_exclusive_at_the_end() {
    let mut rule = active("r", "x", 10.0);
    rule.valid_from = Some(t(100));
    rule.valid_until = Some(t(200));
    let mut s = scorer(vec![rule], no_decay());
    let got = scores(
        &mut s,
        &[
            ev("a", "x", t(99)),
            ev("b", "x", t(100)),
            ev("c", "x", t(199)),
            ev("d", "x", t(200)),
        ],
    );
    assert_eq!(got, [1000.0, 1010.0, 1020.0, 1020.0]);
}

#[test]
fn rules_run_by_priority_then_id_and_each_sees_the_score_before_the_event() {
    let mut double = active("b-double", "x", -500.0);
    double.priority = 1;
    let mut a = active("a-first", "x", 10.0);
    a.priority = 1;
    let mut last = active("z-last", "x", 1.0);
    last.priority = -1;
    // conditions on subject.score see 1000 (after decay, before the rules of this event)
    last.conditions
        .push(Condition::new("subject.score", Operator::Eq, 1000.0));
    let mut tier_rule = active("tier", "x", 5.0);
    tier_rule.priority = 9;
    tier_rule
        .conditions
        .push(Condition::new("subject.tier", Operator::Eq, "C"));
    let mut s = scorer(vec![double, a, last, tier_rule], no_decay());
    let mut out = Outcomes::default();
    s.apply(&ev("e", "x", t(0)), &mut out);
    let order: Vec<&str> = out.changes.iter().map(|c| &*c.rule_id).collect();
    assert_eq!(order, ["z-last", "a-first", "b-double", "tier"]);
    assert_eq!(
        s.state("S").unwrap().score,
        1000.0 + 1.0 + 10.0 - 500.0 + 5.0
    );
}

#[test]
fn subtype_must_match_when_the_rule_names_one() {
    let mut rule = active("r", "x", 10.0);
    rule.event_subtype = Some("a".into());
    let mut s = scorer(vec![rule], no_decay());
    let mut out = Outcomes::default();
    s.apply(&Event::new("1", "S", "x", "b", t(0)), &mut out);
    s.apply(&Event::new("2", "S", "x", "", t(1)), &mut out);
    assert!(out.changes.is_empty());
    s.apply(&Event::new("3", "S", "x", "a", t(2)), &mut out);
    assert_eq!(out.changes.len(), 1);
}

#[test]
fn multipliers_multiply_in_order() {
    let mut rule = active("r", "x", -10.0);
    for (gt, factor) in [(1.0, 2.0), (2.0, 1.5), (100.0, 10.0)] {
        rule.multipliers.push(Multiplier {
            when: Condition::new("payload.n", Operator::Gt, gt),
            factor,
        });
    }
    let mut s = scorer(vec![rule], no_decay());
    let mut out = Outcomes::default();
    s.apply(&ev("e", "x", t(0)).with("n", 5.0), &mut out);
    assert_eq!(out.changes[0].factor, 3.0);
    assert_eq!(out.changes[0].delta, -30.0);
}

#[test]
fn alerts_on_tier_changes_and_threshold_crossings_in_both_directions() {
    let config = ScoringConfig {
        alert_thresholds: vec![500.0, 950.0],
        ..no_decay()
    };
    let mut s = scorer(
        vec![active("down", "down", -60.0), active("up", "up", 60.0)],
        config,
    );
    let mut out = Outcomes::default();
    s.apply(&ev("1", "down", t(0)), &mut out); // 1000 -> 940: crosses 950 down, tier C stays
    s.apply(&ev("2", "up", t(1)), &mut out); // 940 -> 1000: crosses 950 up
    s.apply(&ev("3", "up", t(2)), &mut out); // 1000 -> 1060: nothing
    s.apply(&ev("4", "up", t(3)), &mut out); // 1060 -> 1120: tier C -> B
    assert_eq!(out.alerts.len(), 3);
    assert_eq!(out.alerts[0].thresholds_crossed, [950.0]);
    assert_eq!(
        (&*out.alerts[0].old_tier, &*out.alerts[0].new_tier),
        ("C", "C")
    );
    assert_eq!(out.alerts[1].thresholds_crossed, [950.0]);
    assert_eq!(out.alerts[2].thresholds_crossed, Vec::<f64>::new());
    assert_eq!(
        (&*out.alerts[2].old_tier, &*out.alerts[2].new_tier),
        ("C", "B")
    );
    assert_eq!(out.alerts[2].event_id, "4");
}

#[test]
fn a_threshold_reached_exactly_counts_as_crossed_once() {
    let config = ScoringConfig {
        alert_thresholds: vec![950.0],
        ..no_decay()
    };
    let mut s = scorer(vec![active("down", "down", -50.0)], config);
    let mut out = Outcomes::default();
    s.apply(&ev("1", "down", t(0)), &mut out); // 1000 -> 950: new < th <= old? 950 < 950 no; old < th <= new? no
    s.apply(&ev("2", "down", t(1)), &mut out); // 950 -> 900: new < 950 <= old: crossed
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].event_id, "2");
}

#[test]
fn unknown_subjects_are_rejected_when_not_auto_created() {
    let config = ScoringConfig {
        auto_create_subjects: false,
        ..no_decay()
    };
    let mut s = scorer(vec![active("r", "x", 1.0)], config);
    let mut out = Outcomes::default();
    assert_eq!(
        s.apply(&ev("1", "x", t(0)), &mut out),
        EventOutcome::UnknownSubject
    );
    assert!(s.is_empty());
}

#[test]
fn outside_values_are_recorded_and_replay_uses_them() {
    let mut rule = active("r", "x", -10.0);
    rule.conditions
        .push(Condition::new("subject.region", Operator::Eq, "north"));
    rule.multipliers.push(Multiplier {
        when: Condition::new("subject.lists", Operator::Contains, "block"),
        factor: 2.0,
    });
    rule.multipliers.push(Multiplier {
        when: Condition::new("subject.association", Operator::Lt, -50.0),
        factor: 3.0,
    });
    let mut live = scorer(vec![rule.clone()], no_decay());
    live.set_context(
        "S",
        SubjectContext {
            profile: Some(Profile {
                region: Some("north".into()),
                ..Profile::default()
            }),
            lists: vec![ListEntry {
                kind: ListKind::Block,
                expires_at: None,
            }],
            association: Some(-80.0),
        },
    );
    let event = ev("1", "x", t(0));
    let mut out = Outcomes::default();
    live.apply(&event, &mut out);
    let change = &out.changes[0];
    assert_eq!(change.delta, -60.0);
    assert_eq!(
        change.inputs.get("subject.region"),
        Some(&Value::from("north"))
    );
    assert_eq!(
        change.inputs.get("subject.lists"),
        Some(&Value::from(vec!["block"]))
    );
    assert_eq!(
        change.inputs.get("subject.association"),
        Some(&Value::Number(-80.0))
    );

    let mut replay = scorer(vec![rule], no_decay());
    replay.set_context("S", SubjectContext::from_inputs(&change.inputs));
    let mut again = Outcomes::default();
    replay.apply(&event, &mut again);
    assert_eq!(again.changes, out.changes);
}

#[test]
fn a_subject_without_profile_has_no_profile_fields_and_no_flags() {
    let mut region = active("region", "x", 1.0);
    region
        .conditions
        .push(Condition::new("subject.region", Operator::Ne, "north"));
    let mut flags = active("flags", "x", 2.0);
    flags.conditions.push(Condition::new(
        "subject.flags",
        Operator::Eq,
        Value::List(vec![]),
    ));
    let mut s = scorer(vec![region, flags], no_decay());
    assert_eq!(scores(&mut s, &[ev("1", "x", t(0))]), [1002.0]);
}

#[test]
fn cooldown_and_cap_state_survive_a_new_rule_version() {
    let mut v1 = active("r", "x", 10.0);
    v1.cooldown = Some(Duration::from_days(1));
    let mut s = scorer(vec![v1.clone()], no_decay());
    scores(&mut s, &[ev("1", "x", t(0))]);
    let mut v2 = v1;
    v2.version = 2;
    v2.points = 20.0;
    let rules = RuleSet::compile(2, vec![v2]).unwrap();
    s.set_engine(Engine::new(Arc::new(rules), Arc::new(no_decay())).unwrap());
    let mut out = Outcomes::default();
    s.apply(&ev("2", "x", t(DAY / 2)), &mut out);
    assert!(out.changes.is_empty(), "still cooling down under version 2");
    s.apply(&ev("3", "x", t(DAY)), &mut out);
    assert_eq!(
        (out.changes[0].rule_version, out.changes[0].delta),
        (2, 20.0)
    );
}

#[test]
fn rules_with_and_without_a_subtype_merge_in_priority_order() {
    let mut specific = active("specific", "x", 1.0);
    specific.event_subtype = Some("a".into());
    specific.priority = 2;
    let mut generic_first = active("generic-first", "x", 10.0);
    generic_first.priority = 1;
    let mut generic_last = active("generic-last", "x", 100.0);
    generic_last.priority = 3;
    let mut other = active("other", "x", 1000.0);
    other.event_subtype = Some("b".into());
    let mut s = scorer(
        vec![generic_last, specific, other, generic_first],
        no_decay(),
    );
    let mut out = Outcomes::default();
    s.apply(&Event::new("1", "S", "x", "a", t(0)), &mut out);
    let order: Vec<&str> = out.changes.iter().map(|c| &*c.rule_id).collect();
    assert_eq!(order, ["generic-first", "specific", "generic-last"]);
    out.clear();
    s.apply(&Event::new("2", "S", "x", "unmentioned", t(1)), &mut out);
    let order: Vec<&str> = out.changes.iter().map(|c| &*c.rule_id).collect();
    assert_eq!(order, ["generic-first", "generic-last"]);
}
