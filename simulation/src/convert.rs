//! The pure conversions between `credence.v1` messages and the engine's domain types: what a
//! simulation needs, and what the node's own conversions (`server/src/convert.rs`, those
//! that touch store types) build on.
//!
//! Generated types stay at the edge: callers convert with these functions, the engine never
//! sees a generated type. Every refusal names the field at fault (`rule.conditions[0].op:
//! ...`), so a handler can answer INVALID_ARGUMENT with it as is.

use std::collections::BTreeMap;
use std::sync::Arc;

use credence_proto::v1 as pb;
use credence_scorer as domain;
use prost_types::value::Kind;

pub use crate::error::ConvertError;

type Result<T> = std::result::Result<T, ConvertError>;

// ---- time ---------------------------------------------------------------------------------

/// `seconds` and `nanos` as whole nanoseconds, when they fit in an i64.
fn total_nanos(seconds: i64, nanos: i32) -> Option<i64> {
    seconds
        .checked_mul(1_000_000_000)?
        .checked_add(i64::from(nanos))
}

/// A protobuf timestamp as event time; refused outside the years 1678 to 2261.
pub fn timestamp(field: &str, t: &prost_types::Timestamp) -> Result<domain::Timestamp> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(ConvertError::new(
            field,
            format!("nanos {} is not in 0..1e9", t.nanos),
        ));
    }
    total_nanos(t.seconds, t.nanos)
        .map(domain::Timestamp::from_nanos)
        .ok_or_else(|| ConvertError::new(field, "is outside the years 1678 to 2261"))
}

/// Event time as a protobuf timestamp.
pub fn timestamp_to_pb(t: domain::Timestamp) -> prost_types::Timestamp {
    let ns = t.nanos();
    prost_types::Timestamp {
        seconds: ns.div_euclid(1_000_000_000),
        nanos: ns.rem_euclid(1_000_000_000) as i32,
    }
}

/// A protobuf duration; refused when negative or longer than 292 years.
pub fn duration(field: &str, d: &prost_types::Duration) -> Result<domain::Duration> {
    if d.seconds < 0 || d.nanos < 0 {
        return Err(ConvertError::new(field, "must not be negative"));
    }
    if d.nanos >= 1_000_000_000 {
        return Err(ConvertError::new(
            field,
            format!("nanos {} is not in 0..1e9", d.nanos),
        ));
    }
    total_nanos(d.seconds, d.nanos)
        .map(domain::Duration::from_nanos)
        .ok_or_else(|| ConvertError::new(field, "is longer than 292 years"))
}

/// A duration as a protobuf duration.
pub fn duration_to_pb(d: domain::Duration) -> prost_types::Duration {
    let ns = d.nanos();
    prost_types::Duration {
        seconds: ns / 1_000_000_000,
        nanos: (ns % 1_000_000_000) as i32,
    }
}

// ---- values -------------------------------------------------------------------------------

/// A `google.protobuf.Value` as a domain value (an unset kind is null).
/// Takes the value by value: its strings move instead of being copied (the pipeline
/// converts every event it scores).
pub fn value(v: prost_types::Value) -> domain::Value {
    match v.kind {
        None | Some(Kind::NullValue(_)) => domain::Value::Null,
        Some(Kind::BoolValue(b)) => domain::Value::Bool(b),
        Some(Kind::NumberValue(n)) => domain::Value::Number(n),
        Some(Kind::StringValue(s)) => domain::Value::String(s),
        Some(Kind::ListValue(list)) => {
            domain::Value::List(list.values.into_iter().map(value).collect())
        }
        Some(Kind::StructValue(s)) => domain::Value::Map(payload(s)),
    }
}

/// A `google.protobuf.Struct` as a payload.
pub fn payload(s: prost_types::Struct) -> domain::Payload {
    s.fields.into_iter().map(|(k, v)| (k, value(v))).collect()
}

/// A domain value as a `google.protobuf.Value`.
pub fn value_to_pb(v: &domain::Value) -> prost_types::Value {
    let kind = match v {
        domain::Value::Null => Kind::NullValue(0),
        domain::Value::Bool(b) => Kind::BoolValue(*b),
        domain::Value::Number(n) => Kind::NumberValue(*n),
        domain::Value::String(s) => Kind::StringValue(s.clone()),
        domain::Value::List(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(value_to_pb).collect(),
        }),
        domain::Value::Map(map) => Kind::StructValue(payload_to_pb(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A payload (or any map of values) as a `google.protobuf.Struct`.
pub fn payload_to_pb(map: &BTreeMap<String, domain::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), value_to_pb(v)))
            .collect(),
    }
}

