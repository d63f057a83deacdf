//! Validation of rules, rule sets and configs. Every error names the rule and the field.

use rustc_hash::FxHashSet;

use crate::config::ScoringConfig;
use crate::error::{Result, ScorerError};
use crate::path::FieldPath;
use crate::rule::{Condition, Operator, Rule, RuleStatus};
use crate::time::Duration;
use crate::value::Value;

const MAX_ID_LEN: usize = 64;
/// Upper bound of the dedup horizon and of `max_rule_window`: ten years of event time keeps
/// subtractions from event times far from the ends of the representable range, and the
/// states they bound small.
const MAX_CONFIG_SPAN: Duration = Duration::from_days(3650);
/// Upper bound of `dedup_window_events`: 65,536 entries are 1.5 MiB per subject.
const MAX_DEDUP_WINDOW_EVENTS: u32 = 65_536;

/// Checks one rule: id, event type, points, conditions, multipliers, cap, validity.
pub fn validate_rule(rule: &Rule) -> Result<()> {
    let id = rule.id.as_str();
    let err = |field: &str, problem: String| Err(ScorerError::rule(id, field, problem));
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return err(
            "id",
            format!("must be 1 to {MAX_ID_LEN} characters, got {}", id.len()),
        );
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
    {
        return err("id", format!("{bad:?} is not allowed; use [a-z0-9_-]"));
    }
    if rule.version == 0 {
        return err("version", "must be at least 1".into());
    }
    if rule.event_type.is_empty() {
        return err("event_type", "is required".into());
    }
    if rule.event_subtype.as_deref() == Some("") {
        return err(
            "event_subtype",
            "is empty; leave it out to match every subtype".into(),
        );
    }
    if !rule.points.is_finite() {
        return err(
            "points",
            format!("must be a finite number, got {}", rule.points),
        );
    }
    for (i, condition) in rule.conditions.iter().enumerate() {
        check_condition(id, &format!("conditions[{i}]"), condition)?;
    }
    for (i, multiplier) in rule.multipliers.iter().enumerate() {
        check_condition(id, &format!("multipliers[{i}].when"), &multiplier.when)?;
        if !multiplier.factor.is_finite() {
            return err(
                &format!("multipliers[{i}].factor"),
                format!("must be a finite number, got {}", multiplier.factor),
            );
        }
    }
    if let Some(cap) = rule.cap {
        if cap.max == 0 {
            return err("cap.max", "must be at least 1".into());
        }
        if cap.window.is_zero() {
            return err("cap.window", "must be longer than zero".into());
        }
    }
    if let (Some(from), Some(until)) = (rule.valid_from, rule.valid_until) {
        if until <= from {
            return err(
                "valid_until",
                format!("{until} is not after valid_from {from}"),
            );
        }
    }
    Ok(())
}

/// Checks a condition's path and that its value suits its operator.
fn check_condition(rule: &str, at: &str, condition: &Condition) -> Result<()> {
    FieldPath::parse(&condition.field)
        .map_err(|problem| ScorerError::rule(rule, format!("{at}.field"), problem))?;
    let value = &condition.value;
    let problem = if value.is_finite() {
        value_problem(condition.op, value)
    } else {
        Some("numbers must be finite".to_owned())
    };
    match problem {
        Some(problem) => Err(ScorerError::rule(rule, format!("{at}.value"), problem)),
        None => Ok(()),
    }
}

fn value_problem(op: Operator, value: &Value) -> Option<String> {
    let scalar = |v: &Value| !matches!(v, Value::List(_) | Value::Map(_));
    match op {
        Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte
            if !matches!(value, Value::Number(_) | Value::String(_)) =>
        {
            Some(format!(
                "{op:?} needs a number or a string, got a {}",
                value.kind()
            ))
        }
        Operator::In | Operator::NotIn => match value {
            Value::List(items) if items.iter().all(scalar) => None,
            Value::List(_) => Some(format!("{op:?} needs a list of single values")),
            other => Some(format!("{op:?} needs a list, got a {}", other.kind())),
        },
        Operator::Contains
            if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) =>
        {
            Some(format!(
                "Contains needs a string, number or boolean, got a {}",
                value.kind()
            ))
        }
        _ => None,
    }
}

/// Checks every rule of a set and that ids are unique.
pub fn validate_rules(rules: &[Rule]) -> Result<()> {
    let mut seen = FxHashSet::default();
    for rule in rules {
        validate_rule(rule)?;
        if !seen.insert(rule.id.as_str()) {
            return Err(ScorerError::rule(
                &rule.id,
                "id",
                "appears twice in the rule set",
            ));
        }
    }
    Ok(())
}

