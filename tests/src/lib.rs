//! End-to-end tests of Credence: a harness that runs the real `credence` server as a child
//! process (`credence dev` on loopback, in a temporary data directory) and talks to it over
//! gRPC, plus helpers the tests in `tests/` share.
//!
//! The binary is found through `CREDENCE_BIN`, else beside the test executable
//! (`target/<profile>/credence`), else in `$CARGO_TARGET_DIR/debug/credence`. Build it first:
//! `cargo build -p credence-server`.

pub mod analytics;
pub mod cluster;
pub mod events;
pub mod fixtures;
pub mod http;
mod node;
pub mod raw;
pub mod secure;
pub mod tools;
pub mod wait;

pub use node::{Node, NodeOptions, loadgen_binary, server_binary};
