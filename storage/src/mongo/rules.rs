//! Rules and scoring configs: one document per version, the value as JSON text in `body`.
//!
//! A new version is inserted under its `_id` (`<rule id>@<version>`, or the version alone
//! for configs): two nodes writing the same rule at once cannot both take a version, the
//! loser reads the latest again and takes the next.

use async_trait::async_trait;
use credence_scorer::{Rule, ScoringConfig};
use mongodb::bson::{Document, doc};
use serde::de::DeserializeOwned;

use super::{MongoDocuments, VERSION_ATTEMPTS, int, is_duplicate, text};
use crate::documents::Rules;
use crate::error::{Result, StorageError};
use crate::stored::{from_json, to_json};

const RULES: &str = "rules";
const CONFIGS: &str = "configs";

fn rule_key(rule_id: &str, version: u32) -> String {
    format!("{rule_id}@{version:010}")
}

fn config_key(version: u32) -> String {
    format!("{version:010}")
}

fn body<T: DeserializeOwned>(d: &Document, collection: &str) -> Result<T> {
    from_json(&text(d, collection, "body")?, collection)
}

impl MongoDocuments {
    /// The highest stored version among the documents matching `filter` (0: none).
    async fn latest_version(&self, collection: &str, filter: Document) -> Result<u32> {
        let latest = self
            .call(
                &format!("reading the latest version in {collection}"),
                self.collection(collection)
                    .find_one(filter)
                    .sort(doc! { "version": -1 })
                    .projection(doc! { "version": 1 }),
            )
            .await?;
        Ok(latest
            .and_then(|d| int(&d, "version"))
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0))
    }

    /// Inserts a new version: `wanted` when above the latest, else the latest + 1; a version
    /// another writer took first makes it read the latest again. Returns the version stored.
    async fn insert_version(
        &self,
        collection: &str,
        filter: Document,
        wanted: u32,
        document: impl Fn(u32) -> Result<Document>,
    ) -> Result<u32> {
        for _ in 0..VERSION_ATTEMPTS {
            let latest = self.latest_version(collection, filter.clone()).await?;
            let version = if wanted > latest { wanted } else { latest + 1 };
            let doing = format!("storing version {version} in {collection}");
            match self
                .within(
                    &doing,
                    self.collection(collection).insert_one(document(version)?),
                )
                .await?
            {
                Ok(_) => return Ok(version),
                Err(e) if is_duplicate(&e) => {}
                Err(e) => return Err(self.classify(&doing, &e)),
            }
        }
        Err(StorageError::Conflict(format!(
            "storing a new version in {collection}: {VERSION_ATTEMPTS} other writers took the \
             next version first; try again"
        )))
    }
}

#[async_trait]
impl Rules for MongoDocuments {
    async fn put_rule(&self, mut rule: Rule) -> Result<Rule> {
        let id = rule.id.clone();
        let version = self
            .insert_version(RULES, doc! { "rule_id": &id }, rule.version, |version| {
                let stored = Rule {
                    version,
                    ..rule.clone()
                };
                Ok(doc! {
                    "_id": rule_key(&id, version),
                    "rule_id": &id,
                    "version": i64::from(version),
                    "body": to_json(&stored, "a rule")?,
                })
            })
            .await?;
        rule.version = version;
        Ok(rule)
    }

    async fn get_rule(&self, rule_id: &str, version: Option<u32>) -> Result<Option<Rule>> {
        let version = match version {
            Some(v) => v,
            None => {
                self.latest_version(RULES, doc! { "rule_id": rule_id })
                    .await?
            }
        };
        let found = self
            .call(
                "reading a rule",
                self.collection(RULES)
                    .find_one(doc! { "_id": rule_key(rule_id, version) }),
            )
            .await?;
        found.map(|d| body(&d, RULES)).transpose()
    }

    async fn list_rules(&self, all_versions: bool) -> Result<Vec<Rule>> {
        let documents = self
            .find_all(RULES, doc! {}, doc! { "rule_id": 1, "version": 1 }, 0)
            .await?;
        let mut out: Vec<Rule> = Vec::new();
        for d in &documents {
            let rule: Rule = body(d, RULES)?;
            // Ordered by (id, version): a later version of the same id replaces the last one.
            match out.last_mut() {
                Some(last) if !all_versions && last.id == rule.id => *last = rule,
                _ => out.push(rule),
            }
        }
        Ok(out)
    }

    async fn rule_set_version(&self) -> Result<u64> {
        // Every write inserts one document, so their count is the write counter.
        self.call(
            "counting rule versions",
            self.collection(RULES).count_documents(doc! {}),
        )
        .await
    }

    async fn put_config(&self, mut config: ScoringConfig) -> Result<ScoringConfig> {
        let version = self
            .insert_version(CONFIGS, doc! {}, config.version, |version| {
                let stored = ScoringConfig {
                    version,
                    ..config.clone()
                };
                Ok(doc! {
                    "_id": config_key(version),
                    "version": i64::from(version),
                    "body": to_json(&stored, "a scoring config")?,
                })
            })
            .await?;
        config.version = version;
        Ok(config)
    }

    async fn get_config(&self, version: Option<u32>) -> Result<Option<ScoringConfig>> {
        let version = match version {
            Some(v) => v,
            None => self.latest_version(CONFIGS, doc! {}).await?,
        };
        let found = self
            .call(
                "reading a scoring config",
                self.collection(CONFIGS)
                    .find_one(doc! { "_id": config_key(version) }),
            )
            .await?;
        found.map(|d| body(&d, CONFIGS)).transpose()
    }
}
