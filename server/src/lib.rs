//! The Credence node. Today: the conversions between the `credence.v1` contract and the
//! engine's domain types, used by the gRPC handlers that come with the embedded-platform
//! issue. The `credence` binary (`src/main.rs`) is the command line.

pub mod convert;
