//! Rules and configs: every version a row (the domain value as JSON), all held in memory.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use credence_scorer::{Rule, RuleStatus, ScoringConfig};
use duckdb::{Connection, params};

use crate::documents::Rules;
use crate::embedded::duck::{Ctx, Duck};
use crate::error::Result;
use crate::stored::{from_json, to_json};

/// Every rule and config version.
#[derive(Default)]
pub(super) struct RuleMemory {
    /// Rules by (id, version).
    rules: BTreeMap<(String, u32), Rule>,
    /// Configs by version.
    configs: BTreeMap<u32, ScoringConfig>,
}

impl RuleMemory {
    fn latest_version(&self, rule_id: &str) -> u32 {
        self.rules
            .range((rule_id.to_owned(), 0)..=(rule_id.to_owned(), u32::MAX))
            .next_back()
            .map_or(0, |((_, v), _)| *v)
    }
}

/// Every stored rule and config version.
pub(super) fn load(conn: &Connection) -> Result<RuleMemory> {
    let mut memory = RuleMemory::default();
    let mut stmt = conn
        .prepare("SELECT body FROM store.rules")
        .ctx("loading rules")?;
    let bodies = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .ctx("loading rules")?;
    for body in bodies {
        let rule: Rule = from_json(&body.ctx("loading rules")?, "a stored rule")?;
        memory.rules.insert((rule.id.clone(), rule.version), rule);
    }
    let mut stmt = conn
        .prepare("SELECT body FROM store.configs")
        .ctx("loading configs")?;
    let bodies = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .ctx("loading configs")?;
    for body in bodies {
        let config: ScoringConfig = from_json(&body.ctx("loading configs")?, "a stored config")?;
        memory.configs.insert(config.version, config);
    }
    Ok(memory)
}

/// Wall-clock nanoseconds, for the `stored_at` column (informational only).
fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

fn status_name(status: RuleStatus) -> &'static str {
    match status {
        RuleStatus::Draft => "draft",
        RuleStatus::Active => "active",
        RuleStatus::Retired => "retired",
    }
}

#[async_trait]
impl Rules for Duck {
    async fn put_rule(&self, mut rule: Rule) -> Result<Rule> {
        self.write(|w| {
            let latest = self.rules.read().latest_version(&rule.id);
            // A version above the latest is kept (a rule file keeps its numbering).
            if rule.version <= latest {
                rule.version = latest + 1;
            }
            let body = to_json(&rule, "a rule")?;
            w.conn
                .execute(
                    "INSERT INTO store.rules VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    params![
                        rule.id,
                        rule.version,
                        rule.name,
                        status_name(rule.status),
                        rule.event_type,
                        rule.points,
                        body,
                        now_nanos()
                    ],
                )
                .ctx("storing a rule")?;
            self.rules
                .write()
                .rules
                .insert((rule.id.clone(), rule.version), rule.clone());
            Ok(rule)
        })
    }

    async fn get_rule(&self, rule_id: &str, version: Option<u32>) -> Result<Option<Rule>> {
        let memory = self.rules.read();
        let version = version.unwrap_or_else(|| memory.latest_version(rule_id));
        Ok(memory.rules.get(&(rule_id.to_owned(), version)).cloned())
    }

    async fn list_rules(&self, all_versions: bool) -> Result<Vec<Rule>> {
        let memory = self.rules.read();
        let mut out: Vec<Rule> = Vec::new();
        for rule in memory.rules.values() {
            // Ordered by (id, version): a later version of the same id replaces the last one.
            match out.last_mut() {
                Some(last) if !all_versions && last.id == rule.id => *last = rule.clone(),
                _ => out.push(rule.clone()),
            }
        }
        Ok(out)
    }

    async fn rule_set_version(&self) -> Result<u64> {
        // Every write stores one row, so the row count is the write counter.
        Ok(self.rules.read().rules.len() as u64)
    }

    async fn put_config(&self, mut config: ScoringConfig) -> Result<ScoringConfig> {
        self.write(|w| {
            let latest = self
                .rules
                .read()
                .configs
                .keys()
                .next_back()
                .copied()
                .unwrap_or(0);
            if config.version <= latest {
                config.version = latest + 1;
            }
            let body = to_json(&config, "a scoring config")?;
            w.conn
                .execute(
                    "INSERT INTO store.configs VALUES (?, ?, ?)",
                    params![config.version, body, now_nanos()],
                )
                .ctx("storing a config")?;
            self.rules
                .write()
                .configs
                .insert(config.version, config.clone());
            Ok(config)
        })
    }

    async fn get_config(&self, version: Option<u32>) -> Result<Option<ScoringConfig>> {
        let memory = self.rules.read();
        Ok(match version {
            Some(v) => memory.configs.get(&v).cloned(),
            None => memory.configs.values().next_back().cloned(),
        })
    }
}
