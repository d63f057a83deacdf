//! Encodings shared by the backends that store domain values as text or numbers: JSON text
//! of rules, configs, states and maps, and the numbers of the list kinds.
//!
//! The list kinds are the numbers of the `credence.v1` enum they were first stored from;
//! changing them would make existing data unreadable.

use credence_scorer::ListKind;
use serde::Serialize;

use crate::error::{Result, StorageError};

/// JSON text of any serialisable value (maps and lists of profiles, rules, states).
pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T, what: &str) -> Result<String> {
    serde_json::to_string(value).map_err(|e| json_error(what, &e))
}

/// A value from JSON text written by [`to_json`].
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| json_error(what, &e))
}

fn json_error(what: &str, e: &serde_json::Error) -> StorageError {
    StorageError::Backend(format!("JSON of {what}: {e}"))
}

/// The stored number of a list kind.
pub(crate) fn list_kind_code(kind: ListKind) -> i32 {
    match kind {
        ListKind::Block => 1,
        ListKind::Allow => 2,
    }
}

/// The list kind of a stored number.
pub(crate) fn list_kind(code: i32) -> Result<ListKind> {
    match code {
        1 => Ok(ListKind::Block),
        2 => Ok(ListKind::Allow),
        _ => Err(StorageError::Backend(format!(
            "a stored list entry has kind {code}, which is neither 1 (block) nor 2 (allow); \
             it was written by something else: remove or correct that entry"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn list_kinds_keep_their_stored_numbers() {
        for (kind, code) in [(ListKind::Block, 1), (ListKind::Allow, 2)] {
            assert_eq!(list_kind_code(kind), code);
            assert_eq!(list_kind(code).unwrap(), kind);
        }
        assert!(list_kind(0).is_err());
    }
}
