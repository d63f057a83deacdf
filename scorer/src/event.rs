//! Events as the engine sees them.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use crate::value::Payload;

/// Where an event happened.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// Region name (empty: unknown).
    #[serde(default)]
    pub region: String,
    /// District name (empty: unknown).
    #[serde(default)]
    pub district: String,
}

/// One thing that happened to a subject. Empty optional strings mean "not given": a path
/// to them does not resolve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Idempotency key.
    pub event_id: String,
    /// The subject's id.
    pub subject_id: String,
    /// Category, e.g. `financial`.
    pub event_type: String,
    /// Kind inside the category, e.g. `late_payment`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub event_subtype: String,
    /// Reporting system.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_system: String,
    /// Event time.
    pub occurred_at: Timestamp,
    /// Where it happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Free-form details.
    #[serde(default, skip_serializing_if = "Payload::is_empty")]
    pub payload: Payload,
}

impl Event {
    /// An event with the given ids, type, subtype and time, and nothing else.
    pub fn new(
        event_id: impl Into<String>,
        subject_id: impl Into<String>,
        event_type: impl Into<String>,
        event_subtype: impl Into<String>,
        occurred_at: Timestamp,
    ) -> Self {
        Self {
            event_id: event_id.into(),
            subject_id: subject_id.into(),
            event_type: event_type.into(),
            event_subtype: event_subtype.into(),
            source_system: String::new(),
            occurred_at,
            location: None,
            payload: Payload::new(),
        }
    }

    /// The same event with `key` set to `value` in its payload.
    pub fn with(mut self, key: &str, value: impl Into<crate::Value>) -> Self {
        self.payload.insert(key.to_owned(), value.into());
        self
    }
}
