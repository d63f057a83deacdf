//! `ScoringService`: rules, config, scores, explanations, dry runs, lists and alerts.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use credence_proto::json;
use credence_proto::v1 as pb;
use futures::StreamExt as _;
use futures::stream::BoxStream;

use crate::client::{Page, Retry, all, follow_query, paged, rpc};
use crate::ingestion::{Event, EventResult, Profile};
use crate::time::{duration_opt, std_duration_opt, time, time_opt, timestamp_opt};
use crate::{Client, Error, Result};

/// A rule's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum RuleStatus {
    /// Stored, not scored.
    Draft,
    /// Scored.
    Active,
    /// No longer scored; kept for explanations.
    Retired,
}

wire_enum!(RuleStatus, pb::RuleStatus, [Draft, Active, Retired]);

/// How a condition compares a field with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Operator {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// One of a list.
    In,
    /// None of a list.
    NotIn,
    /// A list or text contains the value.
    Contains,
    /// The field is present (the value is ignored).
    Exists,
}

wire_enum!(
    Operator,
    pb::Operator,
    [Eq, Ne, Gt, Gte, Lt, Lte, In, NotIn, Contains, Exists]
);

/// A test on one field of the event or subject (`payload.amount`, `subject.flags`...).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct Condition {
    /// The field path.
    pub field: String,
    /// The comparison.
    pub op: Operator,
    /// The value compared with (a list for `In` / `NotIn`).
    #[cfg_attr(feature = "serde", serde(default))]
    pub value: serde_json::Value,
}

impl Condition {
    /// `field op value`.
    pub fn new(
        field: impl Into<String>,
        op: Operator,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        Self {
            field: field.into(),
            op,
            value: value.into(),
        }
    }

    fn to_proto(&self) -> pb::Condition {
        pb::Condition {
            field: self.field.clone(),
            op: self.op.to_proto(),
            value: (!self.value.is_null()).then(|| json::to_value(&self.value)),
        }
    }

    fn from_proto(c: pb::Condition) -> Result<Self> {
        Ok(Self {
            op: Operator::from_proto(c.op)?,
            field: c.field,
            value: c
                .value
                .as_ref()
                .map_or(serde_json::Value::Null, json::from_value),
        })
    }
}

/// Points scaled by `factor` when `when` holds.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct Multiplier {
    /// The condition.
    pub when: Condition,
    /// The factor.
    pub factor: f64,
}

/// At most `max` applications of a rule per subject within `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct Cap {
    /// Applications allowed.
    pub max: u32,
    /// The sliding window.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::secs"))]
    pub window: Duration,
}

/// A scoring rule. Build one with [`Rule::new`] and the setters.
///
/// ```
/// use std::time::Duration;
/// use credence::{Condition, Operator, Rule, RuleStatus};
///
/// let rule = Rule::new("late_payment", "financial", -50.0)
///     .name("Late payment")
///     .subtype("late_payment")
///     .status(RuleStatus::Active)
///     .cooldown(Duration::from_secs(86_400))
///     .multiplier(Condition::new("payload.days_late", Operator::Gt, 30), 2.0);
/// assert_eq!(rule.multipliers.len(), 1);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct Rule {
    /// The rule's id.
    pub id: String,
    /// Its version (set by the server; 0 in a new rule).
    #[cfg_attr(feature = "serde", serde(default))]
    pub version: u32,
    /// A name for people.
    #[cfg_attr(feature = "serde", serde(default))]
    pub name: String,
    /// What it is for.
    #[cfg_attr(feature = "serde", serde(default))]
    pub description: String,
    /// Lifecycle state.
    #[cfg_attr(feature = "serde", serde(default = "crate::serde_support::draft"))]
    pub status: RuleStatus,
    /// The event type it applies to.
    pub event_type: String,
    /// The subtype it applies to (empty: every subtype).
    #[cfg_attr(feature = "serde", serde(default))]
    pub event_subtype: String,
    /// All must hold for the rule to apply.
    #[cfg_attr(feature = "serde", serde(default))]
    pub conditions: Vec<Condition>,
    /// Points added (negative: taken).
    pub points: f64,
    /// Factors applied when their condition holds.
    #[cfg_attr(feature = "serde", serde(default))]
    pub multipliers: Vec<Multiplier>,
    /// Minimum time between two applications to one subject.
    #[cfg_attr(
        feature = "serde",
        serde(default, with = "crate::serde_support::secs::option")
    )]
    pub cooldown: Option<Duration>,
    /// At most so many applications per window.
    pub cap: Option<Cap>,
    /// Applies to events from this time on.
    pub valid_from: Option<DateTime<Utc>>,
    /// Applies to events before this time.
    pub valid_until: Option<DateTime<Utc>>,
    /// Lower runs first.
    #[cfg_attr(feature = "serde", serde(default))]
    pub priority: i32,
    /// When this version was stored (set by the server).
    pub updated_at: Option<DateTime<Utc>>,
}

