//! The serde forms of the SDK's types (the `serde` feature). Their JSON is a contract: the
//! Python SDK sends JSON into these types and reads results back as JSON.
//!
//! - Field names are the Rust field names (snake_case), never renamed.
//! - Enums without data are snake_case strings: `"active"`, `"not_in"`, `"too_late"`,
//!   `"business_partner"`, `"event_type"`.
//! - Enums with data ([`OutcomeKind`](crate::OutcomeKind), [`Error`](crate::Error)) are
//!   serde's default, externally tagged, with snake_case variant names: an object with one
//!   key, the variant, holding its fields (`{"duplicate": {"retried": true}}`,
//!   `{"failed": {"unavailable": {"message": "...", "attempts": 6}}}`) or its one value
//!   (`{"input": "..."}`).
//! - Times are RFC 3339 strings (chrono's serde, UTC, `Z`, fractional seconds when there
//!   are some); an absent optional time is `null`.
//! - Durations are a number of seconds (`86400.0`, `0.25`; exact to the nanosecond below
//!   2^23 s, about 97 days, to the microsecond far beyond); a negative, NaN or infinite
//!   number of seconds is refused.
//! - Bytes ([`Analytics::arrow_ipc`](crate::Analytics::arrow_ipc), the digests of a subject
//!   state) are standard base64 strings with padding.
//! - A gRPC code ([`Error::Other`](crate::Error::Other)) is its snake_case name
//!   (`"cancelled"`, `"data_loss"`).
//! - A subject state ([`Simulation::initial_state`](crate::Simulation::initial_state),
//!   [`SimulationResult::final_state`](crate::SimulationResult::final_state)) is an object
//!   with the fields of `credence.v1.SubjectState` (times and bytes as above); `subject_id`
//!   and `score` are required.
//! - `serde_json` payloads are kept as they are; a tuple is an array (`[index, reason]`).
//! - Types a caller builds and sends refuse unknown fields. Their `Option` fields may be left
//!   out (`None`), and so may the fields with a natural default (strings, lists, maps,
//!   page sizes, priorities: empty or 0; a rule's status: `"draft"`; a relation's weight: 1).
//!   Ids, event types, times, points and the like are required ("missing field `x`").
//!   A [`ScoringConfig`](crate::ScoringConfig) replaces the whole config, so the fields whose
//!   omission would silently overwrite a live setting (`baseline`, `min_score`, `max_score`,
//!   `tiers`, `alert_thresholds`, `auto_create_subjects`) are required; the ones whose
//!   absence keeps the node's value (`dedup_horizon`, `max_rule_window`,
//!   `dedup_window_events`) may be left out. A `null` (or absent) `half_life` turns decay
//!   off, as `ScoringConfig::half_life = None` does.
//! - Result types accept unknown fields (a newer node may add some) and require every
//!   non-`Option` field.

use crate::RuleStatus;

/// A rule's status when the JSON leaves it out: what [`Rule::new`](crate::Rule::new) sets.
pub(crate) fn draft() -> RuleStatus {
    RuleStatus::Draft
}

/// A relation's weight when the JSON leaves it out: what
/// [`Relation::new`](crate::Relation::new) sets.
pub(crate) fn unit_weight() -> f64 {
    1.0
}

/// A `Duration` as a number of seconds.
pub(crate) mod secs {
    use std::time::Duration;

    use serde::de::Error as _;
    use serde::{Deserialize as _, Deserializer, Serializer};

    /// A number of seconds as a duration; the error says what is wrong with the number.
    pub(super) fn from_secs(secs: f64) -> Result<Duration, String> {
        const RULE: &str = "a duration is a finite number of seconds, 0 or more";
        if secs.is_nan() {
            Err(format!("duration is NaN: {RULE}"))
        } else if secs.is_infinite() {
            Err(format!("duration is infinite: {RULE}"))
        } else if secs.is_sign_negative() && secs != 0.0 {
            Err(format!("negative duration of {secs} seconds: {RULE}"))
        } else {
            Duration::try_from_secs_f64(secs.abs())
                .map_err(|_| format!("duration of {secs} seconds is too long to hold"))
        }
    }

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        from_secs(f64::deserialize(d)?).map_err(D::Error::custom)
    }

    /// An optional `Duration` as a number of seconds or `null`.
    pub(crate) mod option {
        use std::time::Duration;

        use serde::de::Error as _;
        use serde::{Deserialize as _, Deserializer, Serializer};

        #[allow(
            clippy::ref_option,
            reason = "serde's `with` passes the field by reference"
        )]
        pub(crate) fn serialize<S: Serializer>(
            d: &Option<Duration>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_some(&d.as_secs_f64()),
                None => s.serialize_none(),
            }
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            Option::<f64>::deserialize(d)?
                .map(super::from_secs)
                .transpose()
                .map_err(D::Error::custom)
        }
    }
}

