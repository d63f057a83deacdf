//! Credence's dry run, `Simulate`: the engine over given rules, config, contexts and events,
//! touching no store. The node answers the RPC with [`simulate`]; the SDKs run the same
//! function in-process (`credence::simulate_locally`), so a local run gives the node's
//! numbers to the bit.
//!
//! [`convert`] holds the pure conversions between the `credence.v1` messages and the
//! engine's types that it needs; the node builds its store conversions on them. Nothing here
//! does I/O or links a store.
//!
//! ```
//! use credence_proto::v1 as pb;
//!
//! let rule = pb::Rule {
//!     id: "ping".into(),
//!     event_type: "sdk".into(),
//!     status: pb::RuleStatus::Active.into(),
//!     points: 5.0,
//!     ..Default::default()
//! };
//! let event = pb::Event {
//!     event_id: "e-1".into(),
//!     subject_id: "S-1".into(),
//!     event_type: "sdk".into(),
//!     occurred_at: Some(prost_types::Timestamp { seconds: 1_767_225_600, nanos: 0 }),
//!     ..Default::default()
//! };
//! let response = credence_simulation::simulate(&pb::SimulateRequest {
//!     rules: vec![rule],
//!     events: vec![event],
//!     ..Default::default()
//! })?;
//! assert_eq!(response.snapshots[0].score, 1005.0); // the default baseline, 1000, plus 5
//! # Ok::<(), credence_simulation::SimulationError>(())
//! ```

pub mod convert;
mod error;
mod simulate;

pub use error::{ConvertError, MAX_MESSAGE_BYTES, Result, SimulationError, capped, quote};
pub use simulate::{MAX_EVENTS, simulate};