impl Rule {
    /// A draft rule giving `points` to every event of `event_type`.
    pub fn new(id: impl Into<String>, event_type: impl Into<String>, points: f64) -> Self {
        Self {
            id: id.into(),
            version: 0,
            name: String::new(),
            description: String::new(),
            status: RuleStatus::Draft,
            event_type: event_type.into(),
            event_subtype: String::new(),
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

    /// Sets the name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, text: impl Into<String>) -> Self {
        self.description = text.into();
        self
    }

    /// Sets the status.
    #[must_use]
    pub fn status(mut self, status: RuleStatus) -> Self {
        self.status = status;
        self
    }

    /// Sets the subtype.
    #[must_use]
    pub fn subtype(mut self, subtype: impl Into<String>) -> Self {
        self.event_subtype = subtype.into();
        self
    }

    /// Adds a condition.
    #[must_use]
    pub fn condition(mut self, condition: Condition) -> Self {
        self.conditions.push(condition);
        self
    }

    /// Adds a multiplier.
    #[must_use]
    pub fn multiplier(mut self, when: Condition, factor: f64) -> Self {
        self.multipliers.push(Multiplier { when, factor });
        self
    }

    /// Sets the cooldown.
    #[must_use]
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = Some(cooldown);
        self
    }

    /// Sets the cap.
    #[must_use]
    pub fn cap(mut self, max: u32, window: Duration) -> Self {
        self.cap = Some(Cap { max, window });
        self
    }

    /// Sets the validity period.
    #[must_use]
    pub fn valid(mut self, from: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Self {
        self.valid_from = from;
        self.valid_until = until;
        self
    }

    /// Sets the priority.
    #[must_use]
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// The rule as the generated message.
    pub fn to_proto(&self) -> pb::Rule {
        pb::Rule {
            id: self.id.clone(),
            version: self.version,
            name: self.name.clone(),
            description: self.description.clone(),
            status: self.status.to_proto(),
            event_type: self.event_type.clone(),
            event_subtype: self.event_subtype.clone(),
            conditions: self.conditions.iter().map(Condition::to_proto).collect(),
            points: self.points,
            multipliers: self
                .multipliers
                .iter()
                .map(|m| pb::Multiplier {
                    when: Some(m.when.to_proto()),
                    factor: m.factor,
                })
                .collect(),
            cooldown: duration_opt(self.cooldown),
            cap: self.cap.map(|c| pb::Cap {
                max: c.max,
                window: duration_opt(Some(c.window)),
            }),
            valid_from: timestamp_opt(self.valid_from),
            valid_until: timestamp_opt(self.valid_until),
            priority: self.priority,
            updated_at: None,
        }
    }

    /// A rule from the generated message (a value chrono or `std::time` cannot hold, or an
    /// unknown enum number, is [`Error::Protocol`]).
    pub fn from_proto(r: pb::Rule) -> Result<Self> {
        let multipliers = r
            .multipliers
            .into_iter()
            .map(|m| {
                let when = m
                    .when
                    .ok_or_else(|| Error::missing("multiplier condition"))?;
                Ok(Multiplier {
                    when: Condition::from_proto(when)?,
                    factor: m.factor,
                })
            })
            .collect::<Result<_>>()?;
        let cap = match r.cap {
            Some(c) => Some(Cap {
                max: c.max,
                window: std_duration_opt(c.window.as_ref())?.unwrap_or_default(),
            }),
            None => None,
        };
        Ok(Self {
            status: RuleStatus::from_proto(r.status)?,
            conditions: all(r.conditions, Condition::from_proto)?,
            multipliers,
            cooldown: std_duration_opt(r.cooldown.as_ref())?,
            cap,
            valid_from: time_opt(r.valid_from.as_ref())?,
            valid_until: time_opt(r.valid_until.as_ref())?,
            updated_at: time_opt(r.updated_at.as_ref())?,
            id: r.id,
            version: r.version,
            name: r.name,
            description: r.description,
            event_type: r.event_type,
            event_subtype: r.event_subtype,
            points: r.points,
            priority: r.priority,
        })
    }
}

/// A tier: subjects with at least `min_score` (and below the next tier) are in it.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct Tier {
    /// Its name.
    pub name: String,
    /// Its lower bound.
    pub min_score: f64,
}