// ---- events -------------------------------------------------------------------------------

/// An event as the engine sees it. Only what the engine needs is checked here (ids, type,
/// time); size and depth limits belong to ingestion. `received_at` is the server's to set
/// and ignored on input: it cannot refuse an event.
pub fn event(e: &pb::Event) -> Result<domain::Event> {
    let occurred_at = e
        .occurred_at
        .as_ref()
        .map(|t| timestamp("occurred_at", t))
        .transpose()?;
    required_event_fields(
        &e.event_id,
        &e.subject_id,
        &e.event_type,
        occurred_at.is_some(),
    )?;
    Ok(domain::Event {
        event_id: e.event_id.clone(),
        subject_id: e.subject_id.clone(),
        event_type: e.event_type.clone(),
        event_subtype: e.event_subtype.clone(),
        source_system: e.source_system.clone(),
        occurred_at: occurred_at.unwrap_or_default(),
        location: e.location.as_ref().map(|l| domain::Location {
            region: l.region.clone(),
            district: l.district.clone(),
        }),
        payload: e.payload.clone().map(payload).unwrap_or_default(),
    })
}

/// What an event must have for the engine: its ids and type, then its time (the first
/// missing one is named).
pub fn required_event_fields(
    event_id: &str,
    subject_id: &str,
    event_type: &str,
    has_occurred_at: bool,
) -> Result<()> {
    let missing = [
        ("event_id", event_id),
        ("subject_id", subject_id),
        ("event_type", event_type),
    ]
    .into_iter()
    .find(|(_, text)| text.is_empty())
    .map(|(field, _)| field)
    .or((!has_occurred_at).then_some("occurred_at"));
    match missing {
        Some(field) => Err(ConvertError::new(field, "is required")),
        None => Ok(()),
    }
}

// ---- rules --------------------------------------------------------------------------------

fn operator(field: &str, op: i32) -> Result<domain::Operator> {
    use pb::Operator as P;
    let op = P::try_from(op)
        .map_err(|_| ConvertError::new(field, format!("{op} is not an operator")))?;
    Ok(match op {
        P::Unspecified => return Err(ConvertError::new(field, "is required")),
        P::Eq => domain::Operator::Eq,
        P::Ne => domain::Operator::Ne,
        P::Gt => domain::Operator::Gt,
        P::Gte => domain::Operator::Gte,
        P::Lt => domain::Operator::Lt,
        P::Lte => domain::Operator::Lte,
        P::In => domain::Operator::In,
        P::NotIn => domain::Operator::NotIn,
        P::Contains => domain::Operator::Contains,
        P::Exists => domain::Operator::Exists,
    })
}

fn operator_to_pb(op: domain::Operator) -> pb::Operator {
    use pb::Operator as P;
    match op {
        domain::Operator::Eq => P::Eq,
        domain::Operator::Ne => P::Ne,
        domain::Operator::Gt => P::Gt,
        domain::Operator::Gte => P::Gte,
        domain::Operator::Lt => P::Lt,
        domain::Operator::Lte => P::Lte,
        domain::Operator::In => P::In,
        domain::Operator::NotIn => P::NotIn,
        domain::Operator::Contains => P::Contains,
        domain::Operator::Exists => P::Exists,
    }
}

fn condition(at: &str, c: &pb::Condition) -> Result<domain::Condition> {
    Ok(domain::Condition {
        field: c.field.clone(),
        op: operator(&format!("{at}.op"), c.op)?,
        value: c.value.clone().map(value).unwrap_or_default(),
    })
}

fn condition_to_pb(c: &domain::Condition) -> pb::Condition {
    pb::Condition {
        field: c.field.clone(),
        op: operator_to_pb(c.op).into(),
        value: Some(value_to_pb(&c.value)),
    }
}

