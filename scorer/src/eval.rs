//! Condition evaluation over an event and its subject (SCORING.md, "Operators").

use std::cmp::Ordering;

use crate::context::{ListKinds, SubjectContext};
use crate::event::Event;
use crate::path::{EventField, FieldPath, SubjectField};
use crate::rule::Operator;
use crate::time::Timestamp;
use crate::value::Value;

/// A condition with its path parsed once, at compile time.
#[derive(Clone, Debug)]
pub(crate) struct CompiledCondition {
    pub(crate) path: FieldPath,
    pub(crate) op: Operator,
    pub(crate) value: Value,
}

/// What conditions see of the subject while one event is applied.
pub(crate) struct SubjectView<'a> {
    pub(crate) ctx: &'a SubjectContext,
    /// Score after decay, before any rule of the event.
    pub(crate) score: f64,
    /// Tier of that score.
    pub(crate) tier: &'a str,
    /// The event's time (list expiry is checked against it).
    pub(crate) at: Timestamp,
}

/// A resolved field, borrowed where possible so evaluation does not allocate.
enum Operand<'a> {
    Missing,
    Value(&'a Value),
    Str(&'a str),
    Num(f64),
    Strs(&'a [String]),
    Kinds(ListKinds),
}

impl CompiledCondition {
    /// Whether the condition holds for `event` and `subject`.
    pub(crate) fn holds(&self, event: &Event, subject: &SubjectView<'_>) -> bool {
        let operand = resolve(&self.path, event, subject);
        evaluate(self.op, &operand, &self.value)
    }
}

fn non_empty(s: &str) -> Operand<'_> {
    if s.is_empty() {
        Operand::Missing
    } else {
        Operand::Str(s)
    }
}

fn resolve<'a>(path: &'a FieldPath, event: &'a Event, subject: &SubjectView<'a>) -> Operand<'a> {
    match path {
        FieldPath::Payload(keys) => {
            let mut keys = keys.iter();
            let Some(first) = keys.next() else {
                return Operand::Missing;
            };
            let Some(mut current) = event.payload.get(first.as_str()) else {
                return Operand::Missing;
            };
            for key in keys {
                current = match current {
                    Value::Map(map) => match map.get(key.as_str()) {
                        Some(v) => v,
                        None => return Operand::Missing,
                    },
                    _ => return Operand::Missing,
                };
            }
            Operand::Value(current)
        }
        FieldPath::Event(field) => match field {
            EventField::EventType => non_empty(&event.event_type),
            EventField::EventSubtype => non_empty(&event.event_subtype),
            EventField::SourceSystem => non_empty(&event.source_system),
            EventField::Region => event
                .location
                .as_ref()
                .map_or(Operand::Missing, |l| non_empty(&l.region)),
            EventField::District => event
                .location
                .as_ref()
                .map_or(Operand::Missing, |l| non_empty(&l.district)),
        },
        FieldPath::Subject(field) => {
            let profile = subject.ctx.profile.as_ref();
            match field {
                SubjectField::Region | SubjectField::District | SubjectField::Occupation => subject
                    .ctx
                    .profile_text(*field)
                    .map_or(Operand::Missing, Operand::Str),
                SubjectField::BirthYear => profile
                    .and_then(|p| p.birth_year)
                    .map_or(Operand::Missing, |y| Operand::Num(f64::from(y))),
                SubjectField::Flags => Operand::Strs(profile.map_or(&[], |p| p.flags.as_slice())),
                SubjectField::Lists => Operand::Kinds(subject.ctx.lists_at(subject.at)),
                SubjectField::Association => subject
                    .ctx
                    .association
                    .map_or(Operand::Missing, Operand::Num),
                SubjectField::Tier => Operand::Str(subject.tier),
                SubjectField::Score => Operand::Num(subject.score),
            }
        }
    }
}

