//! `Simulate`: the engine over given rules, config, contexts and events, touching no store.

use std::collections::BTreeMap;
use std::sync::Arc;

use credence_proto::v1 as pb;
use credence_scorer::{
    Engine, EventOutcome, Outcomes, RuleSet, ScoringConfig, SubjectContext, SubjectState,
};

use crate::convert::{self, ConvertError};
use crate::error::{Result, SimulationError, quote};

/// Most events one simulation runs.
pub const MAX_EVENTS: usize = 100_000;

fn at(field: String) -> impl FnOnce(ConvertError) -> SimulationError {
    move |e| SimulationError::from(e.within(&field))
}

/// Runs a dry run: `Simulate` of the contract, answered as the node answers it. Every
/// refusal names the request field at fault; an event that cannot be scored is refused in
/// its result, not as an error.
///
/// Snapshots' `updated_at` is the time of the run; everything else depends on the request
/// alone.
pub fn simulate(request: &pb::SimulateRequest) -> Result<pb::SimulateResponse> {
    if request.events.len() > MAX_EVENTS {
        return Err(SimulationError::TooManyEvents {
            count: request.events.len(),
            max: MAX_EVENTS,
        });
    }
    let mut rules = Vec::with_capacity(request.rules.len());
    for (i, r) in request.rules.iter().enumerate() {
        let mut rule = convert::rule(r).map_err(at(format!("rules[{i}]")))?;
        if rule.version == 0 {
            rule.version = 1;
        }
        rules.push(rule);
    }
    let config = match &request.config {
        // A field left out takes the default config's value, as a left-out config does.
        Some(c) => convert::config(c, &ScoringConfig::default()).map_err(at("config".into()))?,
        None => ScoringConfig::default(),
    };
    let set = RuleSet::compile(0, rules)?;
    let engine = Engine::new(Arc::new(set), Arc::new(config))?;

    let mut contexts: BTreeMap<String, SubjectContext> = BTreeMap::new();
    for p in &request.profiles {
        contexts.entry(p.subject_id.clone()).or_default().profile =
            Some(convert::profile_context(p));
    }
    for (i, e) in request.list_entries.iter().enumerate() {
        let kind = convert::list_kind("kind", e.kind).map_err(at(format!("list_entries[{i}]")))?;
        let expires_at = e
            .expires_at
            .as_ref()
            .map(|t| convert::timestamp("expires_at", t))
            .transpose()
            .map_err(at(format!("list_entries[{i}]")))?;
        contexts
            .entry(e.subject_id.clone())
            .or_default()
            .lists
            .push(credence_scorer::ListEntry { kind, expires_at });
    }
    for (subject, value) in &request.associations {
        contexts.entry(subject.clone()).or_default().association = Some(*value);
    }
    let mut states: BTreeMap<String, SubjectState> = BTreeMap::new();
    for (i, s) in request.initial_state.iter().enumerate() {
        let state = convert::state(s).map_err(at(format!("initial_state[{i}]")))?;
        states.insert(state.subject_id.clone(), state);
    }

    let mut response = pb::SimulateResponse::default();
    let empty = SubjectContext::default();
    let mut out = Outcomes::default();
    for (i, e) in request.events.iter().enumerate() {
        #[allow(clippy::cast_possible_truncation, reason = "at most MAX_EVENTS")]
        let index = i as u32;
        let (outcome, reason) = match convert::event(e) {
            Err(err) => (pb::EventOutcome::Rejected, err.to_string()),
            Ok(event) => {
                let ctx = contexts.get(&event.subject_id).unwrap_or(&empty);
                let state = match states.get_mut(&event.subject_id) {
                    Some(s) => Some(s),
                    None => engine
                        .new_subject(&event.subject_id, event.occurred_at)
                        .map(|s| states.entry(event.subject_id.clone()).or_insert(s)),
                };
                match state {
                    None => (
                        pb::EventOutcome::Rejected,
                        format!(
                            "subject_id: {} has no initial state and auto_create_subjects is off",
                            quote(&event.subject_id)
                        ),
                    ),
                    Some(state) => {
                        out.clear();
                        match engine.apply(state, &event, ctx, &mut out) {
                            EventOutcome::Duplicate => (
                                pb::EventOutcome::Duplicate,
                                format!("event_id {} was applied before", quote(&event.event_id)),
                            ),
                            EventOutcome::TooLate => (
                                pb::EventOutcome::TooLate,
                                format!(
                                    "occurred_at {} is at or before the subject's dedup floor",
                                    event.occurred_at
                                ),
                            ),
                            EventOutcome::Applied { .. } | EventOutcome::UnknownSubject => {
                                response
                                    .changes
                                    .extend(out.changes.iter().map(convert::score_change_to_pb));
                                response
                                    .alerts
                                    .extend(out.alerts.iter().map(convert::alert_to_pb));
                                (pb::EventOutcome::Accepted, String::new())
                            }
                        }
                    }
                }
            }
        };
        response.results.push(pb::EventResult {
            index,
            event_id: e.event_id.clone(),
            outcome: outcome.into(),
            reason,
        });
    }
    let now = credence_scorer::Timestamp::now();
    for state in states.values() {
        response.snapshots.push(convert::snapshot_to_pb(state, now));
        response.final_state.push(convert::state_to_pb(state));
    }
    Ok(response)
}
