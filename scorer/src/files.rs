//! Rule sets and configs as YAML or JSON files, the way a rule set kept in git is written.

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::compile::RuleSet;
use crate::config::ScoringConfig;
use crate::engine::Engine;
use crate::error::{Result, ScorerError};
use crate::rule::Rule;
use crate::validate::{validate_config, validate_rule_windows, validate_rules};

/// The example rule set shipped with Credence (`scorer/rules/example.yaml`): the default
/// everywhere a rule set is needed and none is given.
pub const EXAMPLE_RULES_YAML: &str = include_str!("../rules/example.yaml");

/// A rule file: an optional config (defaults when absent) and the rules.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// The scoring config.
    #[serde(default)]
    pub config: ScoringConfig,
    /// The rules, in any order.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

impl RuleFile {
    /// Parses YAML and validates it; `source_name` names the text in errors.
    pub fn from_yaml_str(text: &str, source_name: &str) -> Result<Self> {
        let file: Self = serde_norway::from_str(text).map_err(|e| ScorerError::Parse {
            source_name: source_name.to_owned(),
            problem: e.to_string(),
        })?;
        file.validate()?;
        Ok(file)
    }

    /// Parses JSON and validates it; `source_name` names the text in errors.
    pub fn from_json_str(text: &str, source_name: &str) -> Result<Self> {
        let file: Self = serde_json::from_str(text).map_err(|e| ScorerError::Parse {
            source_name: source_name.to_owned(),
            problem: e.to_string(),
        })?;
        file.validate()?;
        Ok(file)
    }

    /// Reads a file: JSON when its name ends in `.json`, YAML otherwise.
    pub fn load(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScorerError::Io {
            path: name.clone(),
            problem: e.to_string(),
        })?;
        if is_json(path) {
            Self::from_json_str(&text, &name)
        } else {
            Self::from_yaml_str(&text, &name)
        }
    }

    /// Validates, then writes the file: JSON when its name ends in `.json`, YAML otherwise.
    /// Nothing is written for an invalid rule set (JSON would even turn a NaN into `null`).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.validate()?;
        let text = if is_json(path) {
            self.to_json_string()?
        } else {
            self.to_yaml_string()?
        };
        std::fs::write(path, text).map_err(|e| ScorerError::Io {
            path: path.display().to_string(),
            problem: e.to_string(),
        })
    }

    /// The YAML text of the file.
    pub fn to_yaml_string(&self) -> Result<String> {
        serde_norway::to_string(self).map_err(|e| ScorerError::Parse {
            source_name: "<yaml>".into(),
            problem: e.to_string(),
        })
    }

    /// The JSON text of the file (pretty-printed).
    pub fn to_json_string(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| ScorerError::Parse {
            source_name: "<json>".into(),
            problem: e.to_string(),
        })
    }

    /// The example rule set and default config (see [`EXAMPLE_RULES_YAML`]).
    pub fn example() -> Result<Self> {
        Self::from_yaml_str(EXAMPLE_RULES_YAML, "scorer/rules/example.yaml")
    }

    /// Validates the config and every rule, and the active rules' windows against the config.
    pub fn validate(&self) -> Result<()> {
        validate_config(&self.config)?;
        validate_rules(&self.rules)?;
        validate_rule_windows(&self.rules, &self.config)
    }

    /// An engine for this file's rules (as rule-set `version`) and config.
    pub fn engine(&self, version: u64) -> Result<Engine> {
        let rules = RuleSet::compile(version, self.rules.clone())?;
        Engine::new(Arc::new(rules), Arc::new(self.config.clone()))
    }
}

fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}
