//! The live rule set and scoring config: loaded from the rule store, swapped on every change
//! so scoring picks up a new rule or config version without a restart.

use std::sync::Arc;

use credence_scorer::{
    Engine, Rule, RuleFile, RuleSet, RuleStatus, ScoringConfig, validate_config, validate_rule,
};
use credence_storage::Stores;
use parking_lot::RwLock;

use crate::error::{Error, quote};

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
    pub async fn put_rule(&self, rule: Rule) -> Result<Rule, Error> {
        let _write = self.writes.lock().await;
        self.store_rule(rule).await
    }

    /// Moves the latest version of a rule to `status` (a new version, unless it already has
    /// it). The read and the write happen under the write lock: read outside it, a `PutRule`
    /// landing in between would be reverted by this call's copy of the older body.
    pub async fn set_rule_status(&self, rule_id: &str, status: RuleStatus) -> Result<Rule, Error> {
        let _write = self.writes.lock().await;
        let mut rule = self
            .stores
            .rules
            .get_rule(rule_id, None)
            .await?
            .ok_or_else(|| Error::NotFound(format!("rule {} does not exist", quote(rule_id))))?;
        if rule.status == status {
            return Ok(rule);
        }
        rule.status = status;
        self.store_rule(rule).await
    }

    /// Validates, stores and makes live a rule version; the caller holds the write lock.
    async fn store_rule(&self, mut rule: Rule) -> Result<Rule, Error> {
        rule.version = 1;
        validate_rule(&rule).map_err(Error::from)?;
        // 0: the store gives the next version, whatever the client sent.
        rule.version = 0;
        rule.updated_at = Some(credence_scorer::Timestamp::now());
        let stored = self
            .stores
            .rules
            .put_rule(rule)
            .await
            .map_err(Error::from)?;
        self.reload().await?;
        Ok(stored)
    }

    /// Stores a new config version (validated first) and makes it live.
    pub async fn put_config(&self, config: ScoringConfig) -> Result<ScoringConfig, Error> {
        self.update_config(|_| Ok(config)).await
    }

    /// Stores a new config version made from the latest stored one (validated first) and
    /// makes it live. The latest is read under the write lock, from the store rather than
    /// the live engine: another node sharing the store may have written a newer one.
    pub async fn update_config(
        &self,
        change: impl FnOnce(&ScoringConfig) -> Result<ScoringConfig, Error>,
    ) -> Result<ScoringConfig, Error> {
        let _write = self.writes.lock().await;
        let latest = match self.stores.rules.get_config(None).await? {
            Some(stored) => stored,
            None => self.live().engine.config().clone(),
        };
        let mut config = change(&latest)?;
        config.version = 1;
        validate_config(&config).map_err(Error::from)?;
        config.version = 0;
        config.updated_at = Some(credence_scorer::Timestamp::now());
        let stored = self
            .stores
            .rules
            .put_config(config)
            .await
            .map_err(Error::from)?;
        self.reload().await?;
        Ok(stored)
    }

    /// Makes live what other nodes sharing the rule store wrote: reloads when the stored
    /// rule-set version or latest config version is not the live one. Returns whether it
    /// reloaded. Cheap when nothing changed (two small reads).
    pub async fn refresh(&self) -> Result<bool, Error> {
        let stored_rules = self.stores.rules.rule_set_version().await?;
        let stored_config = self.stores.rules.get_config(None).await?.map(|c| c.version);
        let live = self.live();
        if stored_rules == live.engine.rules().version()
            && stored_config == Some(live.engine.config().version)
        {
            return Ok(false);
        }
        let _write = self.writes.lock().await;
        self.reload().await?;
        Ok(true)
    }

    /// Checks the rule store every `every` (see [`Catalog::refresh`]) until `stop` turns
    /// true: how a node picks up the rules and configs other nodes write. A failed check is
    /// logged and tried again at the next tick; the live engine stays as it was.
    pub async fn follow(
        self: Arc<Self>,
        every: std::time::Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            match self.refresh().await {
                Ok(true) => {
                    let live = self.live();
                    tracing::info!(
                        rule_set_version = live.engine.rules().version(),
                        config_version = live.engine.config().version,
                        "picked up rules or config written elsewhere"
                    );
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "checking the rule store for new versions"),
            }
        }
    }

    async fn reload(&self) -> Result<(), Error> {
        let live = build(&self.stores).await.map_err(|e| {
            Error::internal::<Error>(format!("the stored rules no longer compile: {e:#}"))
        })?;
        *self.live.write() = Arc::new(live);
        Ok(())
    }
}

async fn build(stores: &Stores) -> anyhow::Result<Live> {
    // The rules are read between two reads of the rule-set version, again if another node
    // wrote in between: the version a batch records is the one of the rules it ran.
    let mut version = stores.rules.rule_set_version().await?;
    let mut read = None;
    for _ in 0..8 {
        let rules = stores.rules.list_rules(false).await?;
        let after = stores.rules.rule_set_version().await?;
        if after == version {
            read = Some(rules);
            break;
        }
        version = after;
    }
    let rules = read.ok_or_else(|| {
        anyhow::anyhow!("the rules changed on every one of 8 reads; try again when writes settle")
    })?;
    let config = stores
        .rules
        .get_config(None)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no scoring config stored"))?;
    let uses_association = rules.iter().any(reads_association);
    let set = RuleSet::compile(version, rules)?;
    let engine = Engine::new(Arc::new(set), Arc::new(config))?;
    Ok(Live {
        engine,
        uses_association,
    })
}

