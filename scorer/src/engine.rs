//! Applying one event to one subject, exactly as SCORING.md says.

use std::sync::Arc;

use crate::compile::RuleSet;
use crate::config::ScoringConfig;
use crate::context::SubjectContext;
use crate::error::Result;
use crate::eval::SubjectView;
use crate::event::Event;
use crate::outcome::{Alert, EventOutcome, Outcomes, ScoreChange};
use crate::state::{RuleHistory, SubjectState, event_digest};
use crate::validate::{validate_config, validate_rule_windows};

/// The decay factor over `dt_nanos` of event time with a half-life of `half_life_nanos`:
/// the correctly rounded double nearest to 2^(-x), x = `dt_nanos as f64 / half_life_nanos as
/// f64` (SCORING.md, step 3).
///
/// CORE-MATH's `exp2` is proven correctly rounded, so the bits are the same on every
/// platform and anyone can recompute them with arbitrary-precision arithmetic; `powf` and
/// the platform `exp2` it compiles to are wrong in the last bit for about one input in a
/// thousand, differently per math library.
pub fn decay_factor(dt_nanos: i64, half_life_nanos: i64) -> f64 {
    core_math::exp2(-(dt_nanos as f64 / half_life_nanos as f64))
}

/// A rule set and a config, ready to score. Cheap to clone (both are shared); build a new
/// one when either changes — events applied afterwards use it, nothing is rescored.
#[derive(Clone, Debug)]
pub struct Engine {
    rules: Arc<RuleSet>,
    config: Arc<ScoringConfig>,
}

impl Engine {
    /// An engine for a compiled rule set and a config; the config is validated here.
    pub fn new(rules: Arc<RuleSet>, config: Arc<ScoringConfig>) -> Result<Self> {
        validate_config(&config)?;
        validate_rule_windows(rules.rules(), &config)?;
        Ok(Self { rules, config })
    }

    /// The rule set.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// The config.
    pub fn config(&self) -> &ScoringConfig {
        &self.config
    }

    /// The state of a subject first seen at event time `t` (step 2 of SCORING.md), or `None`
    /// when the config does not create unknown subjects.
    pub fn new_subject(&self, subject_id: &str, t: crate::Timestamp) -> Option<SubjectState> {
        let config = &*self.config;
        config.auto_create_subjects.then(|| {
            SubjectState::new(
                subject_id,
                config.baseline,
                config.tier_of(config.baseline),
                t,
            )
        })
    }

    /// Applies `event` to its subject's `state` (steps 1 and 3 to 5 of SCORING.md), reading
    /// outside values from `ctx`, and appends the changes and alerts to `out`.
    pub fn apply(
        &self,
        state: &mut SubjectState,
        event: &Event,
        ctx: &SubjectContext,
        out: &mut Outcomes,
    ) -> EventOutcome {
        let config = &*self.config;
        let t = event.occurred_at;
        // Step 1, bounded (docs/ARCHITECTURE.md): a duplicate is told by the window; an event
        // at or before its floor could be a duplicate of a forgotten one, so it is refused.
        let digest = event_digest(&event.event_id);
        if state.dedup.contains(digest) {
            return EventOutcome::Duplicate;
        }
        if state.dedup.is_too_late(t) {
            return EventOutcome::TooLate;
        }
        let before_score = state.score;
        let before_tier = Arc::clone(&state.tier);

        // Step 3: decay from the latest applied time; a late event does not decay backwards.
        let dt = t.nanos().saturating_sub(state.last_time.nanos());
        if dt > 0 {
            if let Some(half_life) = config.half_life_nanos() {
                state.score =
                    config.baseline + (state.score - config.baseline) * decay_factor(dt, half_life);
            }
            state.last_time = t;
        }

        // Step 4: the rules, seeing score and tier as they are after decay.
        let decayed_tier = config.tier_of(state.score);
        let view = SubjectView {
            ctx,
            score: state.score,
            tier: &decayed_tier,
            at: t,
        };
        let mut score = state.score;
        let mut changes = 0;
        for rule in self
            .rules
            .candidates(&event.event_type, &event.event_subtype)
        {
            if !rule.is_valid_at(t) || !rule.conditions.iter().all(|c| c.holds(event, &view)) {
                continue;
            }
            let history = state.rule_history(&rule.id);
            if let (Some(cooldown), Some(last)) =
                (rule.cooldown, history.and_then(RuleHistory::last))
            {
                if t < last.saturating_add(cooldown) {
                    continue;
                }
            }
            if let (Some((max, window)), Some(history)) = (rule.cap, history) {
                if history.count_in_window(t, window) >= max {
                    continue;
                }
            }
            let factor = rule
                .multipliers
                .iter()
                .filter(|(when, _)| when.holds(event, &view))
                .fold(1.0, |factor, (_, f)| factor * f);
            let new_score = (score + rule.points * factor)
                .max(config.min_score)
                .min(config.max_score);
            out.changes.push(ScoreChange {
                event_id: event.event_id.clone(),
                subject_id: event.subject_id.clone(),
                rule_id: Arc::clone(&rule.id),
                rule_version: rule.version,
                config_version: config.version,
                old_score: score,
                new_score,
                delta: new_score - score,
                factor,
                at: t,
                reason: Arc::clone(&rule.reason),
                inputs: rule.inputs(ctx, t),
            });
            score = new_score;
            changes += 1;
            state.record_application(&rule.id, t);
        }

        // Bound the state: the window forgets what the floor covers, and rule histories what
        // no rule window can reach from above the floor.
        state.dedup.record(
            t,
            digest,
            state.last_time,
            config.dedup_horizon,
            config.dedup_window_len(),
        );
        if let Some(floor) = state.dedup.floor() {
            state.prune_rule_histories(floor.saturating_sub(config.max_rule_window));
        }

        // Step 5: snapshot and alerts.
        state.score = score;
        state.tier = config.tier_of(score);
        state.last_event_id.clone_from(&event.event_id);
        state.applied_events += 1;
        state.config_version = config.version;
        let crossed: Vec<f64> = config
            .alert_thresholds
            .iter()
            .copied()
            .filter(|&th| (before_score < th && th <= score) || (score < th && th <= before_score))
            .collect();
        if state.tier != before_tier || !crossed.is_empty() {
            out.alerts.push(Alert {
                subject_id: event.subject_id.clone(),
                event_id: event.event_id.clone(),
                old_score: before_score,
                new_score: score,
                old_tier: before_tier,
                new_tier: Arc::clone(&state.tier),
                thresholds_crossed: crossed,
                at: t,
            });
        }
        EventOutcome::Applied { changes }
    }
}
