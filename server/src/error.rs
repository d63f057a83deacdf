//! The server's one error type, and the one place where errors become gRPC statuses.
//!
//! Each variant maps to the code that tells a client what to do: INVALID_ARGUMENT (fix the
//! request), NOT_FOUND, FAILED_PRECONDITION (change the state first), RESOURCE_EXHAUSTED
//! (slow down or ask for less), UNAVAILABLE (retry later), INTERNAL (a bug: report it).
//! Nothing else in the server builds a `tonic::Status`.

use credence_simulation::{SimulationError, capped};
use credence_storage::StorageError;

use crate::convert::ConvertError;

/// Client text for an error message: quoted, at most a short prefix of it (shared with the
/// simulation, whose messages a local run must repeat word for word).
pub use credence_simulation::quote;

/// What went wrong in the server's domain layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed; the message names the field and what to change.
    #[error("{0}")]
    InvalidArgument(String),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A limit was reached: the client should slow down or ask for less.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A component of this node is down or stopping; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// A broken invariant of the server itself (a bug), never a fault of input or backend.
    #[error("{0}")]
    Internal(String),
    /// The call carries no token, or one this node does not know.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller's token lacks the role the call needs.
    #[error("{0}")]
    PermissionDenied(String),
    /// A request field that cannot become a domain value.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// A rule or config the engine refuses.
    #[error(transparent)]
    Scorer(#[from] credence_scorer::ScorerError),
    /// A simulation request refused as a whole (its message names the field).
    #[error(transparent)]
    Simulation(#[from] SimulationError),
    /// A storage role failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Another error, with a note on where it happened (the code stays the inner one).
    #[error("{inner} ({note})")]
    Context {
        /// The error.
        inner: Box<Error>,
        /// Where, or how far a multi-step call got.
        note: String,
    },
}

/// Result of the server's domain calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    // The constructors below return any `T: From<Error>` (this type or `tonic::Status`), so
    // a handler returning `Status` writes `Err(Error::invalid(..))` and still maps here.

    /// A required field left empty.
    pub fn required<T: From<Error>>(field: &str) -> T {
        Self::InvalidArgument(format!("{field} is required")).into()
    }

    /// Bad input: `message` names the field and what to change.
    pub fn invalid<T: From<Error>>(message: impl Into<String>) -> T {
        Self::InvalidArgument(message.into()).into()
    }

    /// Something that does not exist.
    pub fn not_found<T: From<Error>>(message: impl Into<String>) -> T {
        Self::NotFound(message.into()).into()
    }

    /// Overload or a limit: slow down or ask for less.
    pub fn exhausted<T: From<Error>>(message: impl Into<String>) -> T {
        Self::ResourceExhausted(message.into()).into()
    }

    /// A component down or stopping: retrying later may work.
    pub fn unavailable<T: From<Error>>(message: impl Into<String>) -> T {
        Self::Unavailable(message.into()).into()
    }

    /// A broken invariant of the server (a bug).
    pub fn internal<T: From<Error>>(message: impl Into<String>) -> T {
        Self::Internal(message.into()).into()
    }

    /// The same error with `note` appended to its message.
    #[must_use]
    pub fn context(self, note: impl Into<String>) -> Self {
        Self::Context {
            inner: Box::new(self),
            note: note.into(),
        }
    }

    /// The gRPC code this error maps to.
    pub fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            Self::InvalidArgument(_) | Self::Convert(_) | Self::Scorer(_) | Self::Simulation(_) => {
                Code::InvalidArgument
            }
            Self::NotFound(_) => Code::NotFound,
            Self::FailedPrecondition(_) => Code::FailedPrecondition,
            Self::ResourceExhausted(_) => Code::ResourceExhausted,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
            Self::Unauthenticated(_) => Code::Unauthenticated,
            Self::PermissionDenied(_) => Code::PermissionDenied,
            Self::Context { inner, .. } => inner.code(),
            Self::Storage(e) => match e {
                StorageError::Invalid(_) => Code::InvalidArgument,
                StorageError::NotFound(_) => Code::NotFound,
                StorageError::Conflict(_) => Code::FailedPrecondition,
                StorageError::LimitExceeded(_) => Code::ResourceExhausted,
                StorageError::Unavailable(_) => Code::Unavailable,
                // UNIMPLEMENTED, not FAILED_PRECONDITION: no change of state the client can
                // make lets this backend do it; only another deployment would.
                StorageError::Unsupported(_) => Code::Unimplemented,
                // The write lost to a newer owner of the partition: ABORTED says "start over
                // at a higher level" (re-read the position), which is what the caller must do.
                StorageError::Fenced(_) => Code::Aborted,
                // The storage crate sorts failures by whose problem they are: a backend
                // that cannot be reached, is stopping or timed out is `Unavailable` (the
                // client may retry); `Backend` is what is left, a failure no retry fixes
                // (a corrupt row, a statement the backend refuses), so it is a defect to
                // report, not a condition to wait out.
                StorageError::Backend(_) => Code::Internal,
            },
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        tonic::Status::new(e.code(), capped(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_messages_are_capped() {
        let long = "x".repeat(10_000);
        let status = tonic::Status::from(Error::NotFound(format!("é{long}")));
        assert!(
            status.message().len() <= credence_simulation::MAX_MESSAGE_BYTES,
            "{}",
            status.message().len()
        );
    }

    #[test]
    fn a_refused_simulation_is_invalid_argument_with_its_message() {
        let refused = Error::from(SimulationError::TooManyEvents { count: 2, max: 1 });
        let status = tonic::Status::from(refused);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "events: at most 1 per simulation, not 2");
    }

    #[test]
    fn a_backend_down_is_unavailable_and_notes_keep_the_code() {
        let down = Error::from(StorageError::Unavailable("connection refused".into()));
        assert_eq!(down.code(), tonic::Code::Unavailable);
        let noted = down.context("batch 2");
        let status = tonic::Status::from(noted);
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.message().ends_with("(batch 2)"), "{status:?}");
        assert_eq!(
            Error::from(StorageError::Invalid("bad token".into())).code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            Error::from(StorageError::Unsupported("sql".into())).code(),
            tonic::Code::Unimplemented
        );
        assert_eq!(
            Error::from(StorageError::Fenced("p1".into())).code(),
            tonic::Code::Aborted
        );
    }
}