/// The scoring config: baseline, bounds, tiers, decay, alerts, duplicate window. Read it
/// with [`Client::get_config`], change what you need, store it with [`Client::put_config`].
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct ScoringConfig {
    /// Its version (set by the server).
    #[cfg_attr(feature = "serde", serde(default))]
    pub version: u32,
    /// A new subject's score.
    pub baseline: f64,
    /// The lowest score.
    pub min_score: f64,
    /// The highest score.
    pub max_score: f64,
    /// Tiers by lower bound.
    pub tiers: Vec<Tier>,
    /// The decay towards the baseline; `None`: no decay.
    #[cfg_attr(
        feature = "serde",
        serde(default, with = "crate::serde_support::secs::option")
    )]
    pub half_life: Option<Duration>,
    /// Scores whose crossing raises an alert.
    pub alert_thresholds: Vec<f64>,
    /// Whether events of unknown subjects create them.
    pub auto_create_subjects: bool,
    /// How far behind a subject's latest event an event may arrive.
    #[cfg_attr(
        feature = "serde",
        serde(default, with = "crate::serde_support::secs::option")
    )]
    pub dedup_horizon: Option<Duration>,
    /// Recent event ids kept per subject to refuse duplicates (0: the server's default).
    #[cfg_attr(feature = "serde", serde(default))]
    pub dedup_window_events: u32,
    /// The longest cooldown or cap window a rule may have.
    #[cfg_attr(
        feature = "serde",
        serde(default, with = "crate::serde_support::secs::option")
    )]
    pub max_rule_window: Option<Duration>,
    /// When this version was stored (set by the server).
    pub updated_at: Option<DateTime<Utc>>,
}

impl ScoringConfig {
    /// The config as the generated message.
    pub fn to_proto(&self) -> pb::ScoringConfig {
        pb::ScoringConfig {
            version: self.version,
            // Every field is sent: a config put through the SDK replaces the whole config.
            baseline: Some(self.baseline),
            min_score: Some(self.min_score),
            max_score: Some(self.max_score),
            tiers: self
                .tiers
                .iter()
                .map(|t| pb::Tier {
                    name: t.name.clone(),
                    min_score: t.min_score,
                })
                .collect(),
            // Sent even without a half-life: a `Decay` without one turns decay off, while a
            // left-out `Decay` would keep the server's.
            decay: Some(pb::Decay {
                half_life: duration_opt(self.half_life),
            }),
            alert_thresholds: self.alert_thresholds.clone(),
            auto_create_subjects: Some(self.auto_create_subjects),
            updated_at: None,
            dedup_horizon: duration_opt(self.dedup_horizon),
            dedup_window_events: self.dedup_window_events,
            max_rule_window: duration_opt(self.max_rule_window),
        }
    }

    /// A config from the generated message (a field left out reads as zero or off, as the
    /// server never leaves one out of a config it returns).
    pub fn from_proto(c: pb::ScoringConfig) -> Result<Self> {
        let half_life = match &c.decay {
            Some(d) => std_duration_opt(d.half_life.as_ref())?,
            None => None,
        };
        Ok(Self {
            version: c.version,
            // The server fills every field of a config it returns.
            baseline: c.baseline.unwrap_or_default(),
            min_score: c.min_score.unwrap_or_default(),
            max_score: c.max_score.unwrap_or_default(),
            tiers: c
                .tiers
                .into_iter()
                .map(|t| Tier {
                    name: t.name,
                    min_score: t.min_score,
                })
                .collect(),
            half_life,
            alert_thresholds: c.alert_thresholds,
            auto_create_subjects: c.auto_create_subjects.unwrap_or_default(),
            dedup_horizon: std_duration_opt(c.dedup_horizon.as_ref())?,
            dedup_window_events: c.dedup_window_events,
            max_rule_window: std_duration_opt(c.max_rule_window.as_ref())?,
            updated_at: time_opt(c.updated_at.as_ref())?,
        })
    }
}

