//! A `WHERE` clause built from optional filters and a keyset cursor, with its parameters.

use std::fmt::Write as _;

use duckdb::types::Value;

use crate::page::KeyPart;

/// Conditions joined with AND, and the values of their `?` placeholders in order.
#[derive(Default)]
pub(super) struct Where {
    clauses: Vec<String>,
    params: Vec<Value>,
}

impl Where {
    /// Adds a condition with one placeholder.
    pub(super) fn add(&mut self, clause: &'static str, value: impl Into<Value>) {
        self.clauses.push(clause.to_owned());
        self.params.push(value.into());
    }

    /// Adds `clause` with `value` when the text is not empty (empty filters do not filter).
    pub(super) fn text(&mut self, clause: &'static str, value: &str) {
        if !value.is_empty() {
            self.add(clause, value.to_owned());
        }
    }

    /// Adds `clause` with `value` when there is one.
    pub(super) fn opt(&mut self, clause: &'static str, value: Option<i64>) {
        if let Some(v) = value {
            self.add(clause, v);
        }
    }

    /// Adds "the key `columns` sorts after `after`" in lexicographic order, spelled out as
    /// `a > ? OR (a = ? AND (b > ? OR ...))` so that it needs no row-value comparison.
    pub(super) fn after(&mut self, columns: &[&str], after: Vec<KeyPart>) {
        let values: Vec<Value> = after.into_iter().map(value).collect();
        let mut clause = String::new();
        let mut params = Vec::new();
        let last = columns.len().saturating_sub(1);
        for (i, (column, v)) in columns.iter().zip(values).enumerate() {
            if i == last {
                let _ = write!(clause, "{column} > ?");
                params.push(v);
            } else {
                let _ = write!(clause, "({column} > ? OR ({column} = ? AND (");
                params.push(v.clone());
                params.push(v);
            }
        }
        clause.push_str(&")))".repeat(last));
        self.clauses.push(clause);
        self.params.extend(params);
    }

    /// The SQL text: empty, or ` WHERE a AND b`.
    pub(super) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// The parameters, after `leading` (placeholders that come before the WHERE clause).
    pub(super) fn params(&self, leading: &[Value]) -> Vec<Value> {
        let mut out = leading.to_vec();
        out.extend(self.params.iter().cloned());
        out
    }
}

fn value(part: KeyPart) -> Value {
    match part {
        KeyPart::I64(v) => Value::BigInt(v),
        KeyPart::U64(v) => Value::UBigInt(v),
        KeyPart::Text(t) => Value::Text(t),
    }
}
