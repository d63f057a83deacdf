//! The errors of a simulation, and how their messages treat client text.
//!
//! Every refusal names the request field at fault (`rules[0].cap.window: is required`), so
//! the node answers INVALID_ARGUMENT with the message as is and a local run (the SDKs'
//! `simulate_locally`) gives the same words.

/// Characters of client text an error message quotes (client input is never echoed whole).
const QUOTED_CHARS: usize = 48;

/// Longest error message a client is given: a backstop, so that no message becomes a
/// header the client refuses.
pub const MAX_MESSAGE_BYTES: usize = 1_024;

/// Client text for an error message: quoted, at most a short prefix of it.
pub fn quote(text: &str) -> String {
    let prefix: String = text.chars().take(QUOTED_CHARS).collect();
    if prefix.len() < text.len() {
        format!("{prefix:?}… ({} bytes)", text.len())
    } else {
        format!("{prefix:?}")
    }
}

/// `message` cut to at most [`MAX_MESSAGE_BYTES`], at a character boundary: what a client
/// is sent of it.
pub fn capped(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut cut = MAX_MESSAGE_BYTES - 3;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

/// A message that cannot become a domain value: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ConvertError {
    /// The field path inside the request, e.g. `events[3].occurred_at`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ConvertError {
    /// `field` is wrong: `problem`.
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The same error one level down: `at.field`.
    pub fn within(self, at: &str) -> Self {
        Self {
            field: format!("{at}.{}", self.field),
            problem: self.problem,
        }
    }
}

/// Why a simulation request was refused as a whole. An event the engine cannot score is
/// not an error but that event's result (`REJECTED`, `DUPLICATE`, `TOO_LATE`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimulationError {
    /// More events than one simulation runs.
    #[error("events: at most {max} per simulation, not {count}")]
    TooManyEvents {
        /// The events sent.
        count: usize,
        /// The most allowed ([`crate::MAX_EVENTS`]).
        max: usize,
    },
    /// A request field that cannot become a domain value (named from the request's root).
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// A rule or config the engine refuses.
    #[error(transparent)]
    Scorer(#[from] credence_scorer::ScorerError),
}

/// Result of a simulation.
pub type Result<T, E = SimulationError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_is_quoted_short_and_messages_are_capped() {
        let long = "x".repeat(10_000);
        let quoted = quote(&long);
        assert!(
            quoted.len() < 80 && quoted.contains("10000 bytes"),
            "{quoted}"
        );
        assert_eq!(quote("rule-1"), "\"rule-1\"");
        let message = capped(format!("é{long}"));
        assert!(message.len() <= MAX_MESSAGE_BYTES, "{}", message.len());
        assert!(message.ends_with('…'));
        assert_eq!(capped("short".into()), "short");
    }

    #[test]
    fn a_refusal_names_the_field_from_the_request_root() {
        let e = SimulationError::from(
            ConvertError::new("cap.window", "is required").within("rules[0]"),
        );
        assert_eq!(e.to_string(), "rules[0].cap.window: is required");
        let too_many = SimulationError::TooManyEvents { count: 7, max: 5 };
        assert_eq!(
            too_many.to_string(),
            "events: at most 5 per simulation, not 7"
        );
    }
}