/// Bytes as a standard base64 string with padding (RFC 4648, section 4).
pub(crate) mod base64 {
    use serde::de::Error as _;
    use serde::{Deserialize as _, Deserializer, Serializer};

    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub(super) fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn sextet(c: u8) -> Option<u32> {
        ALPHABET.iter().position(|&a| a == c).map(|p| p as u32)
    }

    pub(super) fn decode(text: &str) -> Result<Vec<u8>, String> {
        let bytes = text.as_bytes();
        if bytes.len() % 4 != 0 {
            return Err(format!(
                "base64 text of {} characters: the length must be a multiple of 4",
                bytes.len()
            ));
        }
        let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
        let quads = bytes.len() / 4;
        for (q, quad) in bytes.chunks(4).enumerate() {
            let padding = quad.iter().rev().take_while(|&&c| c == b'=').count();
            if padding > 2 || (padding > 0 && q + 1 != quads) {
                return Err("base64 padding ('=') is only allowed at the end".to_owned());
            }
            let mut n = 0u32;
            for &c in &quad[..4 - padding] {
                let v = sextet(c)
                    .ok_or_else(|| format!("{:?} is not a base64 character", char::from(c)))?;
                n = (n << 6) | v;
            }
            n <<= 6 * padding;
            let [_, b0, b1, b2] = n.to_be_bytes();
            out.extend_from_slice(&[b0, b1, b2][..3 - padding]);
        }
        Ok(out)
    }

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        decode(&String::deserialize(d)?).map_err(D::Error::custom)
    }
}

/// A gRPC code as its snake_case name.
pub(crate) mod grpc_code {
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize as _, Deserializer, Serializer};
    use tonic::Code;

    const NAMES: [(Code, &str); 17] = [
        (Code::Ok, "ok"),
        (Code::Cancelled, "cancelled"),
        (Code::Unknown, "unknown"),
        (Code::InvalidArgument, "invalid_argument"),
        (Code::DeadlineExceeded, "deadline_exceeded"),
        (Code::NotFound, "not_found"),
        (Code::AlreadyExists, "already_exists"),
        (Code::PermissionDenied, "permission_denied"),
        (Code::ResourceExhausted, "resource_exhausted"),
        (Code::FailedPrecondition, "failed_precondition"),
        (Code::Aborted, "aborted"),
        (Code::OutOfRange, "out_of_range"),
        (Code::Unimplemented, "unimplemented"),
        (Code::Internal, "internal"),
        (Code::Unavailable, "unavailable"),
        (Code::DataLoss, "data_loss"),
        (Code::Unauthenticated, "unauthenticated"),
    ];

    #[allow(
        clippy::trivially_copy_pass_by_ref,
        reason = "serde's `with` passes the field by reference"
    )]
    pub(crate) fn serialize<S: Serializer>(code: &Code, s: S) -> Result<S::Ok, S::Error> {
        let name = NAMES
            .iter()
            .find(|(c, _)| c == code)
            .map(|(_, name)| *name)
            .ok_or_else(|| S::Error::custom(format!("gRPC code {code:?} has no name")))?;
        s.serialize_str(name)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Code, D::Error> {
        let name = String::deserialize(d)?;
        NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(code, _)| *code)
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "unknown gRPC code {name:?}: expected one of {}",
                    NAMES.map(|(_, n)| n).join(", ")
                ))
            })
    }
}

/// The generated `SubjectState`s of a simulation as plain JSON objects: the fields of
/// `credence.v1.SubjectState`, times as RFC 3339 strings, bytes as base64.
pub(crate) mod subject_states {
    use chrono::{DateTime, Utc};
    use credence_proto::v1 as pb;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::base64;
    use crate::time::{time, time_opt, timestamp};

