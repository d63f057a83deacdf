//! Shared by the real-stack tests (`stack_*.rs`): endpoints from `CREDENCE_TEST_*` variables.
//!
//! A test whose variable is unset is skipped with a loud line on stderr, unless
//! `CREDENCE_TEST_REQUIRE_STACK=1` (set by `make test-stack`), in which case it fails.
//! `deploy/local/stack.sh env` prints the variables for the local stack.

#![allow(dead_code, unreachable_pub)]

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Result type of the stack tests.
pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// The endpoint in `var`, or `None` after saying loudly that the test is skipped.
pub fn endpoint(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
        _ => {
            let required = std::env::var("CREDENCE_TEST_REQUIRE_STACK").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "{test}: {var} is unset but CREDENCE_TEST_REQUIRE_STACK=1: the stack did not export its endpoints"
            );
            // Straight to the process's stderr, not eprintln!: the test harness captures
            // eprintln! of a passing test, and a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! SKIPPED {test}: {var} is unset. Start the real stack with \
                 `deploy/local/stack.sh up` and `eval \"$(deploy/local/stack.sh env)\"`, \
                 or run `make test-stack`.\n"
            );
            None
        }
    }
}

/// An optional companion variable with a default.
pub fn var_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// A suffix that makes names unique per run, so runs against kept data do not collide.
pub fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}_{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// Embedded stores in a directory of their own (kept for the life of the process, as the
/// stores are): the roles a stack test does not swap for a cluster backend.
pub fn embedded_stores() -> credence_storage::Stores {
    use credence_storage::embedded::{Embedded, EmbeddedOptions};
    #[allow(clippy::unwrap_used, reason = "tests")]
    let dir = tempfile::tempdir().unwrap();
    let mut options = EmbeddedOptions::new(dir.path());
    options.sync = false;
    options.memory_limit = "256MB".into();
    #[allow(clippy::unwrap_used, reason = "tests")]
    let stores = Embedded::open(&options).unwrap().stores();
    // The stores outlive this function; so must their directory.
    std::mem::forget(dir);
    stores
}