/// A rule status; UNSPECIFIED is DRAFT (a rule never scores by accident).
pub fn rule_status(field: &str, status: i32) -> Result<domain::RuleStatus> {
    match pb::RuleStatus::try_from(status) {
        Ok(pb::RuleStatus::Unspecified | pb::RuleStatus::Draft) => Ok(domain::RuleStatus::Draft),
        Ok(pb::RuleStatus::Active) => Ok(domain::RuleStatus::Active),
        Ok(pb::RuleStatus::Retired) => Ok(domain::RuleStatus::Retired),
        Err(_) => Err(ConvertError::new(
            field,
            format!("{status} is not a rule status"),
        )),
    }
}

fn rule_status_to_pb(status: domain::RuleStatus) -> pb::RuleStatus {
    match status {
        domain::RuleStatus::Draft => pb::RuleStatus::Draft,
        domain::RuleStatus::Active => pb::RuleStatus::Active,
        domain::RuleStatus::Retired => pb::RuleStatus::Retired,
    }
}

/// A rule as the engine takes it (version 1 when 0). Validation of its content (paths,
/// value types, cap, validity) is the engine's: `credence_scorer::validate_rule`.
pub fn rule(r: &pb::Rule) -> Result<domain::Rule> {
    let conditions = r
        .conditions
        .iter()
        .enumerate()
        .map(|(i, c)| condition(&format!("conditions[{i}]"), c))
        .collect::<Result<_>>()?;
    let multipliers = r
        .multipliers
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let at = format!("multipliers[{i}]");
            let when = m
                .when
                .as_ref()
                .ok_or_else(|| ConvertError::new(format!("{at}.when"), "is required"))?;
            Ok(domain::Multiplier {
                when: condition(&format!("{at}.when"), when)?,
                factor: m.factor,
            })
        })
        .collect::<Result<_>>()?;
    let cap = r
        .cap
        .as_ref()
        .map(|c| -> Result<domain::Cap> {
            let window = c
                .window
                .as_ref()
                .ok_or_else(|| ConvertError::new("cap.window", "is required"))?;
            Ok(domain::Cap {
                max: c.max,
                window: duration("cap.window", window)?,
            })
        })
        .transpose()?;
    Ok(domain::Rule {
        id: r.id.clone(),
        version: r.version.max(1),
        name: r.name.clone(),
        description: r.description.clone(),
        status: rule_status("status", r.status)?,
        event_type: r.event_type.clone(),
        event_subtype: Some(r.event_subtype.clone()).filter(|s| !s.is_empty()),
        conditions,
        points: r.points,
        multipliers,
        cooldown: r
            .cooldown
            .as_ref()
            .map(|d| duration("cooldown", d))
            .transpose()?
            .filter(|d| !d.is_zero()),
        cap,
        valid_from: r
            .valid_from
            .as_ref()
            .map(|t| timestamp("valid_from", t))
            .transpose()?,
        valid_until: r
            .valid_until
            .as_ref()
            .map(|t| timestamp("valid_until", t))
            .transpose()?,
        priority: r.priority,
        // The server's to set, never the client's.
        updated_at: None,
    })
}

/// A domain rule as the contract's rule.
pub fn rule_to_pb(r: &domain::Rule) -> pb::Rule {
    pb::Rule {
        id: r.id.clone(),
        version: r.version,
        name: r.name.clone(),
        description: r.description.clone(),
        status: rule_status_to_pb(r.status).into(),
        event_type: r.event_type.clone(),
        event_subtype: r.event_subtype.clone().unwrap_or_default(),
        conditions: r.conditions.iter().map(condition_to_pb).collect(),
        points: r.points,
        multipliers: r
            .multipliers
            .iter()
            .map(|m| pb::Multiplier {
                when: Some(condition_to_pb(&m.when)),
                factor: m.factor,
            })
            .collect(),
        cooldown: r.cooldown.map(duration_to_pb),
        cap: r.cap.map(|c| pb::Cap {
            max: c.max,
            window: Some(duration_to_pb(c.window)),
        }),
        valid_from: r.valid_from.map(timestamp_to_pb),
        valid_until: r.valid_until.map(timestamp_to_pb),
        priority: r.priority,
        updated_at: r.updated_at.map(timestamp_to_pb),
    }
}

// ---- config -------------------------------------------------------------------------------

