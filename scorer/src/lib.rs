//! The Credence scoring engine: the exact semantics of SCORING.md as pure code.
//!
//! No I/O (beyond reading and writing rule files on request), no async, no generated
//! protobuf types. A server, a replay job and a simulation all use the same [`Engine`], so
//! the same events in the same order give the same scores to the last bit.
//!
//! ```
//! use credence_scorer::{Event, Outcomes, RuleFile, Scorer, Timestamp};
//!
//! let engine = RuleFile::example()?.engine(1)?;
//! let mut scorer = Scorer::new(engine);
//! let mut out = Outcomes::default();
//! let at = Timestamp::parse_rfc3339("2026-01-01T10:00:00Z").unwrap();
//! let event = Event::new("e-1", "SUBJ-1", "financial", "late_payment", at).with("days_late", 45.0);
//! scorer.apply(&event, &mut out);
//! let state = scorer.state("SUBJ-1").unwrap();
//! assert!(state.score < 1000.0);
//! for change in &out.changes {
//!     println!("{}@{}: {:+} ({})", change.rule_id, change.rule_version, change.delta, change.reason);
//! }
//! # Ok::<(), credence_scorer::ScorerError>(())
//! ```

mod compile;
mod config;
mod context;
mod engine;
mod error;
mod eval;
mod event;
mod files;
mod outcome;
mod path;
mod rule;
mod scorer;
mod state;
mod time;
mod validate;
mod value;

pub use compile::RuleSet;
pub use config::{
    DEFAULT_DEDUP_HORIZON, DEFAULT_DEDUP_WINDOW_EVENTS, DEFAULT_MAX_RULE_WINDOW, Decay,
    ScoringConfig, Tier,
};
pub use context::{ListEntry, ListKind, Profile, SubjectContext};
pub use engine::{Engine, decay_factor};
pub use error::{Result, ScorerError};
pub use event::{Event, Location};
pub use files::{EXAMPLE_RULES_YAML, RuleFile};
pub use outcome::{Alert, EventOutcome, Outcomes, ScoreChange};
pub use path::{EventField, FieldPath, SubjectField};
pub use rule::{Cap, Condition, Multiplier, Operator, Rule, RuleStatus};
pub use scorer::Scorer;
pub use state::{DedupWindow, RuleHistory, SubjectState, event_digest};
pub use time::{Duration, Timestamp};
pub use validate::{limits, validate_config, validate_rule, validate_rule_windows, validate_rules};
pub use value::{Payload, Value};