/// Checks a config: finite numbers, bounds, baseline, tiers, decay, thresholds.
pub fn validate_config(config: &ScoringConfig) -> Result<()> {
    let err = |field: &str, problem: String| Err(ScorerError::config(field, problem));
    if config.version == 0 {
        return err("version", "must be at least 1".into());
    }
    for (field, value) in [
        ("baseline", config.baseline),
        ("min_score", config.min_score),
        ("max_score", config.max_score),
    ] {
        if !value.is_finite() {
            return err(field, format!("must be a finite number, got {value}"));
        }
    }
    if config.min_score >= config.max_score {
        return err(
            "max_score",
            format!(
                "{} is not above min_score {}",
                config.max_score, config.min_score
            ),
        );
    }
    if !(config.min_score..=config.max_score).contains(&config.baseline) {
        return err(
            "baseline",
            format!(
                "{} is outside [min_score, max_score] = [{}, {}]",
                config.baseline, config.min_score, config.max_score
            ),
        );
    }
    if config.tiers.is_empty() {
        return err("tiers", "needs at least one tier".into());
    }
    let mut names = FxHashSet::default();
    for (i, tier) in config.tiers.iter().enumerate() {
        if tier.name.is_empty() {
            return err(&format!("tiers[{i}].name"), "is required".into());
        }
        if !names.insert(&*tier.name) {
            return err(
                &format!("tiers[{i}].name"),
                format!("{:?} appears twice", tier.name),
            );
        }
        if !tier.min_score.is_finite() {
            return err(
                &format!("tiers[{i}].min_score"),
                "must be a finite number".into(),
            );
        }
    }
    for (i, th) in config.alert_thresholds.iter().enumerate() {
        if !th.is_finite() {
            return err(
                &format!("alert_thresholds[{i}]"),
                "must be a finite number".into(),
            );
        }
    }
    for (field, span) in [
        ("dedup_horizon", config.dedup_horizon),
        ("max_rule_window", config.max_rule_window),
    ] {
        if span.is_zero() || span > MAX_CONFIG_SPAN {
            return err(
                field,
                format!("must be longer than zero and at most {MAX_CONFIG_SPAN}, got {span}"),
            );
        }
    }
    if !(1..=MAX_DEDUP_WINDOW_EVENTS).contains(&config.dedup_window_events) {
        return err(
            "dedup_window_events",
            format!(
                "must be 1 to {MAX_DEDUP_WINDOW_EVENTS}, got {}",
                config.dedup_window_events
            ),
        );
    }
    Ok(())
}

