//! Rules as written by people: in files, through the API, in simulations.

use serde::{Deserialize, Serialize};

use crate::time::{Duration, Timestamp};
use crate::value::Value;

/// How a condition compares a field with its value (see SCORING.md, "Operators").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// Equal.
    Eq,
    /// Not equal; false when the field does not resolve.
    Ne,
    /// Greater than (numbers, or strings bytewise).
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// Equal to one of a list of values.
    In,
    /// Equal to none of a list of values; false when the field does not resolve.
    NotIn,
    /// A list field contains the value, or a string field contains the substring.
    Contains,
    /// The field resolves; the value is ignored.
    Exists,
}

/// One test on an event or its subject.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// Dotted path, e.g. `payload.days_late` or `subject.flags`.
    pub field: String,
    /// The comparison.
    pub op: Operator,
    /// The value compared with (a list for `in` / `not_in`; ignored by `exists`).
    #[serde(default, skip_serializing_if = "is_null")]
    pub value: Value,
}

fn is_null(value: &Value) -> bool {
    matches!(value, Value::Null)
}

/// A factor applied to a rule's points when its condition holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Multiplier {
    /// When the factor applies.
    pub when: Condition,
    /// The factor.
    pub factor: f64,
}

/// At most `max` applications per subject in any rolling `window` of event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cap {
    /// Maximum applications inside the window (at least 1).
    pub max: u32,
    /// The window's length (positive).
    pub window: Duration,
}

/// Lifecycle of a rule; only active rules score.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleStatus {
    /// Stored, not scoring.
    #[default]
    Draft,
    /// Scoring.
    Active,
    /// No longer scoring; kept so past changes stay explainable.
    Retired,
}

/// A scoring rule (see SCORING.md, "Rules").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique id, `[a-z0-9_-]{1,64}`.
    pub id: String,
    /// Version, set by the server (+1 on every change); 1 in a file when absent.
    #[serde(default = "first_version")]
    pub version: u32,
    /// Human name: the reason shown in explanations (the id when empty).
    #[serde(default)]
    pub name: String,
    /// Human description.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Lifecycle state; `draft` when absent.
    #[serde(default)]
    pub status: RuleStatus,
    /// The event type the rule sees (required).
    pub event_type: String,
    /// When set, the event's subtype must match too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_subtype: Option<String>,
    /// All must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Signed points, before multipliers.
    pub points: f64,
    /// Factors applied, in order, when their conditions hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub multipliers: Vec<Multiplier>,
    /// Minimum event-time distance between two applications to one subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<Duration>,
    /// Rate limit per subject in event time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<Cap>,
    /// Start of validity (inclusive), in event time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<Timestamp>,
    /// End of validity (exclusive), in event time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Timestamp>,
    /// Lower runs first; ties by id.
    #[serde(default)]
    pub priority: i32,
    /// When the server stored this version (wall clock); absent in files. Never read by
    /// the engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
}

const fn first_version() -> u32 {
    1
}

impl Rule {
    /// A draft rule with the given id, event type and points and nothing else; a starting
    /// point for building rules in code.
    pub fn new(id: impl Into<String>, event_type: impl Into<String>, points: f64) -> Self {
        Self {
            id: id.into(),
            version: 1,
            name: String::new(),
            description: String::new(),
            status: RuleStatus::Draft,
            event_type: event_type.into(),
            event_subtype: None,
            conditions: Vec::new(),
            points,
            multipliers: Vec::new(),
            cooldown: None,
            cap: None,
            valid_from: None,
            valid_until: None,
            priority: 0,
            updated_at: None,
        }
    }

    /// The reason shown in explanations: the name, or the id when the name is empty.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            &self.id
        } else {
            &self.name
        }
    }
}

impl Condition {
    /// A condition on `field`.
    pub fn new(field: impl Into<String>, op: Operator, value: impl Into<Value>) -> Self {
        Self {
            field: field.into(),
            op,
            value: value.into(),
        }
    }
}
