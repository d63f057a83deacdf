//! Errors as they cross into Python.
//!
//! The native module raises one exception, `NativeError`, whose arguments are
//! `(kind, message, attempts, retry_after_seconds)`; `credence/errors.py` turns it into the
//! public hierarchy (`credence.NotFound`, `credence.Unavailable`, ...). Keeping the classes
//! in Python gives them real constructors, attributes and type stubs, and lets an error be
//! built in a future without holding the interpreter.

use pyo3::PyErr;
use pyo3::create_exception;
use pyo3::exceptions::PyException;

create_exception!(
    _native,
    NativeError,
    PyException,
    "An error of the native module: (kind, message, attempts, retry_after)."
);

/// A `NativeError` of `kind` with `message`, for errors found on this side.
pub(crate) fn native(kind: &str, message: impl Into<String>) -> PyErr {
    NativeError::new_err((kind.to_owned(), message.into(), 0u32, None::<f64>))
}

/// The kind of an SDK error, as `credence/errors.py` names its classes.
pub(crate) fn to_py(error: &credence::Error) -> PyErr {
    use credence::Error as E;
    let kind = match error {
        E::Connect { .. } => "connect".to_owned(),
        E::Input(_) => "input".to_owned(),
        E::Protocol(_) => "protocol".to_owned(),
        E::Closed(_) => "closed".to_owned(),
        other => other.code().map_or_else(|| "unknown".to_owned(), code_name),
    };
    let retry_after = match error {
        E::ResourceExhausted { retry_after, .. } => retry_after.map(|d| d.as_secs_f64()),
        _ => None,
    };
    // The connect, input and closed messages read best whole ("cannot connect to ...").
    let message = match error {
        E::Connect { .. } | E::Input(_) | E::Protocol(_) | E::Closed(_) => error.to_string(),
        _ => error.message().to_owned(),
    };
    NativeError::new_err((kind, message, error.attempts(), retry_after))
}

/// A gRPC code in snake case (`InvalidArgument` -> `invalid_argument`), as the Python
/// classes are keyed.
fn code_name(code: tonic::Code) -> String {
    let name = format!("{code:?}");
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn code_names_are_snake_case() {
        assert_eq!(
            super::code_name(tonic::Code::InvalidArgument),
            "invalid_argument"
        );
        assert_eq!(super::code_name(tonic::Code::NotFound), "not_found");
        assert_eq!(super::code_name(tonic::Code::Unavailable), "unavailable");
    }
}
