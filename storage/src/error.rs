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
    /// The backend does not implement this feature (for example SQL analytics over a store
    /// without a query engine). The conformance suite accepts it where a role allows it.
    #[error("not supported by this storage backend: {0}")]
    Unsupported(String),
    /// A partition commit was refused because the caller no longer owns the partition (its
    /// epoch is not the stored one) or its batch does not start at the committed offset.
    /// Nothing of the batch was written; the caller must stop working on the partition.
    #[error("commit fenced: {0}")]
    Fenced(String),
    /// The backend failed in a way the caller cannot fix.
    #[error("storage failure: {0}")]
    Backend(String),
}

/// Result of every storage call.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
