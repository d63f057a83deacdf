//! Simulations in this process (the `local` feature): the node's own `Simulate` code
//! (`credence-simulation`), no node, no store. The request and the result take the same
//! conversions as [`Client::simulate`](crate::Client::simulate), so a local run gives the
//! node's numbers to the bit and its refusals word for word.

use std::path::Path;

use crate::{Error, Result, Rule, ScoringConfig, Simulation, SimulationResult};

/// Runs a [`Simulation`] here, as the node's `Simulate` does. A request the node would
/// refuse is [`Error::InvalidArgument`] with the node's message (and `attempts` 0: nothing
/// was sent).
///
/// Only the snapshots' `updated_at` (the time of the run) can differ from the node's answer.
///
/// ```
/// use credence::{Event, Rule, RuleStatus, Simulation};
/// use chrono::{TimeZone as _, Utc};
///
/// let simulation = Simulation {
///     rules: vec![Rule::new("ping", "sdk", 5.0).status(RuleStatus::Active)],
///     events: vec![Event::new("e-1", "S-1", "sdk", Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap())],
///     ..Simulation::default()
/// };
/// let result = credence::simulate_locally(&simulation)?;
/// assert_eq!(result.snapshots[0].score, 1005.0); // the default baseline, 1000, plus 5
///
/// let bad = Simulation {
///     rules: vec![Rule::new("nan", "sdk", f64::NAN)],
///     ..Simulation::default()
/// };
/// let err = credence::simulate_locally(&bad).unwrap_err();
/// assert!(matches!(err, credence::Error::InvalidArgument { attempts: 0, .. }));
/// assert!(err.message().starts_with("rule \"nan\": points"), "{err}");
/// # Ok::<(), credence::Error>(())
/// ```
pub fn simulate_locally(simulation: &Simulation) -> Result<SimulationResult> {
    let response = credence_simulation::simulate(&simulation.to_proto()).map_err(|e| {
        Error::InvalidArgument {
            // What the node's status would carry (it caps every message the same way).
            message: credence_simulation::capped(e.to_string()),
            attempts: 0,
        }
    })?;
    SimulationResult::from_proto(response)
}

/// A rule file as [`load_rule_file`] reads it: the scoring config (the default config when
/// the file has none) and the rules.
#[derive(Clone, Debug, PartialEq)]
pub struct RuleFile {
    /// The file's `config`.
    pub config: ScoringConfig,
    /// The file's `rules`, in the file's order.
    pub rules: Vec<Rule>,
}

/// Reads and validates a rule file the way `credence rules check` and `credence simulate`
/// do: YAML, or JSON when the name ends in `.json` (the format of `scorer/rules/example.yaml`).
/// A file that cannot be read or is invalid is [`Error::Input`] with the file's name and
/// the field at fault.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let path = std::env::temp_dir().join(format!("credence-doc-{}.yaml", std::process::id()));
/// std::fs::write(
///     &path,
///     "config:\n  baseline: 500\n  alert_thresholds: []\n\
///      rules:\n  - {id: ping, status: active, event_type: sdk, points: 5}\n",
/// )?;
/// let file = credence::load_rule_file(&path)?;
/// std::fs::remove_file(&path)?;
/// assert_eq!(file.rules[0].id, "ping");
/// assert_eq!(file.config.baseline, 500.0);
/// let simulation = credence::Simulation {
///     rules: file.rules,
///     config: Some(file.config),
///     ..credence::Simulation::default()
/// };
/// assert!(credence::simulate_locally(&simulation)?.results.is_empty());
/// assert!(matches!(
///     credence::load_rule_file("no/such/rules.yaml"),
///     Err(credence::Error::Input(_))
/// ));
/// # Ok(()) }
/// ```
pub fn load_rule_file(path: impl AsRef<Path>) -> Result<RuleFile> {
    use credence_simulation::convert;
    let file =
        credence_scorer::RuleFile::load(path.as_ref()).map_err(|e| Error::Input(e.to_string()))?;
    Ok(RuleFile {
        config: ScoringConfig::from_proto(convert::config_to_pb(&file.config))?,
        rules: file
            .rules
            .iter()
            .map(|r| Rule::from_proto(convert::rule_to_pb(r)))
            .collect::<Result<_>>()?,
    })
}

#[cfg(test)]
mod tests {
    use credence_simulation::convert;

    use super::*;

    /// What the SDK's types hold of a rule file goes back to the node's types unchanged, so
    /// a simulation of a loaded file runs the file's rules and config.
    #[test]
    fn a_loaded_rule_file_is_the_files_rules_and_config_exactly() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scorer/rules/example.yaml");
        let loaded = load_rule_file(&path).expect("the example file loads");
        let file = credence_scorer::RuleFile::load(&path).expect("the example file loads");
        assert_eq!(loaded.rules.len(), file.rules.len());
        for (sdk, domain) in loaded.rules.iter().zip(&file.rules) {
            assert_eq!(&convert::rule(&sdk.to_proto()).expect("valid"), domain);
        }
        let default = credence_scorer::ScoringConfig::default();
        let config = convert::config(&loaded.config.to_proto(), &default).expect("valid");
        assert_eq!(config, file.config);

        // Decay off in the file is off in the simulation (not the default's 90 days).
        let off = credence_scorer::RuleFile {
            config: credence_scorer::ScoringConfig {
                decay: credence_scorer::Decay { half_life: None },
                ..file.config
            },
            rules: file.rules,
        };
        let dir = std::env::temp_dir().join(format!("credence-local-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let path = dir.join("no-decay.json");
        off.save(&path).expect("written");
        let loaded = load_rule_file(&path).expect("loads");
        std::fs::remove_dir_all(&dir).expect("removed");
        assert_eq!(loaded.config.half_life, None);
        let config = convert::config(&loaded.config.to_proto(), &default).expect("valid");
        assert_eq!(config, off.config);
    }

    #[test]
    fn an_unreadable_or_invalid_file_is_bad_input_naming_it() {
        let err = load_rule_file("no/such/rules.yaml").unwrap_err();
        assert!(
            matches!(&err, Error::Input(m) if m.starts_with("no/such/rules.yaml")),
            "{err:?}"
        );
        let dir = std::env::temp_dir().join(format!("credence-local-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let path = dir.join("bad.yaml");
        std::fs::write(
            &path,
            "rules:\n  - {id: r, event_type: t, points: 1, cooldown: -1s}\n",
        )
        .expect("written");
        let err = load_rule_file(&path).unwrap_err();
        std::fs::remove_dir_all(&dir).expect("removed");
        assert!(matches!(err, Error::Input(_)), "{err:?}");
    }
}