/// A subject's current score.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ScoreSnapshot {
    /// The subject.
    pub subject_id: String,
    /// The score (before decay to now).
    pub score: f64,
    /// The tier.
    pub tier: String,
    /// The time of the latest applied event.
    pub last_event_time: Option<DateTime<Utc>>,
    /// The id of the latest applied event.
    pub last_event_id: String,
    /// Events applied so far.
    pub applied_events: u64,
    /// The config version of the last change.
    pub config_version: u32,
    /// When the snapshot was written.
    pub updated_at: Option<DateTime<Utc>>,
}

impl ScoreSnapshot {
    pub(crate) fn from_proto(s: pb::ScoreSnapshot) -> Result<Self> {
        Ok(Self {
            last_event_time: time_opt(s.last_event_time.as_ref())?,
            updated_at: time_opt(s.updated_at.as_ref())?,
            subject_id: s.subject_id,
            score: s.score,
            tier: s.tier,
            last_event_id: s.last_event_id,
            applied_events: s.applied_events,
            config_version: s.config_version,
        })
    }
}

/// One rule's effect on one subject's score: the unit of an explanation.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ScoreChange {
    /// The event that caused it.
    pub event_id: String,
    /// The subject.
    pub subject_id: String,
    /// The rule.
    pub rule_id: String,
    /// The rule's version.
    pub rule_version: u32,
    /// The config's version.
    pub config_version: u32,
    /// The score before (after decay to the event's time).
    pub old_score: f64,
    /// The score after.
    pub new_score: f64,
    /// `new_score - old_score`.
    pub delta: f64,
    /// The event's time.
    pub at: DateTime<Utc>,
    /// The rule's name, for people.
    pub reason: String,
    /// The outside values the rule read (profile, lists, association).
    pub inputs: serde_json::Map<String, serde_json::Value>,
    /// The product of the multipliers that held.
    pub factor: f64,
}

impl ScoreChange {
    pub(crate) fn from_proto(c: pb::ScoreChange) -> Result<Self> {
        Ok(Self {
            at: time(c.at.as_ref().ok_or_else(|| Error::missing("change time"))?)?,
            inputs: c
                .inputs
                .as_ref()
                .map(json::struct_to_map)
                .unwrap_or_default(),
            event_id: c.event_id,
            subject_id: c.subject_id,
            rule_id: c.rule_id,
            rule_version: c.rule_version,
            config_version: c.config_version,
            old_score: c.old_score,
            new_score: c.new_score,
            delta: c.delta,
            reason: c.reason,
            factor: c.factor,
        })
    }
}

/// A score crossed a threshold or a subject changed tier.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Alert {
    /// The subject.
    pub subject_id: String,
    /// The event that caused it.
    pub event_id: String,
    /// The score before.
    pub old_score: f64,
    /// The score after.
    pub new_score: f64,
    /// The tier before.
    pub old_tier: String,
    /// The tier after.
    pub new_tier: String,
    /// The thresholds crossed.
    pub thresholds_crossed: Vec<f64>,
    /// The event's time.
    pub at: Option<DateTime<Utc>>,
}

impl Alert {
    pub(crate) fn from_proto(a: pb::Alert) -> Result<Self> {
        Ok(Self {
            at: time_opt(a.at.as_ref())?,
            subject_id: a.subject_id,
            event_id: a.event_id,
            old_score: a.old_score,
            new_score: a.new_score,
            old_tier: a.old_tier,
            new_tier: a.new_tier,
            thresholds_crossed: a.thresholds_crossed,
        })
    }
}

/// Which rules [`Client::list_rules`] lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct RuleQuery {
    /// Only rules in this state.
    pub status: Option<RuleStatus>,
    /// Only rules of this event type.
    pub event_type: Option<String>,
    /// Every stored version, not only the latest.
    pub all_versions: bool,
    /// Rules per page (0: the server's default).
    pub page_size: u32,
    /// The page to read (empty: the first).
    pub page_token: String,
}

