//! A rule set compiled for scoring: validated once, indexed by event type, paths parsed.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::context::SubjectContext;
use crate::error::Result;
use crate::eval::CompiledCondition;
use crate::path::{FieldPath, SubjectField};
use crate::rule::{Condition, Rule, RuleStatus};
use crate::time::{Duration, Timestamp};
use crate::validate::validate_rules;
use crate::value::Value;

/// An active rule, ready to meet events.
#[derive(Clone, Debug)]
pub(crate) struct CompiledRule {
    pub(crate) id: Arc<str>,
    pub(crate) version: u32,
    pub(crate) reason: Arc<str>,
    pub(crate) conditions: Vec<CompiledCondition>,
    pub(crate) multipliers: Vec<(CompiledCondition, f64)>,
    pub(crate) points: f64,
    pub(crate) cooldown: Option<Duration>,
    pub(crate) cap: Option<(usize, Duration)>,
    pub(crate) valid_from: Option<Timestamp>,
    pub(crate) valid_until: Option<Timestamp>,
    /// The outside subject fields the conditions and multipliers read, each once.
    pub(crate) outside_reads: Vec<SubjectField>,
}

impl CompiledRule {
    fn new(rule: &Rule) -> Self {
        let compile = |c: &Condition| CompiledCondition {
            // validated before compiling, so the path parses
            path: FieldPath::parse(&c.field).unwrap_or(FieldPath::Payload(Vec::new())),
            op: c.op,
            value: c.value.clone(),
        };
        let conditions: Vec<_> = rule.conditions.iter().map(compile).collect();
        let multipliers: Vec<_> = rule
            .multipliers
            .iter()
            .map(|m| (compile(&m.when), m.factor))
            .collect();
        let mut outside_reads: Vec<SubjectField> = conditions
            .iter()
            .chain(multipliers.iter().map(|(c, _)| c))
            .filter_map(|c| match c.path {
                FieldPath::Subject(field) if field.is_outside() => Some(field),
                _ => None,
            })
            .collect();
        outside_reads.sort_unstable();
        outside_reads.dedup();
        Self {
            id: Arc::from(rule.id.as_str()),
            version: rule.version,
            reason: Arc::from(rule.display_name()),
            conditions,
            multipliers,
            points: rule.points,
            cooldown: rule.cooldown.filter(|d| !d.is_zero()),
            cap: rule.cap.map(|c| (c.max as usize, c.window)),
            valid_from: rule.valid_from,
            valid_until: rule.valid_until,
            outside_reads,
        }
    }

    /// Whether event time `t` is inside the rule's validity window `[from, until)`.
    pub(crate) fn is_valid_at(&self, t: Timestamp) -> bool {
        self.valid_from.is_none_or(|from| t >= from)
            && self.valid_until.is_none_or(|until| t < until)
    }

    /// The outside values this rule read for an event at `t`, by path.
    pub(crate) fn inputs(&self, ctx: &SubjectContext, t: Timestamp) -> BTreeMap<String, Value> {
        self.outside_reads
            .iter()
            .filter_map(|&f| ctx.outside_value(f, t).map(|v| (f.path().to_owned(), v)))
            .collect()
    }
}

/// The active rules of one event type, ready per subtype so that an event meets exactly
/// the rules that can match it, already in (priority, id) order.
#[derive(Debug, Default)]
struct TypeIndex {
    /// For each subtype some rule names: the rules naming it plus those naming none.
    by_subtype: FxHashMap<Box<str>, Vec<CompiledRule>>,
    /// For any other subtype: the rules naming no subtype.
    any_subtype: Vec<CompiledRule>,
}

/// A validated rule set compiled for scoring. Build it once per rule-set version and share it
/// (it is immutable); only ACTIVE rules are indexed, by event type then subtype.
#[derive(Debug, Default)]
pub struct RuleSet {
    version: u64,
    rules: Vec<Rule>,
    by_type: FxHashMap<Box<str>, TypeIndex>,
    active_count: usize,
}

impl RuleSet {
    /// Validates `rules` (all of them, drafts and retired ones included) and compiles the
    /// active ones. `version` identifies the set (it grows with every rule change).
    pub fn compile(version: u64, rules: Vec<Rule>) -> Result<Self> {
        validate_rules(&rules)?;
        let mut active: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.status == RuleStatus::Active)
            .collect();
        active.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));
        let mut by_type: FxHashMap<Box<str>, TypeIndex> = FxHashMap::default();
        for rule in &active {
            let index = by_type
                .entry(Box::from(rule.event_type.as_str()))
                .or_default();
            if let Some(subtype) = &rule.event_subtype {
                index
                    .by_subtype
                    .entry(Box::from(subtype.as_str()))
                    .or_default();
            }
        }
        // `active` is in run order, so pushing in its order keeps every list in run order.
        for rule in active {
            let compiled = CompiledRule::new(rule);
            let Some(index) = by_type.get_mut(rule.event_type.as_str()) else {
                continue;
            };
            if let Some(subtype) = &rule.event_subtype {
                if let Some(list) = index.by_subtype.get_mut(subtype.as_str()) {
                    list.push(compiled);
                }
            } else {
                for list in index.by_subtype.values_mut() {
                    list.push(compiled.clone());
                }
                index.any_subtype.push(compiled);
            }
        }
        let active_count = rules
            .iter()
            .filter(|r| r.status == RuleStatus::Active)
            .count();
        Ok(Self {
            version,
            rules,
            by_type,
            active_count,
        })
    }

    /// The set's version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Every rule of the set as given, whatever its status.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// How many rules score.
    pub fn active_count(&self) -> usize {
        self.active_count
    }

    /// The active rules that can match an event of this type and subtype, in run order.
    pub(crate) fn candidates(&self, event_type: &str, event_subtype: &str) -> &[CompiledRule] {
        let Some(index) = self.by_type.get(event_type) else {
            return &[];
        };
        index
            .by_subtype
            .get(event_subtype)
            .unwrap_or(&index.any_subtype)
    }
}