    /// Bytes, as base64.
    #[derive(Serialize, Deserialize)]
    #[serde(transparent)]
    struct Bytes(#[serde(with = "base64")] Vec<u8>);

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct State {
        subject_id: String,
        score: f64,
        #[serde(default)]
        tier: String,
        #[serde(default)]
        last_event_time: Option<DateTime<Utc>>,
        #[serde(default)]
        last_event_id: String,
        #[serde(default)]
        applied_events: u64,
        #[serde(default)]
        config_version: u32,
        /// Deprecated in the contract (read, never written), carried so nothing is lost.
        #[serde(default)]
        applied_event_digests: Vec<Bytes>,
        #[serde(default)]
        rules: Vec<RuleHistory>,
        #[serde(default)]
        dedup_floor: Option<DateTime<Utc>>,
        #[serde(default)]
        recent_events: Vec<AppliedEvent>,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RuleHistory {
        rule_id: String,
        #[serde(default)]
        last_applied_at: Option<DateTime<Utc>>,
        #[serde(default)]
        applications: Vec<DateTime<Utc>>,
    }

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct AppliedEvent {
        #[serde(default)]
        occurred_at: Option<DateTime<Utc>>,
        digest: Bytes,
    }

    /// The JSON form of a generated state. Every field is named (no `..`), so a field added
    /// to the contract fails to compile here instead of being dropped.
    #[allow(deprecated, reason = "the deprecated digests are carried, not used")]
    fn to_json(s: &pb::SubjectState) -> crate::Result<State> {
        let pb::SubjectState {
            subject_id,
            score,
            tier,
            last_event_time,
            last_event_id,
            applied_events,
            config_version,
            applied_event_digests,
            rules,
            dedup_floor,
            recent_events,
        } = s;
        Ok(State {
            subject_id: subject_id.clone(),
            score: *score,
            tier: tier.clone(),
            last_event_time: time_opt(last_event_time.as_ref())?,
            last_event_id: last_event_id.clone(),
            applied_events: *applied_events,
            config_version: *config_version,
            applied_event_digests: applied_event_digests
                .iter()
                .map(|d| Bytes(d.clone()))
                .collect(),
            rules: rules
                .iter()
                .map(|r| {
                    let pb::RuleHistory {
                        rule_id,
                        last_applied_at,
                        applications,
                    } = r;
                    Ok(RuleHistory {
                        rule_id: rule_id.clone(),
                        last_applied_at: time_opt(last_applied_at.as_ref())?,
                        applications: applications.iter().map(time).collect::<Result<_, _>>()?,
                    })
                })
                .collect::<crate::Result<_>>()?,
            dedup_floor: time_opt(dedup_floor.as_ref())?,
            recent_events: recent_events
                .iter()
                .map(|e| {
                    let pb::AppliedEvent {
                        occurred_at,
                        digest,
                    } = e;
                    Ok(AppliedEvent {
                        occurred_at: time_opt(occurred_at.as_ref())?,
                        digest: Bytes(digest.clone()),
                    })
                })
                .collect::<crate::Result<_>>()?,
        })
    }

    #[allow(deprecated, reason = "the deprecated digests are carried, not used")]
    fn from_json(s: State) -> pb::SubjectState {
        pb::SubjectState {
            subject_id: s.subject_id,
            score: s.score,
            tier: s.tier,
            last_event_time: s.last_event_time.map(timestamp),
            last_event_id: s.last_event_id,
            applied_events: s.applied_events,
            config_version: s.config_version,
            applied_event_digests: s.applied_event_digests.into_iter().map(|b| b.0).collect(),
            rules: s
                .rules
                .into_iter()
                .map(|r| pb::RuleHistory {
                    rule_id: r.rule_id,
                    last_applied_at: r.last_applied_at.map(timestamp),
                    applications: r.applications.into_iter().map(timestamp).collect(),
                })
                .collect(),
            dedup_floor: s.dedup_floor.map(timestamp),
            recent_events: s
                .recent_events
                .into_iter()
                .map(|e| pb::AppliedEvent {
                    occurred_at: e.occurred_at.map(timestamp),
                    digest: e.digest.0,
                })
                .collect(),
        }
    }

    pub(crate) fn serialize<S: Serializer>(
        states: &[pb::SubjectState],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let states = states
            .iter()
            .map(to_json)
            .collect::<crate::Result<Vec<_>>>()
            .map_err(S::Error::custom)?;
        s.collect_seq(states)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<pb::SubjectState>, D::Error> {
        Ok(Vec::<State>::deserialize(d)?
            .into_iter()
            .map(from_json)
            .collect())
    }
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use credence_proto::v1 as pb;
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use crate::{
        Condition, Error, Event, Explanation, Location, Operator, Outcome, OutcomeKind, Relation,
        RelationKind, Rule, RuleStatus, ScoreChange, ScoreSnapshot, ScoringConfig, Simulation,
        Tier,
    };

    fn at(seconds: i64, nanos: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, nanos).expect("in range")
    }

    /// `value` to JSON text and back.
    fn round_trip<T: Serialize + DeserializeOwned>(value: &T) -> T {
        let text = serde_json::to_string(value).expect("serializes");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e} reading back {text}"))
    }

    /// The message of the error `json` gives when read as a `T`.
    fn refusal<T: DeserializeOwned + std::fmt::Debug>(json: serde_json::Value) -> String {
        serde_json::from_value::<T>(json)
            .expect_err("must be refused")
            .to_string()
    }

    fn full_rule() -> Rule {
        let mut rule = Rule::new("late_payment", "financial", -50.5)
            .name("Late payment")
            .description("A payment more than a month late.")
            .status(RuleStatus::Active)
            .subtype("late_payment")
            .condition(Condition::new("payload.days_late", Operator::Gte, 30))
            .condition(Condition::new(
                "subject.region",
                Operator::NotIn,
                json!(["north", "east"]),
            ))
            .condition(Condition::new(
                "payload.note",
                Operator::Exists,
                json!(null),
            ))
            .multiplier(Condition::new("payload.amount", Operator::Gt, 1000.5), 1.5)
            .cooldown(Duration::from_millis(86_400_250))
            .cap(3, Duration::from_secs(30 * 86_400))
            .valid(Some(at(1_767_225_600, 0)), Some(at(1_798_761_600, 500)))
            .priority(-2);
        rule.version = 7;
        rule.updated_at = Some(at(1_767_261_600, 123_456_789));
        rule
    }

    #[test]
    fn every_data_type_serializes_and_deserializes() {
        fn both<T: Serialize + DeserializeOwned>() {}
        macro_rules! all_of {
            ($($t:ident),+ $(,)?) => { $(both::<crate::$t>();)+ };
        }
        all_of!(
            Alert,
            AggregateGroupBy,
            AggregateQuery,
            AggregateRow,
            AggregateWindow,
            Analytics,
            Association,
            Cap,
            Condition,
            Contributor,
            Error,
            Event,
            EventOutcome,
            EventQuery,
            EventResult,
            ExplainQuery,
            Explanation,
            HistoryQuery,
            ListEntry,
            ListEntryQuery,
            ListKind,
            Location,
            Multiplier,
            Neighbor,
            NeighborQuery,
            Neighbors,
            Operator,
            Outcome,
            OutcomeKind,
            Path,
            PathStep,
            ProducerStats,
            Profile,
            ProfileOutcome,
            ProfileResult,
            PublishResult,
            Relation,
            RelationKey,
            RelationKind,
            RelationsResult,
            RetryPolicy,
            Rule,
            RuleList,
            RuleQuery,
            RuleStatus,
            ScoreChange,
            ScorePoint,
            ScoreSnapshot,
            ScoringConfig,
            Simulation,
            SimulationResult,
            StreamSummary,
            SubjectQuery,
            SubjectSummary,
            SubjectView,
            Tier,
            TierCount,
            TierDistribution,
            Transport,
            UpsertResult,
        );
        both::<crate::Page<crate::Event>>();
    }

    #[test]
    fn a_full_event_round_trips() {
        let mut event = Event::new("e-1", "subject-0001", "financial", at(1_767_261_600, 5))
            .subtype("late_payment")
            .source_system("bank")
            .location(Location {
                region: "north".to_owned(),
                district: "d-3".to_owned(),
                lat: 59.437_1,
                lon: 0.1 + 0.2,
            })
            .payload(json!({"days_late": 45, "amount": 1e-7, "tags": ["a", null], "x": {}}))
            .evidence_uri("https://example.invalid/e-1");
        event.received_at = Some(at(1_767_261_601, 999_999_999));
        assert_eq!(round_trip(&event), event);
    }

    #[test]
    fn a_full_rule_round_trips() {
        let rule = full_rule();
        assert_eq!(round_trip(&rule), rule);
    }

    #[test]
    fn a_config_with_tiers_and_half_life_round_trips() {
        let config = ScoringConfig {
            version: 3,
            baseline: 1000.0,
            min_score: 0.0,
            max_score: 2000.0,
            tiers: vec![
                Tier {
                    name: "E".to_owned(),
                    min_score: 0.0,
                },
                Tier {
                    name: "A".to_owned(),
                    min_score: 1300.5,
                },
            ],
            half_life: Some(Duration::from_secs(90 * 86_400)),
            alert_thresholds: vec![500.0, 800.25],
            auto_create_subjects: false,
            dedup_horizon: Some(Duration::from_secs(7 * 86_400)),
            dedup_window_events: 64,
            max_rule_window: Some(Duration::from_secs(365 * 86_400)),
            updated_at: Some(at(1_767_261_600, 0)),
        };
        assert_eq!(round_trip(&config), config);
        let value = serde_json::to_value(&config).expect("serializes");
        assert_eq!(value["half_life"], json!(7_776_000.0));
    }

    #[test]
    fn an_explanation_round_trips() {
        let change = ScoreChange {
            event_id: "e-1".to_owned(),
            subject_id: "subject-0001".to_owned(),
            rule_id: "late_payment".to_owned(),
            rule_version: 2,
            config_version: 1,
            old_score: 1000.0,
            new_score: 925.125,
            delta: -74.875,
            at: at(1_767_261_600, 42),
            reason: "Late payment".to_owned(),
            inputs: json!({"subject.association": 0.25, "subject.lists": ["block"]})
                .as_object()
                .cloned()
                .expect("an object"),
            factor: 1.5,
        };
        let explanation = Explanation {
            snapshot: Some(ScoreSnapshot {
                subject_id: "subject-0001".to_owned(),
                score: 925.125,
                tier: "C".to_owned(),
                last_event_time: Some(at(1_767_261_600, 42)),
                last_event_id: "e-1".to_owned(),
                applied_events: 1,
                config_version: 1,
                updated_at: None,
            }),
            changes: vec![change.clone()],
            next_page_token: Some("t-2".to_owned()),
        };
        assert_eq!(round_trip(&change), change);
        assert_eq!(round_trip(&explanation), explanation);
    }

    #[test]
    fn a_rule_has_the_documented_json_shape() {
        let rule = Rule::new("volunteer", "social", 20.0)
            .status(RuleStatus::Active)
            .condition(Condition::new(
                "payload.hours",
                Operator::NotIn,
                json!([0, 1]),
            ))
            .multiplier(
                Condition::new("subject.flags", Operator::Contains, "student"),
                2.0,
            )
            .cooldown(Duration::from_millis(1_500))
            .cap(2, Duration::from_secs(86_400))
            .valid(
                Some(at(1_767_225_600, 0)),
                Some(at(1_767_225_600, 250_000_000)),
            );
        let expected = json!({
            "id": "volunteer",
            "version": 0,
            "name": "",
            "description": "",
            "status": "active",
            "event_type": "social",
            "event_subtype": "",
            "conditions": [{"field": "payload.hours", "op": "not_in", "value": [0, 1]}],
            "points": 20.0,
            "multipliers": [
                {"when": {"field": "subject.flags", "op": "contains", "value": "student"},
                 "factor": 2.0}
            ],
            "cooldown": 1.5,
            "cap": {"max": 2, "window": 86_400.0},
            "valid_from": "2026-01-01T00:00:00Z",
            "valid_until": "2026-01-01T00:00:00.250Z",
            "priority": 0,
            "updated_at": null,
        });
        assert_eq!(serde_json::to_value(&rule).expect("serializes"), expected);
        let back: Rule = serde_json::from_value(expected).expect("reads back");
        assert_eq!(back, rule);
    }

    #[test]
    fn left_out_fields_take_the_builders_defaults() {
        let rule: Rule =
            serde_json::from_value(json!({"id": "r", "event_type": "social", "points": 5}))
                .expect("reads");
        assert_eq!(rule, Rule::new("r", "social", 5.0));
        let event: Event = serde_json::from_value(json!({
            "event_id": "e", "subject_id": "s", "event_type": "online",
            "occurred_at": "2026-01-01T01:00:00+01:00",
        }))
        .expect("reads");
        assert_eq!(event, Event::new("e", "s", "online", at(1_767_225_600, 0)));
        let relation: Relation = serde_json::from_value(
            json!({"subject_id": "a", "other_subject_id": "b", "kind": "business_partner"}),
        )
        .expect("reads");
        assert_eq!(
            relation,
            Relation::new("a", "b", RelationKind::BusinessPartner)
        );
        let policy: crate::RetryPolicy =
            serde_json::from_value(json!({"max_attempts": 2, "max_backoff": 0.5})).expect("reads");
        assert_eq!(
            policy,
            crate::RetryPolicy {
                max_attempts: 2,
                max_backoff: Duration::from_millis(500),
                ..crate::RetryPolicy::default()
            }
        );
        assert_eq!(
            serde_json::from_value::<Simulation>(json!({})).expect("reads"),
            Simulation::default()
        );
    }

    #[test]
    fn unknown_and_missing_fields_are_refused_by_name() {
        let unknown = refusal::<Rule>(json!({
            "id": "r", "event_type": "social", "points": 5, "pionts": 6,
        }));
        assert!(unknown.contains("unknown field `pionts`"), "{unknown}");
        let nested = refusal::<Simulation>(json!({"rules": [
            {"id": "r", "event_type": "social", "points": 5, "cap": {"max": 1, "window": 1, "size": 2}}
        ]}));
        assert!(nested.contains("unknown field `size`"), "{nested}");
        let missing = refusal::<Rule>(json!({"id": "r", "event_type": "social"}));
        assert!(missing.contains("missing field `points`"), "{missing}");
        let config = refusal::<ScoringConfig>(json!({
            "baseline": 1000, "min_score": 0, "max_score": 2000, "tiers": [],
            "alert_thresholds": [],
        }));
        assert!(
            config.contains("missing field `auto_create_subjects`"),
            "{config}"
        );
        let op = refusal::<Condition>(json!({"field": "f", "op": "NotIn"}));
        assert!(op.contains("unknown variant `NotIn`"), "{op}");
    }

    #[test]
    fn bad_durations_are_refused_with_the_reason() {
        let negative = refusal::<Rule>(json!({
            "id": "r", "event_type": "social", "points": 5, "cooldown": -5,
        }));
        assert!(
            negative.contains("negative duration of -5 seconds"),
            "{negative}"
        );
        let window = refusal::<crate::Cap>(json!({"max": 1, "window": -0.5}));
        assert!(window.contains("negative duration"), "{window}");
        let text = refusal::<crate::Cap>(json!({"max": 1, "window": "1d"}));
        assert!(text.contains("expected f64"), "{text}");
        assert!(
            super::secs::from_secs(f64::NAN)
                .unwrap_err()
                .contains("NaN")
        );
        assert!(
            super::secs::from_secs(f64::INFINITY)
                .unwrap_err()
                .contains("infinite")
        );
        assert!(
            super::secs::from_secs(1e30)
                .unwrap_err()
                .contains("too long")
        );
        assert_eq!(super::secs::from_secs(-0.0), Ok(Duration::ZERO));
        assert_eq!(super::secs::from_secs(0.3), Ok(Duration::from_millis(300)));
        let none: crate::Rule = serde_json::from_value(
            json!({"id": "r", "event_type": "social", "points": 5, "cooldown": null}),
        )
        .expect("null is no cooldown");
        assert_eq!(none.cooldown, None);
    }

    #[test]
    fn base64_matches_the_rfc_vectors_and_refuses_bad_text() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(super::base64::encode(plain.as_bytes()), encoded);
            assert_eq!(
                super::base64::decode(encoded).expect("valid"),
                plain.as_bytes()
            );
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(
            super::base64::decode(&super::base64::encode(&all)).expect("valid"),
            all
        );
        assert!(super::base64::decode("Zm9").is_err());
        assert!(super::base64::decode("Zg==Zm9v").is_err());
        assert!(super::base64::decode("Zm9*").is_err());
        assert!(super::base64::decode("Z===").is_err());
    }