/// A page of rules and the version of the rule set they belong to.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RuleList {
    /// The rules.
    pub rules: Vec<Rule>,
    /// The version of the live rule set.
    pub rule_set_version: u64,
    /// The next page's token; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// What [`Client::explain_score`] explains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct ExplainQuery {
    /// The subject.
    pub subject_id: String,
    /// Only changes at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only changes before this time.
    pub to: Option<DateTime<Utc>>,
    /// Changes per page (0: the server's default).
    #[cfg_attr(feature = "serde", serde(default))]
    pub page_size: u32,
    /// The page to read (empty: the first).
    #[cfg_attr(feature = "serde", serde(default))]
    pub page_token: String,
}

impl ExplainQuery {
    /// Every change of `subject_id`.
    pub fn new(subject_id: impl Into<String>) -> Self {
        Self {
            subject_id: subject_id.into(),
            ..Self::default()
        }
    }

    fn to_proto(&self) -> pb::ExplainScoreRequest {
        pb::ExplainScoreRequest {
            subject_id: self.subject_id.clone(),
            from: timestamp_opt(self.from),
            to: timestamp_opt(self.to),
            page_size: self.page_size,
            page_token: self.page_token.clone(),
        }
    }
}

paged!(RuleQuery, ExplainQuery, ListEntryQuery);

/// A subject's score and the changes that made it.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Explanation {
    /// The current score.
    pub snapshot: Option<ScoreSnapshot>,
    /// The changes, in the order they were applied.
    pub changes: Vec<ScoreChange>,
    /// The next page's token; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// The kind of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum ListKind {
    /// A block list.
    Block,
    /// An allow list.
    Allow,
}

wire_enum!(ListKind, pb::ListKind, [Block, Allow]);

/// A subject on a block or allow list. Build one with [`ListEntry::new`].
///
/// ```
/// let entry = credence::ListEntry::new("subject-0001", credence::ListKind::Block)
///     .reason("synthetic fraud case");
/// assert_eq!(entry.kind, credence::ListKind::Block);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct ListEntry {
    /// The subject.
    pub subject_id: String,
    /// The list.
    pub kind: ListKind,
    /// Why.
    #[cfg_attr(feature = "serde", serde(default))]
    pub reason: String,
    /// When it stops applying (`None`: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was stored (set by the server).
    pub created_at: Option<DateTime<Utc>>,
}

impl ListEntry {
    /// `subject_id` on list `kind`.
    pub fn new(subject_id: impl Into<String>, kind: ListKind) -> Self {
        Self {
            subject_id: subject_id.into(),
            kind,
            reason: String::new(),
            expires_at: None,
            created_at: None,
        }
    }

    /// Sets the reason.
    #[must_use]
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    /// Sets the expiry.
    #[must_use]
    pub fn expires_at(mut self, at: impl Into<DateTime<Utc>>) -> Self {
        self.expires_at = Some(at.into());
        self
    }

    /// The entry as the generated message.
    pub fn to_proto(&self) -> pb::ListEntry {
        pb::ListEntry {
            subject_id: self.subject_id.clone(),
            kind: self.kind.to_proto(),
            reason: self.reason.clone(),
            expires_at: timestamp_opt(self.expires_at),
            created_at: None,
        }
    }

    pub(crate) fn from_proto(e: pb::ListEntry) -> Result<Self> {
        Ok(Self {
            kind: ListKind::from_proto(e.kind)?,
            expires_at: time_opt(e.expires_at.as_ref())?,
            created_at: time_opt(e.created_at.as_ref())?,
            subject_id: e.subject_id,
            reason: e.reason,
        })
    }
}

/// Which entries [`Client::list_list_entries`] lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct ListEntryQuery {
    /// Only this list.
    pub kind: Option<ListKind>,
    /// Only this subject.
    pub subject_id: Option<String>,
    /// Expired entries too.
    pub include_expired: bool,
    /// Entries per page (0: the server's default).
    pub page_size: u32,
    /// The page to read (empty: the first).
    pub page_token: String,
}

