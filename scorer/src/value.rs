//! Payload and condition values, mirroring `google.protobuf.Value`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A JSON-like value: what an event payload holds and what a condition compares with.
///
/// Numbers are `f64`, as in `google.protobuf.Value`. In YAML and JSON a value is written
/// naturally (`10`, `"north"`, `[a, b]`, `{k: v}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// No value (JSON `null`).
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A string.
    String(String),
    /// A list of values.
    List(Vec<Value>),
    /// A map of named values.
    Map(BTreeMap<String, Value>),
}

/// An event payload: named values, nested as deep as the producer likes.
pub type Payload = BTreeMap<String, Value>;

impl Value {
    /// The name of this value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }

    /// True when every number inside is finite.
    pub fn is_finite(&self) -> bool {
        match self {
            Value::Number(n) => n.is_finite(),
            Value::List(items) => items.iter().all(Value::is_finite),
            Value::Map(map) => map.values().all(Value::is_finite),
            Value::Null | Value::Bool(_) | Value::String(_) => true,
        }
    }

    /// Nesting depth: 0 for a scalar, 1 + the deepest element for a list or map.
    pub fn depth(&self) -> usize {
        match self {
            Value::List(items) => 1 + items.iter().map(Value::depth).max().unwrap_or(0),
            Value::Map(map) => 1 + map.values().map(Value::depth).max().unwrap_or(0),
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => 0,
        }
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}

impl From<i32> for Value {
    fn from(n: i32) -> Self {
        Value::Number(f64::from(n))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(items: Vec<T>) -> Self {
        Value::List(items.into_iter().map(Into::into).collect())
    }
}