    #[test]
    #[allow(deprecated, reason = "the deprecated digests must survive too")]
    fn subject_states_round_trip_as_plain_objects() {
        let ts = |s: i64, n: i32| prost_types::Timestamp {
            seconds: s,
            nanos: n,
        };
        let state = pb::SubjectState {
            subject_id: "subject-0001".to_owned(),
            score: 987.654_321,
            tier: "C".to_owned(),
            last_event_time: Some(ts(1_767_261_600, 7)),
            last_event_id: "e-9".to_owned(),
            applied_events: 9,
            config_version: 2,
            applied_event_digests: vec![vec![1, 2, 3]],
            rules: vec![pb::RuleHistory {
                rule_id: "late_payment".to_owned(),
                last_applied_at: Some(ts(1_767_261_000, 0)),
                applications: vec![ts(1_767_200_000, 0), ts(1_767_261_000, 0)],
            }],
            dedup_floor: Some(ts(1_767_000_000, 0)),
            recent_events: vec![pb::AppliedEvent {
                occurred_at: Some(ts(1_767_261_600, 7)),
                digest: (0..16).collect(),
            }],
        };
        let simulation = Simulation {
            initial_state: vec![state.clone()],
            associations: BTreeMap::from([("subject-0001".to_owned(), 0.5)]),
            ..Simulation::default()
        };
        assert_eq!(round_trip(&simulation), simulation);
        let value = serde_json::to_value(&simulation).expect("serializes");
        let json_state = &value["initial_state"][0];
        assert_eq!(
            json_state["last_event_time"],
            "2026-01-01T10:00:00.000000007Z"
        );
        assert_eq!(
            json_state["recent_events"][0]["digest"],
            "AAECAwQFBgcICQoLDA0ODw=="
        );
        assert_eq!(json_state["applied_event_digests"], json!(["AQID"]));
        let bad = refusal::<Simulation>(
            json!({"initial_state": [{"subject_id": "s", "score": 1, "recent_events": [
                {"digest": "not-base64!!"}
            ]}]}),
        );
        assert!(bad.contains("not a base64 character"), "{bad}");
    }