/// A dry run of the engine: rules, config and events in, scores out; nothing is stored. Run
/// on the node ([`Client::simulate`]) or, with the `local` feature, in this process
/// (`credence::simulate_locally`), with the same results.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct Simulation {
    /// The rule set (statuses respected).
    pub rules: Vec<Rule>,
    /// The config.
    pub config: Option<ScoringConfig>,
    /// Profiles the rules may read.
    pub profiles: Vec<Profile>,
    /// List entries the rules may read.
    pub list_entries: Vec<ListEntry>,
    /// Events, applied in this order.
    pub events: Vec<Event>,
    /// Where subjects start (a previous run's `final_state`); empty: every subject new.
    #[cfg_attr(
        feature = "serde",
        serde(with = "crate::serde_support::subject_states")
    )]
    pub initial_state: Vec<pb::SubjectState>,
    /// `subject.association` per subject (a dry run reads no graph).
    pub associations: BTreeMap<String, f64>,
}

impl Simulation {
    /// The simulation as the generated request.
    pub fn to_proto(&self) -> pb::SimulateRequest {
        pb::SimulateRequest {
            rules: self.rules.iter().map(Rule::to_proto).collect(),
            config: self.config.as_ref().map(ScoringConfig::to_proto),
            profiles: self.profiles.iter().map(Profile::to_proto).collect(),
            list_entries: self.list_entries.iter().map(ListEntry::to_proto).collect(),
            events: self.events.iter().map(Event::to_proto).collect(),
            initial_state: self.initial_state.clone(),
            associations: self.associations.clone().into_iter().collect(),
        }
    }
}

/// What a [`Simulation`] gave.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SimulationResult {
    /// Every subject's final score (`updated_at`: when the simulation ran).
    pub snapshots: Vec<ScoreSnapshot>,
    /// Every change, in order.
    pub changes: Vec<ScoreChange>,
    /// Alerts raised.
    pub alerts: Vec<Alert>,
    /// One result per event.
    pub results: Vec<EventResult>,
    /// The engine's state per subject, to start the next run from.
    #[cfg_attr(
        feature = "serde",
        serde(with = "crate::serde_support::subject_states")
    )]
    pub final_state: Vec<pb::SubjectState>,
}

impl SimulationResult {
    /// The result from the generated response.
    pub fn from_proto(r: pb::SimulateResponse) -> Result<Self> {
        Ok(Self {
            snapshots: all(r.snapshots, ScoreSnapshot::from_proto)?,
            changes: all(r.changes, ScoreChange::from_proto)?,
            alerts: all(r.alerts, Alert::from_proto)?,
            results: all(r.results, EventResult::from_proto)?,
            final_state: r.final_state,
        })
    }
}

impl Client {
    /// Stores a rule as a new version and returns it with that version. Not retried (a
    /// resend would store another version).
    ///
    /// ```no_run
    /// # async fn run(client: credence::Client) -> credence::Result<()> {
    /// use credence::{Rule, RuleStatus};
    /// let rule = Rule::new("volunteer", "social", 20.0)
    ///     .subtype("volunteer_work")
    ///     .status(RuleStatus::Active);
    /// let stored = client.put_rule(&rule).await?;
    /// println!("{} is at version {}", stored.id, stored.version);
    /// # Ok(()) }
    /// ```
    pub async fn put_rule(&self, rule: &Rule) -> Result<Rule> {
        let request = pb::PutRuleRequest {
            rule: Some(rule.to_proto()),
        };
        let r = rpc!(self, scoring.put_rule, "PutRule", Retry::Never, request)?;
        Rule::from_proto(r.rule.ok_or_else(|| Error::missing("rule"))?)
    }

    /// A rule: its latest version, or `version`.
    pub async fn get_rule(&self, rule_id: &str, version: Option<u32>) -> Result<Rule> {
        let request = pb::GetRuleRequest {
            rule_id: rule_id.to_owned(),
            version: version.unwrap_or(0),
        };
        let r = rpc!(self, scoring.get_rule, "GetRule", Retry::Safe, request)?;
        Rule::from_proto(r.rule.ok_or_else(|| Error::missing("rule"))?)
    }

    /// One page of rules.
    pub async fn list_rules(&self, query: &RuleQuery) -> Result<RuleList> {
        let request = pb::ListRulesRequest {
            status: query.status.map_or(0, RuleStatus::to_proto),
            event_type: query.event_type.clone().unwrap_or_default(),
            all_versions: query.all_versions,
            page_size: query.page_size,
            page_token: query.page_token.clone(),
        };
        let r = rpc!(self, scoring.list_rules, "ListRules", Retry::Safe, request)?;
        let page = Page::new(all(r.rules, Rule::from_proto)?, r.next_page_token);
        Ok(RuleList {
            rules: page.items,
            rule_set_version: r.rule_set_version,
            next_page_token: page.next_page_token,
        })
    }

