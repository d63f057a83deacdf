//! The live rule set and scoring config: loaded from the rule store, swapped on every change
//! so scoring picks up a new rule or config version without a restart.

use std::sync::Arc;

use credence_scorer::{
    Engine, Rule, RuleFile, RuleSet, ScoringConfig, validate_config, validate_rule,
};
use credence_storage::Stores;
use parking_lot::RwLock;
use tonic::Status;

use crate::status;

/// What the pipeline scores with at one moment.
pub struct Live {
    /// The engine over the latest version of every rule and the latest config.
    pub engine: Engine,
    /// Whether any rule reads `subject.association` (only then does the pipeline compute it).
    pub uses_association: bool,
}

/// The rules and config, as stored and as live.
pub struct Catalog {
    stores: Stores,
    live: RwLock<Arc<Live>>,
    /// Serialises writes, so versions and the live engine move in step.
    writes: tokio::sync::Mutex<()>,
}

fn reads_association(rule: &Rule) -> bool {
    const FIELD: &str = "subject.association";
    rule.conditions.iter().any(|c| c.field == FIELD)
        || rule.multipliers.iter().any(|m| m.when.field == FIELD)
}

impl Catalog {
    /// Loads the live rule set; an empty store is first seeded from `seed`.
    pub async fn open(stores: Stores, seed: &RuleFile) -> anyhow::Result<Self> {
        let rules = &stores.rules;
        let now = Some(credence_scorer::Timestamp::now());
        if rules.get_config(None).await?.is_none() {
            let mut config = seed.config.clone();
            config.updated_at = now;
            rules.put_config(config).await?;
        }
        if rules.list_rules(true).await?.is_empty() {
            for rule in &seed.rules {
                let mut rule = rule.clone();
                rule.updated_at = now;
                rules.put_rule(rule).await?;
            }
            tracing::info!(
                rules = seed.rules.len(),
                "seeded an empty store with the rule file"
            );
        }
        let live = build(&stores).await?;
        Ok(Self {
            stores,
            live: RwLock::new(Arc::new(live)),
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// The engine to score with now.
    pub fn live(&self) -> Arc<Live> {
        Arc::clone(&self.live.read())
    }

    /// Stores a new version of a rule (validated first) and makes it live.
    pub async fn put_rule(&self, mut rule: Rule) -> Result<Rule, Status> {
        let _write = self.writes.lock().await;
        rule.version = 1;
        validate_rule(&rule).map_err(|e| status::scorer(&e))?;
        // 0: the store gives the next version, whatever the client sent.
        rule.version = 0;
        rule.updated_at = Some(credence_scorer::Timestamp::now());
        let stored = self
            .stores
            .rules
            .put_rule(rule)
            .await
            .map_err(status::storage)?;
        self.reload().await?;
        Ok(stored)
    }

    /// Stores a new config version (validated first) and makes it live.
    pub async fn put_config(&self, mut config: ScoringConfig) -> Result<ScoringConfig, Status> {
        let _write = self.writes.lock().await;
        config.version = 1;
        validate_config(&config).map_err(|e| status::scorer(&e))?;
        config.version = 0;
        config.updated_at = Some(credence_scorer::Timestamp::now());
        let stored = self
            .stores
            .rules
            .put_config(config)
            .await
            .map_err(status::storage)?;
        self.reload().await?;
        Ok(stored)
    }

    async fn reload(&self) -> Result<(), Status> {
        let live = build(&self.stores)
            .await
            .map_err(|e| Status::internal(format!("the stored rules no longer compile: {e:#}")))?;
        *self.live.write() = Arc::new(live);
        Ok(())
    }
}

async fn build(stores: &Stores) -> anyhow::Result<Live> {
    let config = stores
        .rules
        .get_config(None)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no scoring config stored"))?;
    let rules = stores.rules.list_rules(false).await?;
    let version = stores.rules.rule_set_version().await?;
    let uses_association = rules.iter().any(reads_association);
    let set = RuleSet::compile(version, rules)?;
    let engine = Engine::new(Arc::new(set), Arc::new(config))?;
    Ok(Live {
        engine,
        uses_association,
    })
}
