//! The Credence node: the gRPC services over the storage roles, the scoring pipeline, the
//! node configuration, and the conversions between the contract and the domain.

pub mod association;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod convert;
pub mod dashboard;
pub mod error;
pub mod fuzzing;
pub mod health;
pub mod ingest;
pub mod listener;
pub mod metrics;
pub mod node;
pub mod pipeline;
pub mod services;
pub mod tls;