/// A scoring config (version 1 when 0). Its content is validated by the engine.
pub fn config(
    c: &pb::ScoringConfig,
    current: &domain::ScoringConfig,
) -> Result<domain::ScoringConfig> {
    // A singular field the client left out keeps `current`'s value (see the contract's
    // ScoringConfig): proto3 would otherwise read an omitted `auto_create_subjects` as false.
    let half_life = match &c.decay {
        Some(decay) => optional_span(decay.half_life.as_ref(), "decay.half_life")?,
        None => current.decay.half_life,
    };
    Ok(domain::ScoringConfig {
        version: c.version.max(1),
        baseline: c.baseline.unwrap_or(current.baseline),
        min_score: c.min_score.unwrap_or(current.min_score),
        max_score: c.max_score.unwrap_or(current.max_score),
        tiers: c
            .tiers
            .iter()
            .map(|t| domain::Tier {
                name: Arc::from(t.name.as_str()),
                min_score: t.min_score,
            })
            .collect(),
        decay: domain::Decay { half_life },
        alert_thresholds: c.alert_thresholds.clone(),
        auto_create_subjects: c
            .auto_create_subjects
            .unwrap_or(current.auto_create_subjects),
        dedup_horizon: optional_span(c.dedup_horizon.as_ref(), "dedup_horizon")?
            .unwrap_or(current.dedup_horizon),
        dedup_window_events: match c.dedup_window_events {
            0 => current.dedup_window_events,
            n => n,
        },
        max_rule_window: optional_span(c.max_rule_window.as_ref(), "max_rule_window")?
            .unwrap_or(current.max_rule_window),
        // The server's to set, never the client's.
        updated_at: None,
    })
}

/// A duration field that may be absent; zero counts as absent.
fn optional_span(
    d: Option<&prost_types::Duration>,
    field: &str,
) -> Result<Option<domain::Duration>> {
    Ok(d.map(|d| duration(field, d))
        .transpose()?
        .filter(|d| !d.is_zero()))
}

/// A domain config as the contract's config.
pub fn config_to_pb(c: &domain::ScoringConfig) -> pb::ScoringConfig {
    pb::ScoringConfig {
        version: c.version,
        baseline: Some(c.baseline),
        min_score: Some(c.min_score),
        max_score: Some(c.max_score),
        tiers: c
            .tiers
            .iter()
            .map(|t| pb::Tier {
                name: t.name.to_string(),
                min_score: t.min_score,
            })
            .collect(),
        decay: Some(pb::Decay {
            half_life: c.decay.half_life.map(duration_to_pb),
        }),
        alert_thresholds: c.alert_thresholds.clone(),
        auto_create_subjects: Some(c.auto_create_subjects),
        updated_at: c.updated_at.map(timestamp_to_pb),
        dedup_horizon: Some(duration_to_pb(c.dedup_horizon)),
        dedup_window_events: c.dedup_window_events,
        max_rule_window: Some(duration_to_pb(c.max_rule_window)),
    }
}

// ---- outcomes -----------------------------------------------------------------------------

/// A score change as the contract's explanation record.
pub fn score_change_to_pb(c: &domain::ScoreChange) -> pb::ScoreChange {
    pb::ScoreChange {
        event_id: c.event_id.clone(),
        subject_id: c.subject_id.clone(),
        rule_id: c.rule_id.to_string(),
        rule_version: c.rule_version,
        config_version: c.config_version,
        old_score: c.old_score,
        new_score: c.new_score,
        delta: c.delta,
        at: Some(timestamp_to_pb(c.at)),
        reason: c.reason.to_string(),
        inputs: Some(payload_to_pb(&c.inputs)),
        factor: c.factor,
    }
}

/// An alert as the contract's alert.
pub fn alert_to_pb(a: &domain::Alert) -> pb::Alert {
    pb::Alert {
        subject_id: a.subject_id.clone(),
        event_id: a.event_id.clone(),
        old_score: a.old_score,
        new_score: a.new_score,
        old_tier: a.old_tier.to_string(),
        new_tier: a.new_tier.to_string(),
        thresholds_crossed: a.thresholds_crossed.clone(),
        at: Some(timestamp_to_pb(a.at)),
    }
}

// ---- subjects -----------------------------------------------------------------------------

/// What rules read of a profile.
pub fn profile_context(p: &pb::Profile) -> domain::Profile {
    domain::Profile::from_record(
        &p.region,
        &p.district,
        &p.occupation,
        p.birth_year,
        &p.flags,
    )
}

