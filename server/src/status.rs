//! The one place where errors become gRPC statuses.
//!
//! Each variant of each error type maps to the code that tells a client what to do:
//! INVALID_ARGUMENT (fix the request), NOT_FOUND, FAILED_PRECONDITION (change the state
//! first), RESOURCE_EXHAUSTED (slow down or ask for less), UNAVAILABLE (retry later),
//! UNIMPLEMENTED (this deployment cannot do it), ABORTED (lost a race; start over).

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
        // UNIMPLEMENTED, not FAILED_PRECONDITION: no change of state the client can make lets
        // this backend do it; only another deployment (backend) would. Retrying is pointless.
        StorageError::Unsupported(m) => {
            Status::unimplemented(format!("not supported by this storage backend: {m}"))
        }
        // The write lost to a newer owner of the partition: ABORTED says "start over at a
        // higher level" (re-read the position), which is what the caller must do.
        StorageError::Fenced(m) => Status::aborted(format!("commit fenced: {m}")),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_storage_errors_map_to_their_codes() {
        let code = |e| storage(e).code();
        assert_eq!(
            code(StorageError::Unsupported("sql".into())),
            tonic::Code::Unimplemented
        );
        assert_eq!(
            code(StorageError::Fenced("p1".into())),
            tonic::Code::Aborted
        );
        assert_eq!(
            code(StorageError::Unavailable("down".into())),
            tonic::Code::Unavailable
        );
    }
}