/// Checks that no active rule looks back further than the config's `max_rule_window`:
/// rule histories keep only what a window that long can reach, so a longer cooldown or cap
/// window would count too few applications.
pub fn validate_rule_windows(rules: &[Rule], config: &ScoringConfig) -> Result<()> {
    let max = config.max_rule_window;
    for rule in rules.iter().filter(|r| r.status == RuleStatus::Active) {
        for (field, window) in [
            ("cooldown", rule.cooldown),
            ("cap.window", rule.cap.map(|c| c.window)),
        ] {
            if let Some(window) = window.filter(|&w| w > max) {
                return Err(ScorerError::rule(
                    &rule.id,
                    field,
                    format!(
                        "{window} is longer than the config's max_rule_window {max}; shorten \
                         it or raise max_rule_window"
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::{Cap, Multiplier};
    use crate::time::{Duration, Timestamp};

    fn message(result: Result<()>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn rule_errors_name_the_rule_and_the_field() {
        let mut rule = Rule::new("late", "financial", -50.0);
        rule.conditions
            .push(Condition::new("payload.days", Operator::In, 3.0));
        assert_eq!(
            message(validate_rule(&rule)),
            "rule \"late\": conditions[0].value: In needs a list, got a number"
        );

        let mut rule = Rule::new("late", "financial", -50.0);
        rule.conditions
            .push(Condition::new("profile.region", Operator::Eq, "north"));
        assert!(message(validate_rule(&rule)).starts_with("rule \"late\": conditions[0].field:"));

        let mut rule = Rule::new("late", "financial", -50.0);
        rule.multipliers.push(Multiplier {
            when: Condition::new("payload.days", Operator::Gt, 30.0),
            factor: f64::INFINITY,
        });
        assert!(message(validate_rule(&rule)).contains("multipliers[0].factor"));

        let mut rule = Rule::new("late", "financial", f64::NAN);
        assert!(message(validate_rule(&rule)).contains("points: must be a finite number"));
        rule.points = 1.0;
        rule.cap = Some(Cap {
            max: 0,
            window: Duration::from_days(1),
        });
        assert_eq!(
            message(validate_rule(&rule)),
            "rule \"late\": cap.max: must be at least 1"
        );
        rule.cap = None;
        rule.valid_from = Some(Timestamp::from_unix_seconds(100));
        rule.valid_until = Some(Timestamp::from_unix_seconds(100));
        assert!(message(validate_rule(&rule)).contains("valid_until"));
    }

    #[test]
    fn operator_value_types_are_checked() {
        let check = |op, value: Value| {
            let mut rule = Rule::new("r", "t", 1.0);
            rule.conditions.push(Condition {
                field: "payload.x".into(),
                op,
                value,
            });
            validate_rule(&rule)
        };
        assert!(check(Operator::Gt, Value::Bool(true)).is_err());
        assert!(check(Operator::Gt, "b".into()).is_ok());
        assert!(
            check(Operator::Eq, vec![1.0].into()).is_ok(),
            "lists compare element by element"
        );
        assert!(check(Operator::NotIn, vec!["a", "b"].into()).is_ok());
        assert!(check(Operator::In, Value::List(vec![vec![1.0].into()])).is_err());
        assert!(check(Operator::Contains, Value::Null).is_err());
        assert!(check(Operator::Exists, Value::Null).is_ok());
        assert!(check(Operator::Eq, Value::Number(f64::NAN)).is_err());
    }

    #[test]
    fn ids_are_checked() {
        assert!(message(validate_rule(&Rule::new("Late", "t", 1.0))).contains("'L'"));
        assert!(message(validate_rule(&Rule::new("", "t", 1.0))).contains("1 to 64"));
        assert!(message(validate_rule(&Rule::new("x", "", 1.0))).contains("event_type"));
        let rules = [Rule::new("a", "t", 1.0), Rule::new("a", "t", 2.0)];
        assert!(message(validate_rules(&rules)).contains("appears twice"));
    }

    #[test]
    fn config_errors_name_the_field() {
        assert!(validate_config(&ScoringConfig::default()).is_ok());
        let mut config = ScoringConfig {
            baseline: 3000.0,
            ..ScoringConfig::default()
        };
        assert!(message(validate_config(&config)).starts_with("config: baseline:"));
        config.baseline = 1000.0;
        config.max_score = 0.0;
        assert!(message(validate_config(&config)).starts_with("config: max_score:"));
        let mut config = ScoringConfig::default();
        config.tiers[1].name = "E".into();
        assert!(message(validate_config(&config)).contains("tiers[1].name"));
        let config = ScoringConfig {
            alert_thresholds: vec![f64::NAN],
            ..ScoringConfig::default()
        };
        assert!(message(validate_config(&config)).contains("alert_thresholds[0]"));
    }

    #[test]
    fn dedup_and_rule_window_bounds_are_checked() {
        for (config, field) in [
            (
                ScoringConfig {
                    dedup_horizon: Duration::ZERO,
                    ..ScoringConfig::default()
                },
                "dedup_horizon",
            ),
            (
                ScoringConfig {
                    max_rule_window: Duration::from_days(3651),
                    ..ScoringConfig::default()
                },
                "max_rule_window",
            ),
            (
                ScoringConfig {
                    dedup_window_events: 0,
                    ..ScoringConfig::default()
                },
                "dedup_window_events",
            ),
        ] {
            assert!(
                message(validate_config(&config)).starts_with(&format!("config: {field}:")),
                "{field}"
            );
        }
        let config = ScoringConfig {
            max_rule_window: Duration::from_days(7),
            ..ScoringConfig::default()
        };
        let mut rule = Rule::new("weekly", "t", 1.0);
        rule.status = crate::rule::RuleStatus::Active;
        rule.cap = Some(Cap {
            max: 1,
            window: Duration::from_days(8),
        });
        assert_eq!(
            message(validate_rule_windows(std::slice::from_ref(&rule), &config)),
            "rule \"weekly\": cap.window: 8d is longer than the config's max_rule_window 7d; \
             shorten it or raise max_rule_window"
        );
        rule.cap = None;
        rule.cooldown = Some(Duration::from_days(7));
        assert!(validate_rule_windows(std::slice::from_ref(&rule), &config).is_ok());
        rule.cooldown = Some(Duration::from_days(9));
        assert!(
            message(validate_rule_windows(std::slice::from_ref(&rule), &config))
                .contains("cooldown")
        );
        rule.status = crate::rule::RuleStatus::Draft;
        assert!(
            validate_rule_windows(std::slice::from_ref(&rule), &config).is_ok(),
            "a draft does not score"
        );
    }
}