    /// Every rule the query selects, page after page.
    ///
    /// ```no_run
    /// # async fn run(client: credence::Client) -> credence::Result<()> {
    /// use futures::TryStreamExt as _;
    /// let rules: Vec<credence::Rule> =
    ///     client.list_rules_stream(credence::RuleQuery::default()).try_collect().await?;
    /// # Ok(()) }
    /// ```
    pub fn list_rules_stream(&self, query: RuleQuery) -> BoxStream<'static, Result<Rule>> {
        follow_query(self, query, |client, query| async move {
            let list = client.list_rules(&query).await?;
            Ok(Page {
                items: list.rules,
                next_page_token: list.next_page_token,
            })
        })
    }

    /// Sets a rule's status (a new version); retried, since setting the same status twice
    /// leaves the rule as once.
    pub async fn set_rule_status(&self, rule_id: &str, status: RuleStatus) -> Result<Rule> {
        let request = pb::SetRuleStatusRequest {
            rule_id: rule_id.to_owned(),
            status: status.to_proto(),
        };
        let r = rpc!(
            self,
            scoring.set_rule_status,
            "SetRuleStatus",
            Retry::Safe,
            request
        )?;
        Rule::from_proto(r.rule.ok_or_else(|| Error::missing("rule"))?)
    }

    /// The live scoring config, or `version`.
    pub async fn get_config(&self, version: Option<u32>) -> Result<ScoringConfig> {
        let request = pb::GetConfigRequest {
            version: version.unwrap_or(0),
        };
        let r = rpc!(self, scoring.get_config, "GetConfig", Retry::Safe, request)?;
        ScoringConfig::from_proto(r.config.ok_or_else(|| Error::missing("config"))?)
    }

    /// Stores a config as a new version and returns it. Not retried.
    ///
    /// ```no_run
    /// # async fn run(client: credence::Client) -> credence::Result<()> {
    /// let mut config = client.get_config(None).await?;
    /// config.alert_thresholds = vec![500.0, 800.0];
    /// let stored = client.put_config(&config).await?;
    /// println!("config version {}", stored.version);
    /// # Ok(()) }
    /// ```
    pub async fn put_config(&self, config: &ScoringConfig) -> Result<ScoringConfig> {
        let request = pb::PutConfigRequest {
            config: Some(config.to_proto()),
        };
        let r = rpc!(self, scoring.put_config, "PutConfig", Retry::Never, request)?;
        ScoringConfig::from_proto(r.config.ok_or_else(|| Error::missing("config"))?)
    }

    /// A subject's current score ([`Error::NotFound`] before its first scored event).
    pub async fn get_score(&self, subject_id: &str) -> Result<ScoreSnapshot> {
        let request = pb::GetScoreRequest {
            subject_id: subject_id.to_owned(),
        };
        let r = rpc!(self, scoring.get_score, "GetScore", Retry::Safe, request)?;
        ScoreSnapshot::from_proto(r.snapshot.ok_or_else(|| Error::missing("snapshot"))?)
    }

    /// The scores of several subjects, and the ids that have none.
    pub async fn batch_get_scores(
        &self,
        subject_ids: &[&str],
    ) -> Result<(Vec<ScoreSnapshot>, Vec<String>)> {
        let request = pb::BatchGetScoresRequest {
            subject_ids: subject_ids.iter().map(|s| (*s).to_owned()).collect(),
        };
        let r = rpc!(
            self,
            scoring.batch_get_scores,
            "BatchGetScores",
            Retry::Safe,
            request
        )?;
        Ok((
            all(r.snapshots, ScoreSnapshot::from_proto)?,
            r.missing_subject_ids,
        ))
    }

    /// A subject's score and one page of the changes that made it.
    pub async fn explain_score(&self, query: &ExplainQuery) -> Result<Explanation> {
        let r = rpc!(
            self,
            scoring.explain_score,
            "ExplainScore",
            Retry::Safe,
            query.to_proto()
        )?;
        Ok(Explanation {
            snapshot: r.snapshot.map(ScoreSnapshot::from_proto).transpose()?,
            changes: all(r.changes, ScoreChange::from_proto)?,
            next_page_token: Some(r.next_page_token).filter(|t| !t.is_empty()),
        })
    }

    /// Every change of an explanation, page after page.
    pub fn explain_score_stream(
        &self,
        query: ExplainQuery,
    ) -> BoxStream<'static, Result<ScoreChange>> {
        follow_query(self, query, |client, query| async move {
            let e = client.explain_score(&query).await?;
            Ok(Page {
                items: e.changes,
                next_page_token: e.next_page_token,
            })
        })
    }

    /// Runs a dry run of the engine on the node (with the `local` feature,
    /// `credence::simulate_locally` runs the same code in this process).
    pub async fn simulate(&self, simulation: &Simulation) -> Result<SimulationResult> {
        let request = simulation.to_proto();
        let r = rpc!(self, scoring.simulate, "Simulate", Retry::Safe, request)?;
        SimulationResult::from_proto(r)
    }

    /// Puts a subject on a list (replacing its entry there).
    pub async fn put_list_entry(&self, entry: &ListEntry) -> Result<ListEntry> {
        let request = pb::PutListEntryRequest {
            entry: Some(entry.to_proto()),
        };
        let r = rpc!(
            self,
            scoring.put_list_entry,
            "PutListEntry",
            Retry::Safe,
            request
        )?;
        ListEntry::from_proto(r.entry.ok_or_else(|| Error::missing("entry"))?)
    }

    /// Takes a subject off a list; `false` when it was not on it.
    pub async fn remove_list_entry(&self, subject_id: &str, kind: ListKind) -> Result<bool> {
        let request = pb::RemoveListEntryRequest {
            subject_id: subject_id.to_owned(),
            kind: kind.to_proto(),
        };
        let r = rpc!(
            self,
            scoring.remove_list_entry,
            "RemoveListEntry",
            Retry::Safe,
            request
        )?;
        Ok(r.removed)
    }

    /// One page of list entries.
    pub async fn list_list_entries(&self, query: &ListEntryQuery) -> Result<Page<ListEntry>> {
        let request = pb::ListListEntriesRequest {
            kind: query.kind.map_or(0, ListKind::to_proto),
            subject_id: query.subject_id.clone().unwrap_or_default(),
            include_expired: query.include_expired,
            page_size: query.page_size,
            page_token: query.page_token.clone(),
        };
        let r = rpc!(
            self,
            scoring.list_list_entries,
            "ListListEntries",
            Retry::Safe,
            request
        )?;
        Ok(Page::new(
            all(r.entries, ListEntry::from_proto)?,
            r.next_page_token,
        ))
    }

    /// Every list entry the query selects, page after page.
    pub fn list_list_entries_stream(
        &self,
        query: ListEntryQuery,
    ) -> BoxStream<'static, Result<ListEntry>> {
        follow_query(self, query, |client, query| async move {
            client.list_list_entries(&query).await
        })
    }

    /// Alerts as they happen, for these subjects and new tiers (empty: all). The stream
    /// ends when the node stops; open it again to resume (alerts in between are missed).
    ///
    /// ```no_run
    /// # async fn run(client: credence::Client) -> credence::Result<()> {
    /// use futures::StreamExt as _;
    /// let mut alerts = client.watch_alerts(&[], &["E"]).await?;
    /// while let Some(alert) = alerts.next().await {
    ///     let alert = alert?;
    ///     println!("{} fell to {}", alert.subject_id, alert.new_tier);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn watch_alerts(
        &self,
        subject_ids: &[&str],
        new_tiers: &[&str],
    ) -> Result<BoxStream<'static, Result<Alert>>> {
        let request = pb::WatchAlertsRequest {
            subject_ids: subject_ids.iter().map(|s| (*s).to_owned()).collect(),
            new_tiers: new_tiers.iter().map(|s| (*s).to_owned()).collect(),
        };
        let stream = self
            .open("WatchAlerts", request, |m| {
                let mut c = self.scoring();
                async move { c.watch_alerts(m).await }
            })
            .await?;
        Ok(stream
            .map(|item| {
                let answer = item.map_err(|s| Error::from_status(&s, 1))?;
                Alert::from_proto(answer.alert.ok_or_else(|| Error::missing("alert"))?)
            })
            .boxed())
    }
}