#[cfg(test)]
mod tests {

    use credence_storage::embedded::{Embedded, EmbeddedOptions};
    use credence_storage::{Result as StorageResult, Rules};
    use tokio::sync::Semaphore;

    use super::*;

    /// The real rule store, except that the first `get_rule` waits until the test lets it
    /// go: a `SetRuleStatus` is held between its read and its write.
    struct HeldRead {
        inner: Arc<dyn Rules>,
        reading: Semaphore,
        release: Semaphore,
    }

    #[tonic::async_trait]
    impl Rules for HeldRead {
        async fn put_rule(&self, rule: Rule) -> StorageResult<Rule> {
            self.inner.put_rule(rule).await
        }
        async fn get_rule(
            &self,
            rule_id: &str,
            version: Option<u32>,
        ) -> StorageResult<Option<Rule>> {
            let found = self.inner.get_rule(rule_id, version).await;
            self.reading.add_permits(1);
            if let Ok(permit) = self.release.acquire().await {
                permit.forget();
            }
            found
        }
        async fn list_rules(&self, all_versions: bool) -> StorageResult<Vec<Rule>> {
            self.inner.list_rules(all_versions).await
        }
        async fn rule_set_version(&self) -> StorageResult<u64> {
            self.inner.rule_set_version().await
        }
        async fn put_config(&self, config: ScoringConfig) -> StorageResult<ScoringConfig> {
            self.inner.put_config(config).await
        }
        async fn get_config(&self, version: Option<u32>) -> StorageResult<Option<ScoringConfig>> {
            self.inner.get_config(version).await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn set_rule_status_does_not_revert_a_concurrent_put_rule() {
        let dir = tempfile::tempdir().unwrap();
        let embedded =
            tokio::task::block_in_place(|| Embedded::open(&EmbeddedOptions::new(dir.path())))
                .unwrap();
        let mut stores = embedded.stores();
        let held = Arc::new(HeldRead {
            inner: Arc::clone(&stores.rules),
            reading: Semaphore::new(0),
            release: Semaphore::new(0),
        });
        stores.rules = held.clone();
        let seed = RuleFile::example().unwrap();
        let catalog = Arc::new(Catalog::open(stores, &seed).await.unwrap());
        let mut rule = seed.rules[0].clone();
        let id = rule.id.clone();

        let retire = tokio::spawn({
            let catalog = Arc::clone(&catalog);
            let id = id.clone();
            async move { catalog.set_rule_status(&id, RuleStatus::Retired).await }
        });
        // The status change has read the rule and is held before its write.
        held.reading.acquire().await.unwrap().forget();
        rule.points += 7.0;
        rule.status = RuleStatus::Active;
        let mut put = tokio::spawn({
            let catalog = Arc::clone(&catalog);
            async move { catalog.put_rule(rule).await }
        });
        // Give the PutRule every chance to land while the read is held (with the fix it
        // waits for the lock instead, and this only bounds the wait).
        let early = tokio::time::timeout(std::time::Duration::from_millis(300), &mut put)
            .await
            .ok();
        held.release.add_permits(1_000);
        retire.await.unwrap().unwrap();
        match early {
            Some(done) => done,
            None => put.await,
        }
        .unwrap()
        .unwrap();
        let latest = held.inner.get_rule(&id, None).await.unwrap().unwrap();
        assert_eq!(
            latest.points,
            seed.rules[0].points + 7.0,
            "the PutRule's body was reverted by the concurrent SetRuleStatus: {latest:?}"
        );
    }

    /// Two nodes sharing one rule store: what one writes, the other makes live at its next
    /// refresh, and a refresh with nothing new changes nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refresh_picks_up_versions_another_node_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let stores =
            tokio::task::block_in_place(|| Embedded::open(&EmbeddedOptions::new(dir.path())))
                .unwrap()
                .stores();
        let seed = RuleFile::example().unwrap();
        let one = Catalog::open(stores.clone(), &seed).await.unwrap();
        let two = Catalog::open(stores, &seed).await.unwrap();
        assert!(!two.refresh().await.unwrap(), "nothing new yet");

        let mut rule = Rule::new("shared_rule", "social", 4.0);
        rule.status = RuleStatus::Active;
        let stored = one.put_rule(rule).await.unwrap();
        let mut config = one.live().engine.config().clone();
        config.baseline = 640.0;
        let config = one.put_config(config).await.unwrap();
        assert_ne!(
            two.live().engine.rules().version(),
            one.live().engine.rules().version()
        );

        assert!(two.refresh().await.unwrap());
        let live = two.live();
        assert_eq!(
            live.engine.rules().version(),
            one.live().engine.rules().version()
        );
        assert!(
            live.engine
                .rules()
                .rules()
                .iter()
                .any(|r| r.id == "shared_rule" && r.version == stored.version)
        );
        assert_eq!(live.engine.config().version, config.version);
        assert_eq!(live.engine.config().baseline, 640.0);
        assert!(!two.refresh().await.unwrap(), "nothing new since");
    }
}
