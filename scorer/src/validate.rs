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

/// Size limits of a rule and a config. A rule's name is copied into every score change it
/// makes and its conditions are evaluated for every event of its type, so none of them may
/// grow without bound. The numbers are documented in `docs/ARCHITECTURE.md`.
pub mod limits {
    /// Longest rule name, in bytes (the reason of every change the rule makes).
    pub const NAME_BYTES: usize = 256;
    /// Longest rule description, in bytes.
    pub const DESCRIPTION_BYTES: usize = 4_096;
    /// Longest event type or subtype a rule matches, in bytes (ingestion's id limit).
    pub const EVENT_TYPE_BYTES: usize = 128;
    /// Most conditions of one rule.
    pub const CONDITIONS: usize = 32;
    /// Most multipliers of one rule.
    pub const MULTIPLIERS: usize = 16;
    /// Longest condition path, in bytes.
    pub const PATH_BYTES: usize = 256;
    /// Largest condition value, in bytes of its strings plus 8 per other value.
    pub const VALUE_BYTES: usize = 16_384;
    /// Largest `|points|` of a rule.
    pub const POINTS: f64 = 1e9;
    /// Largest product of the `|factor|`s above 1 of one rule's multipliers: what all of
    /// them holding at once could multiply the points by. With [`POINTS`] a change stays
    /// within 1e15, so the factor and the score can never overflow to infinity or NaN.
    pub const FACTOR_PRODUCT: f64 = 1e6;
    /// Largest `|baseline|`, `|min_score|`, `|max_score|`, tier bound or alert threshold.
    pub const SCORE: f64 = 1e12;
    /// Most tiers.
    pub const TIERS: usize = 64;
    /// Longest tier name, in bytes.
    pub const TIER_NAME_BYTES: usize = 64;
    /// Most alert thresholds.
    pub const ALERT_THRESHOLDS: usize = 64;
}

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
    for (field, text, max) in [
        ("name", rule.name.as_str(), limits::NAME_BYTES),
        (
            "description",
            rule.description.as_str(),
            limits::DESCRIPTION_BYTES,
        ),
        (
            "event_type",
            rule.event_type.as_str(),
            limits::EVENT_TYPE_BYTES,
        ),
        (
            "event_subtype",
            rule.event_subtype.as_deref().unwrap_or_default(),
            limits::EVENT_TYPE_BYTES,
        ),
    ] {
        if text.len() > max {
            return err(
                field,
                format!("is {} bytes long, over the limit of {max}", text.len()),
            );
        }
    }
    for (field, count, max) in [
        ("conditions", rule.conditions.len(), limits::CONDITIONS),
        ("multipliers", rule.multipliers.len(), limits::MULTIPLIERS),
    ] {
        if count > max {
            return err(
                field,
                format!("has {count} entries, over the limit of {max}"),
            );
        }
    }
    if rule.event_subtype.as_deref() == Some("") {
        return err(
            "event_subtype",
            "is empty; leave it out to match every subtype".into(),
        );
    }
    if !rule.points.is_finite() || rule.points.abs() > limits::POINTS {
        return err(
            "points",
            format!(
                "must be a finite number within ±{:e}, got {}",
                limits::POINTS,
                rule.points
            ),
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
    // Every multiplier may hold at once: the product of those that grow the points bounds
    // the factor. Checked here, not clamped in the engine, so a stored rule is one that
    // scores exactly as SCORING.md says.
    let product = rule
        .multipliers
        .iter()
        .fold(1.0_f64, |p, m| p * m.factor.abs().max(1.0));
    if product > limits::FACTOR_PRODUCT {
        return err(
            "multipliers",
            format!(
                "the factors could multiply the points by {product:e} when all hold, over \
                 the limit of {:e}",
                limits::FACTOR_PRODUCT
            ),
        );
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
    if condition.field.len() > limits::PATH_BYTES {
        return Err(ScorerError::rule(
            rule,
            format!("{at}.field"),
            format!(
                "is {} bytes long, over the limit of {}",
                condition.field.len(),
                limits::PATH_BYTES
            ),
        ));
    }
    let size = value_bytes(&condition.value);
    if size > limits::VALUE_BYTES {
        return Err(ScorerError::rule(
            rule,
            format!("{at}.value"),
            format!(
                "is about {size} bytes, over the limit of {}",
                limits::VALUE_BYTES
            ),
        ));
    }
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

/// Size of a condition value: the bytes of its strings and keys, 8 per other value.
fn value_bytes(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len(),
        Value::List(items) => items.iter().map(value_bytes).sum::<usize>() + 8,
        Value::Map(map) => {
            map.iter()
                .map(|(k, v)| k.len() + value_bytes(v))
                .sum::<usize>()
                + 8
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => 8,
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
        if !value.is_finite() || value.abs() > limits::SCORE {
            return err(
                field,
                format!(
                    "must be a finite number within ±{:e}, got {value}",
                    limits::SCORE
                ),
            );
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
    for (field, count, max) in [
        ("tiers", config.tiers.len(), limits::TIERS),
        (
            "alert_thresholds",
            config.alert_thresholds.len(),
            limits::ALERT_THRESHOLDS,
        ),
    ] {
        if count > max {
            return err(
                field,
                format!("has {count} entries, over the limit of {max}"),
            );
        }
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
        if tier.name.len() > limits::TIER_NAME_BYTES {
            return err(
                &format!("tiers[{i}].name"),
                format!(
                    "is {} bytes long, over the limit of {}",
                    tier.name.len(),
                    limits::TIER_NAME_BYTES
                ),
            );
        }
        if !tier.min_score.is_finite() || tier.min_score.abs() > limits::SCORE {
            return err(
                &format!("tiers[{i}].min_score"),
                format!("must be a finite number within ±{:e}", limits::SCORE),
            );
        }
        // Listed from the lowest band up, so every reader (GetConfig, the tier
        // distribution, a rule file) sees them in score order; refused rather than sorted,
        // so what is stored is what was sent.
        if let Some(before) = i.checked_sub(1).map(|b| &config.tiers[b])
            && tier.min_score <= before.min_score
        {
            return err(
                &format!("tiers[{i}].min_score"),
                format!(
                    "tiers are listed by rising min_score: {:?} ({}) must be above {:?} ({})",
                    tier.name, tier.min_score, before.name, before.min_score
                ),
            );
        }
    }
    for (i, th) in config.alert_thresholds.iter().enumerate() {
        if !th.is_finite() || th.abs() > limits::SCORE {
            return err(
                &format!("alert_thresholds[{i}]"),
                format!("must be a finite number within ±{:e}", limits::SCORE),
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

    /// The holes: factors whose product overflows made the factor infinite (and the score
    /// NaN, forced to the minimum); a 1 MB name was copied into every score change; tiers
    /// out of order were stored and served so.
    #[test]
    fn absurd_sizes_and_factors_are_refused() {
        let mut rule = Rule::new("big", "financial", 10.0);
        for _ in 0..4 {
            rule.multipliers.push(Multiplier {
                when: Condition::new("payload.x", Operator::Gt, 0.0),
                factor: 1e100,
            });
        }
        assert!(
            message(validate_rule(&rule)).contains("multipliers: the factors could multiply"),
            "{}",
            message(validate_rule(&rule))
        );
        rule.multipliers.truncate(1);
        rule.multipliers[0].factor = 1_000.0;
        rule.multipliers.push(rule.multipliers[0].clone());
        validate_rule(&rule).expect("1e6 is allowed");
        rule.multipliers[1].factor = -0.5;
        validate_rule(&rule).expect("factors below 1 do not grow the points");

        let mut rule = Rule::new("named", "financial", 1.0);
        rule.name = "n".repeat(1 << 20);
        assert!(message(validate_rule(&rule)).contains("name: is 1048576 bytes long"));
        let mut rule = Rule::new("paths", "financial", 1.0);
        rule.conditions.push(Condition::new(
            format!("payload.{}", "a".repeat(300)),
            Operator::Exists,
            true,
        ));
        assert!(message(validate_rule(&rule)).contains("conditions[0].field: is"));
        let mut rule = Rule::new("many", "financial", 1.0);
        rule.conditions = vec![Condition::new("payload.a", Operator::Exists, true); 33];
        assert!(message(validate_rule(&rule)).contains("conditions: has 33 entries"));
        let mut rule = Rule::new("list", "financial", 1.0);
        let long: Vec<Value> = (0..5_000).map(|i| Value::String(format!("v{i}"))).collect();
        rule.conditions
            .push(Condition::new("payload.a", Operator::In, Value::List(long)));
        assert!(message(validate_rule(&rule)).contains("conditions[0].value: is about"));
        let rule = Rule::new("huge", "financial", 1e300);
        assert!(message(validate_rule(&rule)).contains("points: must be a finite number within"));

        let mut config = ScoringConfig::default();
        config.tiers.swap(0, 1);
        assert!(
            message(validate_config(&config)).contains("tiers[1].min_score: tiers are listed"),
            "{}",
            message(validate_config(&config))
        );
        let mut config = ScoringConfig::default();
        config.tiers[1].min_score = config.tiers[0].min_score;
        assert!(message(validate_config(&config)).contains("tiers[1].min_score"));
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