    #[test]
    fn outcomes_and_errors_are_externally_tagged() {
        let outcomes = [
            (
                OutcomeKind::Duplicate { retried: true },
                json!({"duplicate": {"retried": true}}),
            ),
            (
                OutcomeKind::Rejected {
                    reason: "payload: not an object".to_owned(),
                },
                json!({"rejected": {"reason": "payload: not an object"}}),
            ),
            (
                OutcomeKind::Failed(Error::Unavailable {
                    message: "down".to_owned(),
                    attempts: 6,
                }),
                json!({"failed": {"unavailable": {"message": "down", "attempts": 6}}}),
            ),
            (
                OutcomeKind::Failed(Error::Other {
                    code: tonic::Code::DataLoss,
                    message: "lost".to_owned(),
                    attempts: 1,
                }),
                json!({"failed": {"other": {"code": "data_loss", "message": "lost", "attempts": 1}}}),
            ),
            (
                OutcomeKind::Failed(Error::ResourceExhausted {
                    message: "slow down".to_owned(),
                    retry_after: Some(Duration::from_millis(1_500)),
                    attempts: 1,
                }),
                json!({"failed": {"resource_exhausted":
                    {"message": "slow down", "retry_after": 1.5, "attempts": 1}}}),
            ),
            (
                OutcomeKind::Failed(Error::Input("empty event id".to_owned())),
                json!({"failed": {"input": "empty event id"}}),
            ),
        ];
        for (kind, expected) in outcomes {
            let outcome = Outcome {
                event_id: "e-1".to_owned(),
                kind,
            };
            let value = serde_json::to_value(&outcome).expect("serializes");
            assert_eq!(value, json!({"event_id": "e-1", "kind": expected}));
            assert_eq!(round_trip(&outcome), outcome);
        }
        let code =
            refusal::<Error>(json!({"other": {"code": "Cancelled", "message": "", "attempts": 1}}));
        assert!(code.contains("unknown gRPC code \"Cancelled\""), "{code}");
    }
}