/// A list kind; UNSPECIFIED and unknown numbers are refused naming `field`.
pub fn list_kind(field: &str, kind: i32) -> Result<domain::ListKind> {
    match pb::ListKind::try_from(kind) {
        Ok(pb::ListKind::Block) => Ok(domain::ListKind::Block),
        Ok(pb::ListKind::Allow) => Ok(domain::ListKind::Allow),
        Ok(pb::ListKind::Unspecified) => Err(ConvertError::new(
            field,
            "is required: LIST_KIND_BLOCK or LIST_KIND_ALLOW",
        )),
        Err(_) => Err(ConvertError::new(
            field,
            format!("{kind} is not a list kind"),
        )),
    }
}

/// A list kind as the contract's.
pub fn list_kind_to_pb(kind: domain::ListKind) -> pb::ListKind {
    match kind {
        domain::ListKind::Block => pb::ListKind::Block,
        domain::ListKind::Allow => pb::ListKind::Allow,
    }
}

// ---- scores -------------------------------------------------------------------------------

/// A snapshot as the contract's score.
pub fn snapshot_to_pb(
    state: &domain::SubjectState,
    updated_at: domain::Timestamp,
) -> pb::ScoreSnapshot {
    pb::ScoreSnapshot {
        subject_id: state.subject_id.clone(),
        score: state.score,
        tier: state.tier.to_string(),
        last_event_time: Some(timestamp_to_pb(state.last_time)),
        last_event_id: state.last_event_id.clone(),
        applied_events: state.applied_events,
        config_version: state.config_version,
        updated_at: Some(timestamp_to_pb(updated_at)),
    }
}

/// The engine state as the contract's `SubjectState`.
#[allow(deprecated, reason = "writes the deprecated digests field empty")]
pub fn state_to_pb(state: &domain::SubjectState) -> pb::SubjectState {
    pb::SubjectState {
        subject_id: state.subject_id.clone(),
        score: state.score,
        tier: state.tier.to_string(),
        last_event_time: Some(timestamp_to_pb(state.last_time)),
        last_event_id: state.last_event_id.clone(),
        applied_events: state.applied_events,
        config_version: state.config_version,
        applied_event_digests: Vec::new(),
        dedup_floor: state.dedup.floor().map(timestamp_to_pb),
        recent_events: state
            .dedup
            .entries()
            .map(|(t, d)| pb::AppliedEvent {
                occurred_at: Some(timestamp_to_pb(t)),
                digest: d.to_be_bytes().to_vec(),
            })
            .collect(),
        rules: state
            .rules
            .iter()
            .map(|h| pb::RuleHistory {
                rule_id: h.rule_id.to_string(),
                last_applied_at: h.last().map(timestamp_to_pb),
                applications: h
                    .applications()
                    .iter()
                    .map(|t| timestamp_to_pb(*t))
                    .collect(),
            })
            .collect(),
    }
}

