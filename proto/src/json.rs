//! JSON values (`serde_json`) as `google.protobuf.Value` / `Struct` and back.
//!
//! The SDKs take and return payloads, conditions and inputs as plain JSON; the wire carries
//! them as `google.protobuf.Struct`. Both directions live here, beside the generated types,
//! so every client (the Rust SDK, the Python SDK through it, the test harness) converts the
//! same way.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};

/// A JSON value as a `google.protobuf.Value`. Numbers become doubles (the only number a
/// `Value` has); integers beyond 2^53 lose precision as they would in any JSON reader.
#[must_use]
pub fn to_value(json: &serde_json::Value) -> Value {
    let kind = match json {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(to_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(map_to_struct(map)),
    };
    Value { kind: Some(kind) }
}

/// A JSON object as a `google.protobuf.Struct`.
#[must_use]
pub fn map_to_struct(map: &serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect(),
    }
}

/// A JSON value as a `google.protobuf.Struct`: `None` unless it is an object.
#[must_use]
pub fn to_struct(json: &serde_json::Value) -> Option<Struct> {
    json.as_object().map(map_to_struct)
}

/// A `google.protobuf.Value` as JSON. An unset kind is null; so is a number JSON cannot
/// hold (NaN, infinities). A whole number within 2^53 comes back as an integer, so `45`
/// sent is `45` read, not `45.0`.
#[must_use]
pub fn from_value(value: &Value) -> serde_json::Value {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(Kind::NumberValue(n)) => number(*n),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(Kind::ListValue(list)) => {
            serde_json::Value::Array(list.values.iter().map(from_value).collect())
        }
        Some(Kind::StructValue(s)) => serde_json::Value::Object(struct_to_map(s)),
    }
}

/// A `google.protobuf.Struct` as a JSON object.
#[must_use]
pub fn struct_to_map(s: &Struct) -> serde_json::Map<String, serde_json::Value> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), from_value(v)))
        .collect()
}

/// The largest integer a double holds exactly.
const EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

fn number(n: f64) -> serde_json::Value {
    if n.fract() == 0.0 && n.abs() <= EXACT_INTEGER {
        #[allow(
            clippy::cast_possible_truncation,
            reason = "checked: a whole number within 2^53"
        )]
        return serde_json::Value::from(n as i64);
    }
    serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_round_trips_through_struct() {
        let payload = json!({
            "days_late": 45,
            "amount": 12.5,
            "ok": true,
            "none": null,
            "tags": ["a", 1, {"deep": [false]}],
            "nested": {"x": -3}
        });
        let s = to_struct(&payload).expect("an object");
        assert_eq!(serde_json::Value::Object(struct_to_map(&s)), payload);
    }

    #[test]
    fn only_objects_are_structs_and_odd_numbers_are_null() {
        assert_eq!(to_struct(&json!([1, 2])), None);
        assert_eq!(from_value(&to_value(&json!(1e300))), json!(1e300));
        let nan = Value {
            kind: Some(Kind::NumberValue(f64::NAN)),
        };
        assert_eq!(from_value(&nan), serde_json::Value::Null);
        assert_eq!(from_value(&Value { kind: None }), serde_json::Value::Null);
        assert_eq!(from_value(&to_value(&json!(-0.5))), json!(-0.5));
    }
}
