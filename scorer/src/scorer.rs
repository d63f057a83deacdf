//! A self-contained scorer holding every subject's state in memory: for simulation, replay,
//! benchmarks and tests. A server keeps state in its stores and calls [`Engine::apply`].

use rustc_hash::FxHashMap;

use crate::context::SubjectContext;
use crate::engine::Engine;
use crate::event::Event;
use crate::outcome::{EventOutcome, Outcomes};
use crate::state::SubjectState;

/// The context of a subject nobody told the scorer about.
static NO_CONTEXT: SubjectContext = SubjectContext::EMPTY;

/// An engine plus the state and outside context of every subject it has seen.
#[derive(Clone, Debug)]
pub struct Scorer {
    engine: Engine,
    states: FxHashMap<String, SubjectState>,
    contexts: FxHashMap<String, SubjectContext>,
}

impl Scorer {
    /// A scorer with no subjects.
    pub fn new(engine: Engine) -> Self {
        Self { engine, states: FxHashMap::default(), contexts: FxHashMap::default() }
    }

    /// The engine in use.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Switches to another rule set or config; subjects keep their state.
    pub fn set_engine(&mut self, engine: Engine) {
        self.engine = engine;
    }

    /// Sets a subject's outside context (profile, lists, association).
    pub fn set_context(&mut self, subject_id: impl Into<String>, ctx: SubjectContext) {
        self.contexts.insert(subject_id.into(), ctx);
    }

    /// Restores a subject's saved state, replacing any it had.
    pub fn restore(&mut self, state: SubjectState) {
        self.states.insert(state.subject_id.clone(), state);
    }

    /// A subject's state.
    pub fn state(&self, subject_id: &str) -> Option<&SubjectState> {
        self.states.get(subject_id)
    }

    /// Every subject's state, in no particular order.
    pub fn states(&self) -> impl Iterator<Item = &SubjectState> {
        self.states.values()
    }

    /// Takes every subject's state out, in no particular order.
    pub fn into_states(self) -> impl Iterator<Item = SubjectState> {
        self.states.into_values()
    }

    /// How many subjects have a state.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// True before any subject was seen.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Applies one event, creating its subject when the config allows.
    pub fn apply(&mut self, event: &Event, out: &mut Outcomes) -> EventOutcome {
        let ctx = self.contexts.get(&event.subject_id).unwrap_or(&NO_CONTEXT);
        if let Some(state) = self.states.get_mut(&event.subject_id) {
            return self.engine.apply(state, event, ctx, out);
        }
        let Some(mut state) = self.engine.new_subject(&event.subject_id, event.occurred_at) else {
            return EventOutcome::UnknownSubject;
        };
        let outcome = self.engine.apply(&mut state, event, ctx, out);
        self.states.insert(event.subject_id.clone(), state);
        outcome
    }
}
