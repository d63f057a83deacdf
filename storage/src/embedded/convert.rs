//! Conversions between protobuf values and what the tables store: nanosecond integers for
//! timestamps, JSON text for `google.protobuf.Struct` and maps.

use std::collections::BTreeMap;

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::error::{Result, StorageError};

const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// Nanoseconds since the epoch of a protobuf timestamp; refused outside the years 1678 to
/// 2261 (what 64 bits of nanoseconds hold).
pub(super) fn nanos(ts: &prost_types::Timestamp, field: &str) -> Result<i64> {
    ts.seconds
        .checked_mul(NANOS_PER_SECOND)
        .and_then(|n| n.checked_add(i64::from(ts.nanos)))
        .ok_or_else(|| {
            StorageError::Invalid(format!(
                "{field} {}s is outside the storable range (years 1678 to 2261)",
                ts.seconds
            ))
        })
}

/// Like [`nanos`] for an optional timestamp.
pub(super) fn opt_nanos(ts: Option<&prost_types::Timestamp>, field: &str) -> Result<Option<i64>> {
    ts.map(|t| nanos(t, field)).transpose()
}

/// The protobuf timestamp of nanoseconds since the epoch.
pub(super) fn timestamp(nanos: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: nanos.div_euclid(NANOS_PER_SECOND),
        nanos: nanos.rem_euclid(NANOS_PER_SECOND) as i32,
    }
}

/// Serialises a `Struct` as a JSON object (numbers exact; non-finite numbers, which JSON
/// cannot hold and ingestion refuses, become null).
pub(super) struct StructJson<'a>(pub(super) &'a Struct);

struct ValueJson<'a>(&'a Value);

impl Serialize for StructJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.fields.len()))?;
        for (k, v) in &self.0.fields {
            map.serialize_entry(k, &ValueJson(v))?;
        }
        map.end()
    }
}

impl Serialize for ValueJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match &self.0.kind {
            Some(Kind::NumberValue(n)) if n.is_finite() => s.serialize_f64(*n),
            None | Some(Kind::NullValue(_) | Kind::NumberValue(_)) => s.serialize_unit(),
            Some(Kind::StringValue(v)) => s.serialize_str(v),
            Some(Kind::BoolValue(b)) => s.serialize_bool(*b),
            Some(Kind::StructValue(st)) => StructJson(st).serialize(s),
            Some(Kind::ListValue(list)) => {
                let mut seq = s.serialize_seq(Some(list.values.len()))?;
                for v in &list.values {
                    seq.serialize_element(&ValueJson(v))?;
                }
                seq.end()
            }
        }
    }
}

/// The JSON text of a `Struct`.
pub(super) fn struct_to_json(value: &Struct) -> Result<String> {
    serde_json::to_string(&StructJson(value))
        .map_err(|e| StorageError::Backend(format!("encoding a payload as JSON: {e}")))
}

/// A `Struct` from its JSON text.
pub(super) fn struct_from_json(text: &str) -> Result<Struct> {
    let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| StorageError::Backend(format!("stored payload is not a JSON object: {e}")))?;
    Ok(object_to_struct(parsed))
}

fn object_to_struct(object: serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: object
            .into_iter()
            .map(|(k, v)| (k, json_to_value(v)))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn json_to_value(value: serde_json::Value) -> Value {
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(object) => Kind::StructValue(object_to_struct(object)),
    };
    Value { kind: Some(kind) }
}

/// JSON text of any serialisable value (maps and lists of profiles, rules, states).
pub(super) fn to_json<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string(value).map_err(|e| super::duck::json_error(what, &e))
}

/// A value from JSON text written by [`to_json`].
pub(super) fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| super::duck::json_error(what, &e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn timestamps_and_structs_round_trip() {
        for n in [0, 1, -1, 1_767_261_600_123_456_789, -1_000_000_001] {
            assert_eq!(nanos(&timestamp(n), "t").unwrap(), n);
        }
        let mut inner = Struct::default();
        inner.fields.insert(
            "x".into(),
            Value {
                kind: Some(Kind::NumberValue(0.1 + 0.2)),
            },
        );
        let mut s = Struct::default();
        s.fields.insert(
            "n".into(),
            Value {
                kind: Some(Kind::NumberValue(45.0)),
            },
        );
        s.fields.insert(
            "tiny".into(),
            Value {
                kind: Some(Kind::NumberValue(5e-324)),
            },
        );
        s.fields.insert(
            "s".into(),
            Value {
                kind: Some(Kind::StringValue("é\"".into())),
            },
        );
        s.fields.insert(
            "b".into(),
            Value {
                kind: Some(Kind::BoolValue(true)),
            },
        );
        s.fields.insert(
            "z".into(),
            Value {
                kind: Some(Kind::NullValue(0)),
            },
        );
        s.fields.insert(
            "m".into(),
            Value {
                kind: Some(Kind::StructValue(inner)),
            },
        );
        s.fields.insert(
            "l".into(),
            Value {
                kind: Some(Kind::ListValue(ListValue {
                    values: vec![Value {
                        kind: Some(Kind::NumberValue(-2.5)),
                    }],
                })),
            },
        );
        let text = struct_to_json(&s).unwrap();
        assert_eq!(struct_from_json(&text).unwrap(), s);
    }
}
