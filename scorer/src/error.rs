//! The one error type of the scoring engine.

/// What can go wrong when rules, configs or files are read or validated.
///
/// Scoring itself never fails: an event the engine cannot score (an unknown subject when
/// subjects are not auto-created) is an [`crate::EventOutcome`], not an error.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ScorerError {
    /// A rule is invalid; nothing of the rule set it belongs to is used.
    #[error("rule \"{rule}\": {field}: {problem}")]
    InvalidRule {
        /// The rule's id (or `#index` when the id itself is missing).
        rule: String,
        /// The field at fault, e.g. `conditions[0].value`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The scoring config is invalid.
    #[error("config: {field}: {problem}")]
    InvalidConfig {
        /// The field at fault, e.g. `tiers[2].name`.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A rule file could not be parsed.
    #[error("{source_name}: {problem}")]
    Parse {
        /// The file name, or `<yaml>` / `<json>` for text.
        source_name: String,
        /// The parser's message, with line and column where it has them.
        problem: String,
    },
    /// A rule file could not be read or written.
    #[error("{path}: {problem}")]
    Io {
        /// The path.
        path: String,
        /// The operating system's message.
        problem: String,
    },
}

impl ScorerError {
    pub(crate) fn rule(rule: &str, field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::InvalidRule {
            rule: rule.to_owned(),
            field: field.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn config(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = ScorerError> = std::result::Result<T, E>;
