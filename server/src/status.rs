//! The one place where errors become gRPC statuses.
//!
//! Each variant of each error type maps to the code that tells a client what to do:
//! INVALID_ARGUMENT (fix the request), NOT_FOUND, FAILED_PRECONDITION (change the state
//! first), RESOURCE_EXHAUSTED (slow down or ask for less), UNAVAILABLE (retry later).

use credence_storage::StorageError;
use tonic::Status;

use crate::convert::ConvertError;

/// Storage errors by whose problem they are.
pub fn storage(e: StorageError) -> Status {
    match e {
        StorageError::Invalid(m) => Status::invalid_argument(m),
        StorageError::NotFound(m) => Status::not_found(m),
        StorageError::Conflict(m) => Status::failed_precondition(m),
        StorageError::LimitExceeded(m) => Status::resource_exhausted(m),
        StorageError::Unavailable(m) => Status::unavailable(format!("storage unavailable: {m}")),
        StorageError::Backend(m) => Status::internal(format!("storage failure: {m}")),
    }
}

/// A request field that cannot become a domain value.
pub fn convert(e: &ConvertError) -> Status {
    Status::invalid_argument(e.to_string())
}

/// A rule or config the engine refuses.
pub fn scorer(e: &credence_scorer::ScorerError) -> Status {
    Status::invalid_argument(e.to_string())
}

/// A required field left empty.
pub fn required(field: &str) -> Status {
    Status::invalid_argument(format!("{field} is required"))
}

/// Something that does not exist.
pub fn not_found(what: impl std::fmt::Display) -> Status {
    Status::not_found(what.to_string())
}
