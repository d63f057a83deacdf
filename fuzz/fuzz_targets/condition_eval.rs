//! The path and condition evaluator on arbitrary events, subjects and conditions: a rule
//! made of the input's conditions and multipliers (paths mostly among the known ones, some
//! arbitrary text), compiled, and applied by the engine to the input's event and subject
//! context. Nothing may panic; and:
//! - a path that parses prints as text that parses back to the same path;
//! - applying is deterministic (the same state and event give the same bits);
//! - the score stays finite and inside the config's bounds.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use credence_scorer::{
    Condition, Engine, Event, FieldPath, ListEntry, ListKind, Location, Multiplier, Operator,
    Outcomes, Profile, Rule, RuleSet, RuleStatus, ScoringConfig, SubjectContext, Timestamp, Value,
};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

/// The deepest payload ingestion accepts (`ingest.max_payload_depth`); deeper input values
/// are cut there, as nothing deeper reaches the engine.
const MAX_DEPTH: usize = 8;

const PATHS: [&str; 16] = [
    "payload.amount",
    "payload.kind",
    "payload.a.b",
    "payload.tags",
    "event.event_type",
    "event.event_subtype",
    "event.source_system",
    "event.location.region",
    "event.location.district",
    "subject.region",
    "subject.district",
    "subject.occupation",
    "subject.birth_year",
    "subject.flags",
    "subject.lists",
    "subject.association",
];

#[derive(Arbitrary, Debug)]
enum FValue {
    Null,
    Bool(bool),
    Number(f64),
    Small(i8),
    String(String),
    List(Vec<FValue>),
    Map(Vec<(String, FValue)>),
}

impl FValue {
    fn value(&self, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return Value::Null;
        }
        match self {
            FValue::Null => Value::Null,
            FValue::Bool(b) => Value::Bool(*b),
            FValue::Number(n) => Value::Number(*n),
            FValue::Small(n) => Value::Number(f64::from(*n)),
            FValue::String(s) => Value::String(s.clone()),
            FValue::List(items) => Value::List(items.iter().map(|v| v.value(depth + 1)).collect()),
            FValue::Map(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.value(depth + 1)))
                    .collect(),
            ),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum FPath {
    Known(u8),
    Text(String),
}

#[derive(Arbitrary, Debug)]
struct FCondition {
    path: FPath,
    op: u8,
    value: FValue,
}

impl FCondition {
    fn condition(&self) -> Condition {
        const OPS: [Operator; 10] = [
            Operator::Eq,
            Operator::Ne,
            Operator::Gt,
            Operator::Gte,
            Operator::Lt,
            Operator::Lte,
            Operator::In,
            Operator::NotIn,
            Operator::Contains,
            Operator::Exists,
        ];
        let field = match &self.path {
            FPath::Known(i) => PATHS[usize::from(*i) % PATHS.len()].to_owned(),
            FPath::Text(t) => t.clone(),
        };
        Condition {
            field,
            op: OPS[usize::from(self.op) % OPS.len()],
            value: self.value.value(1),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    conditions: Vec<FCondition>,
    multipliers: Vec<(FCondition, f64)>,
    points: f64,
    event_subtype: String,
    source_system: String,
    location: Option<(String, String)>,
    payload: Vec<(String, FValue)>,
    occurred_at: i64,
    profile: Option<(Option<String>, Option<String>, Option<i32>, Vec<String>)>,
    lists: Vec<(bool, Option<i64>)>,
    association: Option<f64>,
    extra_path: String,
}

fuzz_target!(|input: Input| {
    // Path text round trip, on arbitrary text and on each condition's path.
    for text in
        std::iter::once(input.extra_path.as_str()).chain(input.conditions.iter().filter_map(|c| {
            match &c.path {
                FPath::Text(t) => Some(t.as_str()),
                FPath::Known(_) => None,
            }
        }))
    {
        if let Ok(path) = FieldPath::parse(text) {
            assert_eq!(
                FieldPath::parse(&path.to_string()).as_ref(),
                Ok(&path),
                "a parsed path does not parse back from its text"
            );
        }
    }

    let mut rule = Rule::new("fuzz", "fuzzed", input.points);
    rule.status = RuleStatus::Active;
    rule.conditions = input.conditions.iter().map(FCondition::condition).collect();
    rule.multipliers = input
        .multipliers
        .iter()
        .map(|(when, factor)| Multiplier {
            when: when.condition(),
            factor: *factor,
        })
        .collect();
    let Ok(rules) = RuleSet::compile(1, vec![rule]) else {
        return;
    };
    let config = ScoringConfig::default();
    let (min, max) = (config.min_score, config.max_score);
    let Ok(engine) = Engine::new(Arc::new(rules), Arc::new(config)) else {
        panic!("the default config does not make an engine");
    };

    let payload: BTreeMap<String, Value> = input
        .payload
        .iter()
        .map(|(k, v)| (k.clone(), v.value(1)))
        .collect();
    let t = Timestamp::from_nanos(input.occurred_at);
    let event = Event {
        event_id: "e1".into(),
        subject_id: "s1".into(),
        event_type: "fuzzed".into(),
        event_subtype: input.event_subtype.clone(),
        source_system: input.source_system.clone(),
        occurred_at: t,
        location: input
            .location
            .clone()
            .map(|(region, district)| Location { region, district }),
        payload,
    };
    let ctx = SubjectContext {
        profile: input
            .profile
            .clone()
            .map(|(region, district, birth_year, flags)| Profile {
                region,
                district,
                occupation: None,
                birth_year,
                flags,
            }),
        lists: input
            .lists
            .iter()
            .map(|&(block, expires)| ListEntry {
                kind: if block {
                    ListKind::Block
                } else {
                    ListKind::Allow
                },
                expires_at: expires.map(Timestamp::from_nanos),
            })
            .collect(),
        association: input.association,
    };
    let Some(start) = engine.new_subject("s1", t) else {
        return;
    };
    let mut first = start.clone();
    let mut second = start;
    let mut out = Outcomes::default();
    let a = engine.apply(&mut first, &event, &ctx, &mut out);
    let b = engine.apply(&mut second, &event, &ctx, &mut Outcomes::default());
    assert_eq!(a, b, "the same event on the same state had two outcomes");
    assert_eq!(
        first.score.to_bits(),
        second.score.to_bits(),
        "the same event on the same state gave two scores"
    );
    assert!(
        first.score.is_finite() && (min..=max).contains(&first.score),
        "score {} outside [{min}, {max}]",
        first.score
    );
});