fn evaluate(op: Operator, operand: &Operand<'_>, value: &Value) -> bool {
    if matches!(operand, Operand::Missing) {
        return false;
    }
    match op {
        Operator::Exists => true,
        Operator::Eq => equals(operand, value),
        Operator::Ne => !equals(operand, value),
        Operator::Gt => order(operand, value) == Some(Ordering::Greater),
        Operator::Gte => matches!(
            order(operand, value),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        Operator::Lt => order(operand, value) == Some(Ordering::Less),
        Operator::Lte => matches!(
            order(operand, value),
            Some(Ordering::Less | Ordering::Equal)
        ),
        Operator::In => list(value).iter().any(|item| equals(operand, item)),
        Operator::NotIn => !list(value).iter().any(|item| equals(operand, item)),
        Operator::Contains => contains(operand, value),
    }
}

fn list(value: &Value) -> &[Value] {
    match value {
        Value::List(items) => items,
        _ => &[],
    }
}

fn equals(operand: &Operand<'_>, value: &Value) -> bool {
    match (operand, value) {
        (Operand::Value(v), _) => *v == value,
        (Operand::Str(s), Value::String(t)) => *s == t,
        (Operand::Num(n), Value::Number(m)) => n == m,
        (Operand::Strs(items), Value::List(others)) => {
            items.len() == others.len()
                && items
                    .iter()
                    .zip(others)
                    .all(|(a, b)| matches!(b, Value::String(b) if a == b))
        }
        (Operand::Kinds(kinds), Value::List(others)) => {
            kinds.names().count() == others.len()
                && kinds
                    .names()
                    .zip(others)
                    .all(|(a, b)| matches!(b, Value::String(b) if a == b))
        }
        _ => false,
    }
}

/// Numbers compare as numbers, strings bytewise; anything else does not compare.
fn order(operand: &Operand<'_>, value: &Value) -> Option<Ordering> {
    let text = match operand {
        Operand::Value(Value::String(s)) => Some(s.as_str()),
        Operand::Str(s) => Some(*s),
        _ => None,
    };
    let number = match operand {
        Operand::Value(Value::Number(n)) | Operand::Num(n) => Some(*n),
        _ => None,
    };
    match value {
        Value::Number(m) => number.and_then(|n| n.partial_cmp(m)),
        Value::String(t) => text.map(|s| s.as_bytes().cmp(t.as_bytes())),
        _ => None,
    }
}

fn contains(operand: &Operand<'_>, value: &Value) -> bool {
    match operand {
        Operand::Strs(items) => matches!(value, Value::String(v) if items.iter().any(|s| s == v)),
        Operand::Kinds(kinds) => matches!(value, Value::String(v) if kinds.names().any(|n| n == v)),
        Operand::Value(Value::List(items)) => items.contains(value),
        Operand::Value(Value::String(s)) => {
            matches!(value, Value::String(v) if s.contains(v.as_str()))
        }
        Operand::Str(s) => matches!(value, Value::String(v) if s.contains(v.as_str())),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{ListEntry, ListKind, Profile};

    fn event() -> Event {
        Event::new(
            "e",
            "s",
            "financial",
            "late_payment",
            Timestamp::from_unix_seconds(1000),
        )
        .with("days", 45.0)
        .with("note", "paid late")
        .with("tags", vec!["a", "b"])
        .with(
            "nested",
            Value::Map([("k".to_owned(), Value::from(2.0))].into()),
        )
        .with("nothing", Value::Null)
    }

    fn ctx() -> SubjectContext {
        SubjectContext {
            profile: Some(Profile {
                region: Some("north".into()),
                birth_year: Some(1990),
                flags: vec!["student".into()],
                ..Profile::default()
            }),
            lists: vec![
                ListEntry {
                    kind: ListKind::Block,
                    expires_at: Some(Timestamp::from_unix_seconds(2000)),
                },
                ListEntry {
                    kind: ListKind::Allow,
                    expires_at: Some(Timestamp::from_unix_seconds(1000)),
                },
            ],
            association: None,
        }
    }

    fn holds(field: &str, op: Operator, value: impl Into<Value>) -> bool {
        let condition = CompiledCondition {
            path: FieldPath::parse(field).unwrap(),
            op,
            value: value.into(),
        };
        let ctx = ctx();
        let view = SubjectView {
            ctx: &ctx,
            score: 950.0,
            tier: "C",
            at: Timestamp::from_unix_seconds(1000),
        };
        condition.holds(&event(), &view)
    }

    #[test]
    fn eq_and_ne() {
        assert!(holds("payload.days", Operator::Eq, 45.0));
        assert!(!holds("payload.days", Operator::Eq, "45"));
        assert!(holds("payload.days", Operator::Ne, 10.0));
        assert!(
            holds("payload.days", Operator::Ne, "45"),
            "a number is never equal to a string"
        );
        assert!(holds("payload.nested.k", Operator::Eq, 2.0));
        assert!(holds("event.event_subtype", Operator::Eq, "late_payment"));
        assert!(holds("subject.region", Operator::Eq, "north"));
        assert!(holds("subject.tier", Operator::Eq, "C"));
        assert!(holds("payload.nothing", Operator::Eq, Value::Null));
    }

    #[test]
    fn ordering_of_numbers_and_strings() {
        assert!(holds("payload.days", Operator::Gt, 30.0));
        assert!(holds("payload.days", Operator::Gte, 45.0));
        assert!(!holds("payload.days", Operator::Gt, 45.0));
        assert!(holds("payload.days", Operator::Lt, 46.0));
        assert!(holds("payload.days", Operator::Lte, 45.0));
        assert!(
            holds("subject.region", Operator::Gt, "middle"),
            "bytewise: n > m"
        );
        assert!(holds("subject.region", Operator::Lt, "northz"));
        assert!(
            !holds("payload.days", Operator::Gt, "1"),
            "number vs string is false"
        );
        assert!(
            !holds("payload.days", Operator::Lt, "zzz"),
            "number vs string is false"
        );
        assert!(
            !holds("subject.region", Operator::Gt, 1.0),
            "string vs number is false"
        );
        assert!(holds("subject.score", Operator::Lt, 1000.0));
        assert!(holds("subject.birth_year", Operator::Gte, 1990.0));
    }

    #[test]
    fn in_and_not_in() {
        assert!(holds("payload.days", Operator::In, vec![10.0, 45.0]));
        assert!(!holds("payload.days", Operator::In, vec![10.0]));
        assert!(holds("payload.days", Operator::NotIn, vec![10.0]));
        assert!(holds(
            "subject.region",
            Operator::In,
            vec!["south", "north"]
        ));
        assert!(!holds("subject.region", Operator::NotIn, vec!["north"]));
    }

    #[test]
    fn contains_on_lists_and_strings() {
        assert!(holds("payload.tags", Operator::Contains, "a"));
        assert!(!holds("payload.tags", Operator::Contains, "c"));
        assert!(holds("payload.note", Operator::Contains, "late"));
        assert!(!holds("payload.days", Operator::Contains, 4.0));
        assert!(holds("subject.flags", Operator::Contains, "student"));
        assert!(!holds("subject.flags", Operator::Contains, "veteran"));
    }

    #[test]
    fn lists_count_until_their_expiry() {
        // block expires after the event, allow expires exactly at it (so no longer counts)
        assert!(holds("subject.lists", Operator::Contains, "block"));
        assert!(!holds("subject.lists", Operator::Contains, "allow"));
        assert!(holds("subject.lists", Operator::Eq, vec!["block"]));
    }

    #[test]
    fn a_missing_path_makes_every_operator_false_but_exists() {
        for field in [
            "payload.absent",
            "payload.days.deeper",
            "subject.occupation",
            "subject.association",
            "event.source_system",
        ] {
            for (op, value) in [
                (Operator::Eq, Value::from(1.0)),
                (Operator::Ne, Value::from(1.0)),
                (Operator::Gt, Value::from(1.0)),
                (Operator::Gte, Value::from(1.0)),
                (Operator::Lt, Value::from(1.0)),
                (Operator::Lte, Value::from(1.0)),
                (Operator::In, Value::from(vec![1.0])),
                (Operator::NotIn, Value::from(vec![1.0])),
                (Operator::Contains, Value::from("x")),
                (Operator::Exists, Value::Null),
            ] {
                assert!(!holds(field, op, value), "{field} {op:?}");
            }
        }
        assert!(holds("payload.days", Operator::Exists, Value::Null));
        assert!(
            holds("payload.nothing", Operator::Exists, Value::Null),
            "a null value resolves"
        );
        assert!(holds("subject.flags", Operator::Exists, Value::Null));
    }
}
