//! What the tables store for domain values: JSON text for payloads, and the numbers of the
//! relation kinds (`crate::stored` has the encodings other backends share).
//!
//! The formats are those of every data directory written so far: payloads as a JSON object
//! (numbers exact, as `serde_json` writes an `f64`), relation kinds as the numbers of the
//! `credence.v1` enum they were once stored from. Changing either would make
//! existing data unreadable.

use credence_scorer::{Payload, Value};

use crate::error::{Result, StorageError};
use crate::graph::RelationKind;

/// The JSON text of a payload. Non-finite numbers, which JSON cannot hold and ingestion
/// refuses, become null.
pub(super) fn payload_to_json(payload: &Payload) -> Result<String> {
    serde_json::to_string(payload)
        .map_err(|e| StorageError::Backend(format!("encoding a payload as JSON: {e}")))
}

/// A payload from its JSON text.
pub(super) fn payload_from_json(text: &str) -> Result<Payload> {
    let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
        .map_err(|e| StorageError::Backend(format!("stored payload is not a JSON object: {e}")))?;
    Ok(object_to_payload(parsed))
}

// Converted by hand rather than through `Value`'s untagged `Deserialize`: every JSON number
// becomes an `f64` the one way `serde_json` reads it, whatever its form.
fn object_to_payload(object: serde_json::Map<String, serde_json::Value>) -> Payload {
    object
        .into_iter()
        .map(|(k, v)| (k, json_to_value(v)))
        .collect()
}

fn json_to_value(value: serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(items) => {
            Value::List(items.into_iter().map(json_to_value).collect())
        }
        serde_json::Value::Object(object) => Value::Map(object_to_payload(object)),
    }
}

/// The stored number of a relation kind.
pub(super) fn relation_kind_code(kind: RelationKind) -> i32 {
    match kind {
        RelationKind::Family => 1,
        RelationKind::Friend => 2,
        RelationKind::Colleague => 3,
        RelationKind::Neighbour => 4,
        RelationKind::Classmate => 5,
        RelationKind::BusinessPartner => 6,
    }
}

/// The relation kind of a stored number.
pub(super) fn relation_kind(code: i32) -> Result<RelationKind> {
    Ok(match code {
        1 => RelationKind::Family,
        2 => RelationKind::Friend,
        3 => RelationKind::Colleague,
        4 => RelationKind::Neighbour,
        5 => RelationKind::Classmate,
        6 => RelationKind::BusinessPartner,
        _ => {
            return Err(StorageError::Backend(format!(
                "a stored relation has kind {code}, which is none of 1 to 6; the relations \
                 table was written by something else: remove or correct that row"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn payload() -> Payload {
        let number = Value::Number;
        [
            ("b", Value::Bool(true)),
            ("big", number(1e300)),
            ("int", number(12_345_678_901_234_567.0)),
            ("l", Value::List(vec![number(-2.5)])),
            (
                "m",
                Value::Map([("x".to_owned(), number(0.1 + 0.2))].into()),
            ),
            ("n", number(45.0)),
            ("neg0", number(-0.0)),
            ("s", Value::String("é\"".into())),
            ("tiny", number(5e-324)),
            ("z", Value::Null),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// The text written before payloads were domain values (by the `google.protobuf.Struct`
    /// serialiser), for the same payload: the stored format has not changed.
    const STORED: &str = r#"{"b":true,"big":1e+300,"int":1.2345678901234568e+16,"l":[-2.5],"m":{"x":0.30000000000000004},"n":45.0,"neg0":-0.0,"s":"é\"","tiny":5e-324,"z":null}"#;

    #[test]
    fn payloads_are_stored_as_before_and_read_back_to_the_bit() {
        let p = payload();
        assert_eq!(payload_to_json(&p).unwrap(), STORED);
        let back = payload_from_json(STORED).unwrap();
        assert_eq!(back, p);
        let bits = |p: &Payload, k: &str| match p.get(k) {
            Some(Value::Number(n)) => n.to_bits(),
            other => panic!("{k}: {other:?}"),
        };
        for k in ["big", "int", "n", "neg0", "tiny"] {
            assert_eq!(bits(&back, k), bits(&p, k), "{k}");
        }
    }

    #[test]
    fn non_finite_numbers_are_stored_as_null() {
        let p: Payload = [("nan".to_owned(), Value::Number(f64::NAN))].into();
        assert_eq!(payload_to_json(&p).unwrap(), r#"{"nan":null}"#);
    }

    #[test]
    fn kinds_keep_their_stored_numbers() {
        for (kind, code) in [
            (RelationKind::Family, 1),
            (RelationKind::Friend, 2),
            (RelationKind::Colleague, 3),
            (RelationKind::Neighbour, 4),
            (RelationKind::Classmate, 5),
            (RelationKind::BusinessPartner, 6),
        ] {
            assert_eq!(relation_kind_code(kind), code);
            assert_eq!(relation_kind(code).unwrap(), kind);
        }
        assert!(relation_kind(7).unwrap_err().to_string().contains("kind 7"));
    }
}
