//! `credence rules check`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use credence_scorer::{RuleFile, RuleStatus};

/// Validates a rule file and prints a summary of what it holds.
pub(crate) fn check(path: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let file = RuleFile::load(path)?;
    let engine = file.engine(1)?;
    let mut by_type: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for rule in &file.rules {
        let counts = by_type.entry(rule.event_type.as_str()).or_default();
        let slot = match rule.status {
            RuleStatus::Active => 0,
            RuleStatus::Draft => 1,
            RuleStatus::Retired => 2,
        };
        counts[slot] += 1;
    }
    let config = engine.config();
    let write =
        |out: &mut dyn Write, line: String| writeln!(out, "{line}").context("writing output");
    write(out, format!("{}: ok", path.display()))?;
    write(
        out,
        format!(
            "  {} rules, {} active; config: baseline {}, bounds [{}, {}], {} tiers, decay {}",
            file.rules.len(),
            engine.rules().active_count(),
            config.baseline,
            config.min_score,
            config.max_score,
            config.tiers.len(),
            config
                .decay
                .half_life
                .map_or_else(|| "off".to_owned(), |h| format!("half-life {h}")),
        ),
    )?;
    for (event_type, [active, draft, retired]) in by_type {
        write(
            out,
            format!("  {event_type:<12} {active} active, {draft} draft, {retired} retired"),
        )?;
    }
    Ok(())
}
