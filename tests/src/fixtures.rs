//! The worked example of SCORING.md as messages for the server and as domain values for the
//! pure engine, so a test can check the server against both the document and the engine.

use std::sync::Arc;

use credence_proto::v1 as pb;
use credence_scorer as domain;

use crate::events::{secs, to_value};

/// The default tier table.
pub fn tiers() -> Vec<pb::Tier> {
    [
        ("E", 0.0),
        ("D", 600.0),
        ("C", 900.0),
        ("B", 1100.0),
        ("A", 1300.0),
    ]
    .into_iter()
    .map(|(name, min_score)| pb::Tier {
        name: name.into(),
        min_score,
    })
    .collect()
}

/// The worked example's config: baseline 1000, bounds 0..2000, default tiers, no decay.
pub fn worked_config() -> pb::ScoringConfig {
    pb::ScoringConfig {
        baseline: Some(1000.0),
        min_score: Some(0.0),
        max_score: Some(2000.0),
        tiers: tiers(),
        // Sent without a half-life: decay off (an absent Decay keeps the current one).
        decay: Some(pb::Decay { half_life: None }),
        alert_thresholds: vec![500.0],
        auto_create_subjects: Some(true),
        ..pb::ScoringConfig::default()
    }
}

/// A condition.
pub fn cond(field: &str, op: pb::Operator, value: &serde_json::Value) -> pb::Condition {
    pb::Condition {
        field: field.into(),
        op: op as i32,
        value: Some(to_value(value)),
    }
}

/// Rule `late` of the worked example (financial / late_payment, -50, cooldown 1 day,
/// x2 when `payload.days_late > 30`).
pub fn late_rule() -> pb::Rule {
    pb::Rule {
        id: "late".into(),
        name: "Late payment (worked example)".into(),
        status: pb::RuleStatus::Active as i32,
        event_type: "financial".into(),
        event_subtype: "late_payment".into(),
        points: -50.0,
        multipliers: vec![pb::Multiplier {
            when: Some(cond(
                "payload.days_late",
                pb::Operator::Gt,
                &serde_json::json!(30),
            )),
            factor: 2.0,
        }],
        cooldown: Some(secs(86_400)),
        priority: 10,
        ..pb::Rule::default()
    }
}

/// Rule `volunteer` of the worked example (social / volunteer_work, +20, cap 2 per 7 days).
pub fn volunteer_rule() -> pb::Rule {
    pb::Rule {
        id: "volunteer".into(),
        name: "Volunteer work (worked example)".into(),
        status: pb::RuleStatus::Active as i32,
        event_type: "social".into(),
        event_subtype: "volunteer_work".into(),
        points: 20.0,
        cap: Some(pb::Cap {
            max: 2,
            window: Some(secs(7 * 86_400)),
        }),
        priority: 20,
        ..pb::Rule::default()
    }
}

/// The rule set the server runs once the worked example is set up: the example rules with
/// `late_payment` and `volunteer_work` retired, plus `late` and `volunteer`; and the worked
/// example's config. `config_version` is the version the server gave that config.
pub fn worked_engine(config_version: u32) -> domain::Engine {
    let mut rules = domain::RuleFile::example()
        .expect("the example rules load")
        .rules;
    for rule in &mut rules {
        if rule.id == "late_payment" || rule.id == "volunteer_work" {
            rule.status = domain::RuleStatus::Retired;
        }
    }
    let mut late = domain::Rule::new("late", "financial", -50.0);
    late.name = "Late payment (worked example)".into();
    late.status = domain::RuleStatus::Active;
    late.event_subtype = Some("late_payment".into());
    late.cooldown = Some(domain::Duration::from_days(1));
    late.priority = 10;
    late.multipliers.push(domain::Multiplier {
        when: domain::Condition::new("payload.days_late", domain::Operator::Gt, 30.0),
        factor: 2.0,
    });
    let mut volunteer = domain::Rule::new("volunteer", "social", 20.0);
    volunteer.name = "Volunteer work (worked example)".into();
    volunteer.status = domain::RuleStatus::Active;
    volunteer.event_subtype = Some("volunteer_work".into());
    volunteer.priority = 20;
    volunteer.cap = Some(domain::Cap {
        max: 2,
        window: domain::Duration::from_days(7),
    });
    rules.push(late);
    rules.push(volunteer);
    let config = domain::ScoringConfig {
        version: config_version,
        decay: domain::Decay { half_life: None },
        alert_thresholds: vec![500.0],
        ..domain::ScoringConfig::default()
    };
    domain::Engine::new(
        Arc::new(domain::RuleSet::compile(2, rules).expect("the worked rules compile")),
        Arc::new(config),
    )
    .expect("the worked config is valid")
}

/// The example events of SCORING.md's worked example for `subject` (ids `e-001`..`e-007`),
/// without the duplicate of the last row.
pub fn worked_events(subject: &str) -> Vec<pb::Event> {
    use serde_json::json;

    use crate::events::event;
    vec![
        event(
            "e-001",
            subject,
            "financial",
            "late_payment",
            "2026-01-01T10:00:00Z",
            &json!({"days_late": 10}),
        ),
        event(
            "e-002",
            subject,
            "financial",
            "late_payment",
            "2026-01-01T20:00:00Z",
            &json!({"days_late": 45}),
        ),
        event(
            "e-003",
            subject,
            "financial",
            "late_payment",
            "2026-01-02T10:00:00Z",
            &json!({"days_late": 45}),
        ),
        event(
            "e-004",
            subject,
            "social",
            "volunteer_work",
            "2026-01-03T00:00:00Z",
            &json!({"hours": 3}),
        ),
        event(
            "e-005",
            subject,
            "social",
            "volunteer_work",
            "2026-01-04T00:00:00Z",
            &json!({"hours": 3}),
        ),
        event(
            "e-006",
            subject,
            "social",
            "volunteer_work",
            "2026-01-05T00:00:00Z",
            &json!({"hours": 3}),
        ),
        event(
            "e-007",
            subject,
            "social",
            "volunteer_work",
            "2026-01-10T00:00:00Z",
            &json!({"hours": 9}),
        ),
    ]
}

/// Asserts that a snapshot from the node is, to the bit, the pure engine's state.
///
/// # Panics
/// On the first field that differs, naming the subject.
pub fn assert_snapshot_matches(snapshot: &pb::ScoreSnapshot, state: &domain::SubjectState) {
    let id = &snapshot.subject_id;
    assert_eq!(
        snapshot.score.to_bits(),
        state.score.to_bits(),
        "{id}: node {} vs engine {}",
        snapshot.score,
        state.score
    );
    assert_eq!(snapshot.tier, &*state.tier, "{id}");
    assert_eq!(snapshot.applied_events, state.applied_events, "{id}");
    assert_eq!(snapshot.last_event_id, state.last_event_id, "{id}");
    let last = snapshot
        .last_event_time
        .as_ref()
        .map(crate::events::nanos_of);
    assert_eq!(last, Some(state.last_time.nanos()), "{id}");
}
