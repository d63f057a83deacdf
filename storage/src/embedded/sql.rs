//! A `WHERE` clause built from optional filters, with its parameters.

use duckdb::types::Value;

/// Conditions joined with AND, and the values of their `?` placeholders in order.
#[derive(Default)]
pub(super) struct Where {
    clauses: Vec<&'static str>,
    params: Vec<Value>,
}

impl Where {
    /// Adds a condition with one placeholder.
    pub(super) fn add(&mut self, clause: &'static str, value: impl Into<Value>) {
        self.clauses.push(clause);
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

    /// The SQL text: empty, or ` WHERE a AND b`.
    pub(super) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// The parameters followed by `extra` (for LIMIT and OFFSET).
    pub(super) fn params(&self, extra: &[i64]) -> Vec<Value> {
        let mut out = self.params.clone();
        out.extend(extra.iter().map(|v| Value::BigInt(*v)));
        out
    }
}
