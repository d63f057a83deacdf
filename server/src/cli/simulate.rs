//! `credence simulate`: the engine over a file of events, offline.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use anyhow::{Context as _, bail};
use credence_scorer::{Event, EventOutcome, Outcomes, RuleFile, Scorer, SubjectContext};
use serde::{Deserialize, Serialize};

use super::Format;

/// One line of a contexts file (unknown fields are refused by `SubjectContext`).
#[derive(Debug, Deserialize)]
struct ContextLine {
    subject_id: String,
    #[serde(flatten)]
    context: SubjectContext,
}

/// One line of JSON output.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum OutputLine<'a> {
    Outcome {
        line: usize,
        event_id: &'a str,
        outcome: EventOutcome,
    },
    Change(&'a credence_scorer::ScoreChange),
    Alert(&'a credence_scorer::Alert),
    State(&'a credence_scorer::SubjectState),
}

/// Reads JSON lines, skipping blank ones, and names the file and line of a bad one.
fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Vec<(usize, T)>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut items = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let item = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a valid line", path.display(), i + 1))?;
        items.push((i + 1, item));
    }
    Ok(items)
}

/// Scores the events of `events_path` with the rule file at `rules_path` and prints the
/// results.
pub(crate) fn run(
    rules_path: &Path,
    events_path: &Path,
    contexts_path: Option<&Path>,
    format: Format,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let file = RuleFile::load(rules_path)?;
    let mut scorer = Scorer::new(file.engine(1)?);
    if let Some(path) = contexts_path {
        for (_, line) in read_lines::<ContextLine>(path)? {
            scorer.set_context(&line.subject_id, line.context);
        }
    }
    let events: Vec<(usize, Event)> = read_lines(events_path)?;
    if events.is_empty() {
        bail!("{}: no events", events_path.display());
    }
    let mut outcomes = Outcomes::default();
    let mut results = Vec::with_capacity(events.len());
    for (line, event) in &events {
        results.push((*line, event, scorer.apply(event, &mut outcomes)));
    }
    let mut states: Vec<_> = scorer.states().collect();
    states.sort_by(|a, b| a.subject_id.cmp(&b.subject_id));
    match format {
        Format::Json => {
            let mut emit = |item: OutputLine<'_>| -> anyhow::Result<()> {
                writeln!(out, "{}", serde_json::to_string(&item)?).context("writing output")
            };
            for (line, event, outcome) in &results {
                emit(OutputLine::Outcome {
                    line: *line,
                    event_id: &event.event_id,
                    outcome: *outcome,
                })?;
            }
            outcomes
                .changes
                .iter()
                .try_for_each(|c| emit(OutputLine::Change(c)))?;
            outcomes
                .alerts
                .iter()
                .try_for_each(|a| emit(OutputLine::Alert(a)))?;
            states
                .into_iter()
                .try_for_each(|s| emit(OutputLine::State(s)))?;
        }
        Format::Text => write_report(out, &results, &outcomes, &states)?,
    }
    Ok(())
}

fn write_report(
    out: &mut dyn Write,
    results: &[(usize, &Event, EventOutcome)],
    outcomes: &Outcomes,
    states: &[&credence_scorer::SubjectState],
) -> anyhow::Result<()> {
    let mut changes: BTreeMap<&str, Vec<&credence_scorer::ScoreChange>> = BTreeMap::new();
    for change in &outcomes.changes {
        changes
            .entry(change.subject_id.as_str())
            .or_default()
            .push(change);
    }
    let count = |f: fn(&EventOutcome) -> bool| results.iter().filter(|(_, _, o)| f(o)).count();
    writeln!(
        out,
        "{} events: {} applied, {} duplicates, {} too late, {} unknown subjects; {} score changes, \
         {} alerts",
        results.len(),
        count(|o| matches!(o, EventOutcome::Applied { .. })),
        count(|o| matches!(o, EventOutcome::Duplicate)),
        count(|o| matches!(o, EventOutcome::TooLate)),
        count(|o| matches!(o, EventOutcome::UnknownSubject)),
        outcomes.changes.len(),
        outcomes.alerts.len(),
    )?;
    for state in states {
        writeln!(
            out,
            "\n{}  score {:.2}  tier {}  ({} events, last at {})",
            state.subject_id, state.score, state.tier, state.applied_events, state.last_time
        )?;
        for c in changes.get(state.subject_id.as_str()).into_iter().flatten() {
            writeln!(
                out,
                "  {}  {:<10} {:>+9.2}  {:>8.2} -> {:<8.2} {}@{} ({}){}",
                c.at,
                c.event_id,
                c.delta,
                c.old_score,
                c.new_score,
                c.rule_id,
                c.rule_version,
                c.reason,
                if c.factor == 1.0 {
                    String::new()
                } else {
                    format!(" x{}", round(c.factor))
                },
            )?;
        }
    }
    if !outcomes.alerts.is_empty() {
        writeln!(out, "\nalerts:")?;
    }
    for alert in &outcomes.alerts {
        writeln!(
            out,
            "  {}  {}: {:.2} -> {:.2}, tier {} -> {}{}",
            alert.at,
            alert.subject_id,
            alert.old_score,
            alert.new_score,
            alert.old_tier,
            alert.new_tier,
            if alert.thresholds_crossed.is_empty() {
                String::new()
            } else {
                format!(", crossed {:?}", alert.thresholds_crossed)
            },
        )?;
    }
    Ok(())
}

/// A factor for people: at most six decimals, no float noise such as `3.5999999999999996`.
fn round(factor: f64) -> f64 {
    (factor * 1e6).round() / 1e6
}
