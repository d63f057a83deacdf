//! The SDK's one error type: a variant per gRPC code the server uses, plus what fails on
//! this side (connecting, a bad argument before anything is sent, a closed producer).

use std::time::Duration;

use tonic::Code;

/// What went wrong, with the server's message and how many attempts were made.
///
/// A call that is safe to retry (reads, publishing, upserts) is retried on `Unavailable`
/// with exponential back-off before it fails; `attempts` says how many times it was sent.
///
/// ```
/// # fn check(result: credence::Result<()>) {
/// match result {
///     Err(credence::Error::NotFound { message, .. }) => println!("no such subject: {message}"),
///     Err(e) if e.is_retryable() => println!("try again later: {e}"),
///     Err(e) => println!("failed: {e}"),
///     Ok(()) => {}
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Error {
    /// No connection to the server could be made (wrong address, nothing listening, TLS
    /// handshake refused).
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The address the client was given.
        url: String,
        /// Why, as the transport said it.
        message: String,
    },
    /// A value given to the SDK is unusable; nothing was sent.
    #[error("invalid input: {0}")]
    Input(String),
    /// The server refused the request: the message names the field and what to change. A
    /// local simulation (`simulate_locally`, feature `local`) refuses with the same message
    /// and 0 attempts.
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// The server's message.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The thing asked for does not exist.
    #[error("not found: {message}")]
    NotFound {
        /// The server's message.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The thing to create exists already.
    #[error("already exists: {message}")]
    AlreadyExists {
        /// The server's message.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// A limit was reached (the pipeline is behind, a query ran out of time or memory):
    /// slow down or ask for less.
    #[error("resource exhausted: {message}")]
    ResourceExhausted {
        /// The server's message.
        message: String,
        /// How long the server asked to wait, when it said (`retry-after` or
        /// `grpc-retry-pushback-ms` metadata). The node sends neither today.
        #[cfg_attr(
            feature = "serde",
            serde(default, with = "crate::serde_support::secs::option")
        )]
        retry_after: Option<Duration>,
        /// Attempts made.
        attempts: u32,
    },
    /// The server or a component of it is down or restarting; retrying later may work.
    #[error("unavailable after {attempts} attempt(s): {message}")]
    Unavailable {
        /// The server's (or the transport's) message.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// No valid credentials were sent (see [`ClientBuilder::auth_token`](crate::ClientBuilder::auth_token)).
    #[error("unauthenticated: {message}")]
    Unauthenticated {
        /// The server's message.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The credentials do not allow this call.
    #[error("permission denied: {message}")]
    PermissionDenied {
        /// The server's message.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The request conflicts with the server's state; change the state first.
    #[error("failed precondition: {message}")]
    FailedPrecondition {
        /// The server's message.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The operation lost a race (e.g. a partition moved); start over from a fresh read.
    #[error("aborted: {message}")]
    Aborted {
        /// The server's message.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The call did not finish within its timeout.
    #[error("deadline exceeded after {attempts} attempt(s): {message}")]
    DeadlineExceeded {
        /// What timed out.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The server cannot do this at all (e.g. a backend lacks the feature).
    #[error("unimplemented: {message}")]
    Unimplemented {
        /// The server's message.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// A defect in the server; report it with the message.
    #[error("internal server error: {message}")]
    Internal {
        /// The server's message.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// Any other gRPC status (CANCELLED, UNKNOWN, OUT_OF_RANGE, DATA_LOSS).
    #[error("{code:?}: {message}")]
    Other {
        /// The gRPC code.
        #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::grpc_code"))]
        code: Code,
        /// The message.
        message: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The server answered something this SDK cannot read (a required field missing): a
    /// version mismatch or a defect.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The producer was closed, or its background task stopped.
    #[error("the producer is closed: {0}")]
    Closed(String),
}

/// Result of SDK calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A gRPC status as an error, after `attempts` attempts.
    ///
    /// A status the transport made, not the server (it carries the transport's error as
    /// its source: the connection broke mid-call), is `Unavailable` whatever its code: tonic
    /// reports a reset connection as UNKNOWN "transport error", and the node never answers
    /// UNKNOWN itself, so this is the one place a broken connection can be told apart.
    pub fn from_status(status: &tonic::Status, attempts: u32) -> Self {
        use std::error::Error as _;
        // CANCELLED with a transport source is the same: hyper cancels the calls of a
        // connection that closes (a restarted node); a caller's own cancellation drops the
        // call instead of returning a status.
        if matches!(status.code(), Code::Unknown | Code::Cancelled)
            && let Some(source) = status.source()
        {
            return Self::Unavailable {
                message: format!("connection lost: {}: {source}", status.message()),
                attempts,
            };
        }
        let retry_after = retry_after(status.metadata());
        Self::from_code(
            status.code(),
            status.message().to_owned(),
            retry_after,
            attempts,
        )
    }

    fn from_code(
        code: Code,
        message: String,
        retry_after: Option<Duration>,
        attempts: u32,
    ) -> Self {
        match code {
            Code::InvalidArgument => Self::InvalidArgument { message, attempts },
            Code::NotFound => Self::NotFound { message, attempts },
            Code::AlreadyExists => Self::AlreadyExists { message, attempts },
            Code::ResourceExhausted => Self::ResourceExhausted {
                message,
                retry_after,
                attempts,
            },
            Code::Unavailable => Self::Unavailable { message, attempts },
            Code::Unauthenticated => Self::Unauthenticated { message, attempts },
            Code::PermissionDenied => Self::PermissionDenied { message, attempts },
            Code::FailedPrecondition => Self::FailedPrecondition { message, attempts },
            Code::Aborted => Self::Aborted { message, attempts },
            Code::DeadlineExceeded => Self::DeadlineExceeded { message, attempts },
            Code::Unimplemented => Self::Unimplemented { message, attempts },
            Code::Internal => Self::Internal { message, attempts },
            code => Self::Other {
                code,
                message,
                attempts,
            },
        }
    }

    /// The gRPC code, message and attempts of an error the server (or the transport)
    /// answered; `None` for the errors of this side.
    fn status(&self) -> Option<(Code, &str, u32)> {
        let (code, message, attempts) = match self {
            Self::InvalidArgument { message, attempts } => {
                (Code::InvalidArgument, message, attempts)
            }
            Self::NotFound { message, attempts } => (Code::NotFound, message, attempts),
            Self::AlreadyExists { message, attempts } => (Code::AlreadyExists, message, attempts),
            Self::ResourceExhausted {
                message, attempts, ..
            } => (Code::ResourceExhausted, message, attempts),
            Self::Unavailable { message, attempts } => (Code::Unavailable, message, attempts),
            Self::Unauthenticated { message, attempts } => {
                (Code::Unauthenticated, message, attempts)
            }
            Self::PermissionDenied { message, attempts } => {
                (Code::PermissionDenied, message, attempts)
            }
            Self::FailedPrecondition { message, attempts } => {
                (Code::FailedPrecondition, message, attempts)
            }
            Self::Aborted { message, attempts } => (Code::Aborted, message, attempts),
            Self::DeadlineExceeded { message, attempts } => {
                (Code::DeadlineExceeded, message, attempts)
            }
            Self::Unimplemented { message, attempts } => (Code::Unimplemented, message, attempts),
            Self::Internal { message, attempts } => (Code::Internal, message, attempts),
            Self::Other {
                code,
                message,
                attempts,
            } => (*code, message, attempts),
            Self::Connect { .. } | Self::Input(_) | Self::Protocol(_) | Self::Closed(_) => {
                return None;
            }
        };
        Some((code, message, *attempts))
    }

    /// The gRPC code, for errors the server (or the transport) answered.
    pub fn code(&self) -> Option<Code> {
        self.status().map(|(code, _, _)| code)
    }

    /// The server's message (or this side's), without the code.
    pub fn message(&self) -> &str {
        match self {
            Self::Connect { message, .. }
            | Self::Input(message)
            | Self::Protocol(message)
            | Self::Closed(message) => message,
            status => status.status().map_or("", |(_, message, _)| message),
        }
    }

    /// How many times the call was sent (0 when it never left this process).
    pub fn attempts(&self) -> u32 {
        self.status().map_or(0, |(_, _, attempts)| attempts)
    }

    /// Whether sending the same request again later may succeed (UNAVAILABLE, and
    /// RESOURCE_EXHAUSTED, which asks to slow down). The client retries the first only; the
    /// producer retries both.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. } | Self::ResourceExhausted { .. }
        )
    }

    /// The same error with its attempt count set.
    pub(crate) fn with_attempts(self, attempts: u32) -> Self {
        let retry_after = match &self {
            Self::ResourceExhausted { retry_after, .. } => *retry_after,
            _ => None,
        };
        match self.status() {
            Some((code, message, _)) => {
                Self::from_code(code, message.to_owned(), retry_after, attempts)
            }
            None => self,
        }
    }

    /// A required field the server left out of its answer.
    pub(crate) fn missing(what: &str) -> Self {
        Self::Protocol(format!("the answer has no {what}"))
    }
}

impl From<tonic::Status> for Error {
    fn from(status: tonic::Status) -> Self {
        Self::from_status(&status, 1)
    }
}

/// The wait a RESOURCE_EXHAUSTED answer asks for: `grpc-retry-pushback-ms` (gRPC's own
/// pushback, milliseconds) or `retry-after` (seconds, as in HTTP).
fn retry_after(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let text = |key: &str| metadata.get(key).and_then(|v| v.to_str().ok());
    if let Some(ms) = text("grpc-retry-pushback-ms").and_then(|t| t.trim().parse::<u64>().ok()) {
        return Some(Duration::from_millis(ms));
    }
    text("retry-after")
        .and_then(|t| t.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_the_server_uses_has_its_variant_and_keeps_the_message() {
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::ResourceExhausted,
            Code::Unavailable,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::FailedPrecondition,
            Code::Aborted,
            Code::DeadlineExceeded,
            Code::Unimplemented,
            Code::Internal,
            Code::Cancelled,
        ] {
            let e = Error::from_status(&tonic::Status::new(code, "the reason"), 3);
            assert_eq!(e.code(), Some(code));
            assert_eq!(e.message(), "the reason");
            assert_eq!(e.attempts(), 3);
            assert!(e.to_string().contains("the reason"), "{e}");
            assert_eq!(e.clone().with_attempts(5).attempts(), 5);
        }
    }

    #[test]
    fn a_transport_failure_is_unavailable_but_an_unknown_answer_is_not() {
        let broken = tonic::Status::from_error(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by peer",
        )));
        assert_eq!(broken.code(), Code::Unknown);
        let e = Error::from_status(&broken, 2);
        assert!(matches!(e, Error::Unavailable { attempts: 2, .. }), "{e:?}");
        assert!(e.message().contains("connection reset"), "{e:?}");
        let answered = Error::from_status(&tonic::Status::unknown("odd"), 1);
        assert_eq!(answered.code(), Some(Code::Unknown));
    }

    #[test]
    fn retry_after_is_read_from_either_header() {
        let mut status = tonic::Status::resource_exhausted("slow down");
        status
            .metadata_mut()
            .insert("retry-after", "1.5".parse().expect("ascii"));
        let Error::ResourceExhausted { retry_after, .. } = Error::from_status(&status, 1) else {
            panic!("wrong variant");
        };
        assert_eq!(retry_after, Some(Duration::from_millis(1500)));
        status
            .metadata_mut()
            .insert("grpc-retry-pushback-ms", "250".parse().expect("ascii"));
        let Error::ResourceExhausted { retry_after, .. } = Error::from_status(&status, 1) else {
            panic!("wrong variant");
        };
        assert_eq!(retry_after, Some(Duration::from_millis(250)));
        let plain = Error::from_status(&tonic::Status::resource_exhausted("x"), 1);
        assert!(matches!(
            plain,
            Error::ResourceExhausted {
                retry_after: None,
                ..
            }
        ));
    }
}
