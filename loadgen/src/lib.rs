//! Load generator for Credence: synthetic events published over gRPC in batches, and a report
//! of the throughput and latencies seen by the client and by the server's metrics.
//!
//! The binary `credence-loadgen` wires the modules together: [`args`] reads the command
//! line, [`generate`] makes encoded batches, [`publish`] sends them (timing them into [`latency`]
//! histograms), [`metrics`] reads the server's Prometheus endpoint and [`report`] prints the
//! result.

pub mod args;
pub mod generate;
pub mod latency;
pub mod metrics;
pub mod probe;
pub mod progress;
pub mod publish;
pub mod report;
pub mod world;