/// A contract `SubjectState` as engine state (to simulate from a given state).
#[allow(deprecated, reason = "still reads the deprecated digests field")]
pub fn state(s: &pb::SubjectState) -> Result<domain::SubjectState> {
    if s.subject_id.is_empty() {
        return Err(ConvertError::new("subject_id", "is required"));
    }
    let last_time = s
        .last_event_time
        .as_ref()
        .map(|t| timestamp("last_event_time", t))
        .transpose()?
        .unwrap_or_default();
    let mut state = domain::SubjectState::new(
        s.subject_id.clone(),
        s.score,
        Arc::from(s.tier.as_str()),
        last_time,
    );
    state.last_event_id.clone_from(&s.last_event_id);
    state.applied_events = s.applied_events;
    state.config_version = s.config_version;
    let digest = |field: String, d: &[u8]| {
        <[u8; 16]>::try_from(d)
            .map(u128::from_be_bytes)
            .map_err(|_| ConvertError::new(field, format!("is {} bytes; a digest is 16", d.len())))
    };
    let mut recent = Vec::with_capacity(s.recent_events.len() + s.applied_event_digests.len());
    for (i, e) in s.recent_events.iter().enumerate() {
        let at = format!("recent_events[{i}]");
        let t = e
            .occurred_at
            .as_ref()
            .ok_or_else(|| ConvertError::new(format!("{at}.occurred_at"), "is required"))?;
        recent.push((
            timestamp(&format!("{at}.occurred_at"), t)?,
            digest(format!("{at}.digest"), &e.digest)?,
        ));
    }
    // The deprecated field has no times: taken as applied at the latest event time.
    for (i, d) in s.applied_event_digests.iter().enumerate() {
        recent.push((last_time, digest(format!("applied_event_digests[{i}]"), d)?));
    }
    let floor = s
        .dedup_floor
        .as_ref()
        .map(|t| timestamp("dedup_floor", t))
        .transpose()?;
    state.dedup = domain::DedupWindow::new(floor, recent);
    for (i, h) in s.rules.iter().enumerate() {
        let at = format!("rules[{i}]");
        let applications = h
            .applications
            .iter()
            .enumerate()
            .map(|(j, t)| timestamp(&format!("{at}.applications[{j}]"), t))
            .collect::<Result<Vec<_>>>()?;
        let mut history = domain::RuleHistory::new(Arc::from(h.rule_id.as_str()), applications);
        if let Some(last) = &h.last_applied_at {
            let last = timestamp(&format!("{at}.last_applied_at"), last)?;
            if history.last() != Some(last) {
                history.record(last);
            }
        }
        state.rules.push(history);
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_rules_and_config_round_trip_through_the_contract() {
        let file = domain::RuleFile::example().unwrap();
        for r in &file.rules {
            assert_eq!(&rule(&rule_to_pb(r)).unwrap(), r, "rule {}", r.id);
        }
        let default = domain::ScoringConfig::default();
        assert_eq!(
            config(&config_to_pb(&file.config), &default).unwrap(),
            file.config
        );
        let old_client = pb::ScoringConfig {
            dedup_horizon: None,
            dedup_window_events: 0,
            max_rule_window: None,
            ..config_to_pb(&file.config)
        };
        assert_eq!(
            config(&old_client, &default).unwrap(),
            file.config,
            "absent dedup fields are the defaults"
        );
    }

    /// The hole: a PutConfig that left out auto_create_subjects turned it off (proto3 read
    /// the absent field as false). Absent singular fields now keep the current values.
    #[test]
    fn fields_left_out_keep_the_current_values() {
        let current = domain::ScoringConfig {
            baseline: 5.0,
            min_score: -10.0,
            max_score: 10.0,
            auto_create_subjects: true,
            decay: domain::Decay {
                half_life: Some(domain::Duration::from_days(9)),
            },
            ..domain::ScoringConfig::default()
        };
        let sparse = pb::ScoringConfig {
            tiers: vec![pb::Tier {
                name: "T".into(),
                min_score: -10.0,
            }],
            ..pb::ScoringConfig::default()
        };
        let merged = config(&sparse, &current).unwrap();
        assert!(merged.auto_create_subjects);
        assert_eq!(
            (merged.baseline, merged.min_score, merged.max_score),
            (5.0, -10.0, 10.0)
        );
        assert_eq!(merged.decay, current.decay);
        assert_eq!(merged.dedup_window_events, current.dedup_window_events);
        let explicit = pb::ScoringConfig {
            auto_create_subjects: Some(false),
            baseline: Some(0.0),
            decay: Some(pb::Decay { half_life: None }),
            ..sparse
        };
        let merged = config(&explicit, &current).unwrap();
        assert!(!merged.auto_create_subjects);
        assert_eq!(merged.baseline, 0.0);
        assert_eq!(
            merged.decay.half_life, None,
            "a sent Decay without half_life: off"
        );
    }

    #[test]
    #[allow(deprecated, reason = "the deprecated digests field is still read")]
    fn a_state_with_its_dedup_window_round_trips_through_the_contract() {
        let t = domain::Timestamp::from_unix_seconds;
        let mut s = domain::SubjectState::new("S", 950.0, Arc::from("C"), t(100));
        for (i, at) in [40, 90, 100].into_iter().enumerate() {
            s.dedup.record(
                t(at),
                domain::event_digest(&format!("e{i}")),
                t(100),
                domain::Duration::from_secs(50),
                2,
            );
        }
        s.rules
            .push(domain::RuleHistory::new(Arc::from("late"), vec![t(90)]));
        assert_eq!(s.dedup.floor(), Some(t(50)));
        assert_eq!(state(&state_to_pb(&s)).unwrap(), s);

        let mut legacy = state_to_pb(&s);
        legacy.recent_events.clear();
        legacy.applied_event_digests = vec![domain::event_digest("old").to_be_bytes().to_vec()];
        let restored = state(&legacy).unwrap();
        assert!(
            restored.dedup.contains(domain::event_digest("old")),
            "a deprecated digest is kept, at the latest event time"
        );
        legacy.applied_event_digests = vec![vec![1, 2, 3]];
        assert!(
            state(&legacy)
                .unwrap_err()
                .to_string()
                .contains("applied_event_digests[0]")
        );
    }

    #[test]
    fn times_convert_exactly_including_before_1970() {
        for ns in [0, 1, -1, 1_767_261_600_123_456_789, -86_400_000_000_001] {
            let t = domain::Timestamp::from_nanos(ns);
            assert_eq!(timestamp("t", &timestamp_to_pb(t)).unwrap(), t);
        }
        let bad = prost_types::Timestamp {
            seconds: 0,
            nanos: -1,
        };
        assert_eq!(
            timestamp("occurred_at", &bad).unwrap_err().field,
            "occurred_at"
        );
        let huge = prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert!(timestamp("t", &huge).unwrap_err().problem.contains("1678"));
        let negative = prost_types::Duration {
            seconds: -1,
            nanos: 0,
        };
        assert_eq!(
            duration("cooldown", &negative).unwrap_err().to_string(),
            "cooldown: must not be negative"
        );
        let overfull = prost_types::Duration {
            seconds: 1,
            nanos: 1_000_000_000,
        };
        assert!(
            duration("cap.window", &overfull)
                .unwrap_err()
                .problem
                .contains("nanos")
        );
    }

    #[test]
    fn payload_values_round_trip() {
        let event = domain::Event::new("e", "s", "t", "", domain::Timestamp::from_nanos(5))
            .with("n", 1.5)
            .with("list", vec!["a", "b"])
            .with(
                "nested",
                domain::Value::Map([("k".to_owned(), domain::Value::Bool(true))].into()),
            )
            .with("nothing", domain::Value::Null);
        assert_eq!(payload(payload_to_pb(&event.payload)), event.payload);
    }

    #[test]
    fn list_kinds_round_trip_and_unspecified_is_refused() {
        for k in 1..=2 {
            assert_eq!(i32::from(list_kind_to_pb(list_kind("kind", k).unwrap())), k);
        }
        assert!(
            list_kind("kind", 0)
                .unwrap_err()
                .to_string()
                .starts_with("kind: is required")
        );
        assert_eq!(
            list_kind("kind", 9).unwrap_err().to_string(),
            "kind: 9 is not a list kind"
        );
    }

    #[test]
    fn bad_messages_name_the_field() {
        let e = pb::Event {
            event_id: "e".into(),
            subject_id: "s".into(),
            event_type: "t".into(),
            ..Default::default()
        };
        assert_eq!(
            event(&e).unwrap_err().to_string(),
            "occurred_at: is required"
        );
        let e = pb::Event {
            subject_id: "s".into(),
            ..Default::default()
        };
        assert_eq!(event(&e).unwrap_err().field, "event_id");

        let r = pb::Rule {
            id: "r".into(),
            event_type: "t".into(),
            conditions: vec![pb::Condition {
                field: "payload.x".into(),
                op: 0,
                value: None,
            }],
            ..Default::default()
        };
        assert_eq!(
            rule(&r).unwrap_err().to_string(),
            "conditions[0].op: is required"
        );
        let r = pb::Rule {
            status: 42,
            ..Default::default()
        };
        assert!(rule(&r).unwrap_err().to_string().starts_with("status: 42"));
        let r = pb::Rule {
            cap: Some(pb::Cap {
                max: 1,
                window: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            rule(&r).unwrap_err().within("rule").to_string(),
            "rule.cap.window: is required"
        );
    }

    #[test]
    fn unspecified_status_is_draft_and_empty_subtype_is_none() {
        let r = rule(&pb::Rule {
            id: "r".into(),
            event_type: "t".into(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(r.status, domain::RuleStatus::Draft);
        assert_eq!(r.event_subtype, None);
        assert_eq!(r.version, 1);
    }
}
