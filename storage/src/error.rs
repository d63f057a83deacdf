//! The one error type of every storage role.

/// What went wrong in a store. The variants say whose problem it is, so the server can map
/// each to a gRPC code in one place.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The caller asked for something malformed (a bad page token, a refused SQL statement).
    #[error("{0}")]
    Invalid(String),
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the stored state (for example a stale version).
    #[error("{0}")]
    Conflict(String),
    /// A configured limit was reached (query time, memory, rows).
    #[error("{0}")]
    LimitExceeded(String),
    /// The backend cannot be reached or is shutting down; retrying later may work.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The backend failed in a way the caller cannot fix.
    #[error("storage failure: {0}")]
    Backend(String),
}

/// Result of every storage call.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
