//! The document roles: subject profiles, rules and config (versioned), and score snapshots.

use async_trait::async_trait;
use credence_proto::v1 as pb;
use credence_scorer::{Rule, ScoringConfig, SubjectState, Timestamp};

use crate::error::Result;
use crate::page::{Page, Paged};

/// Subject profiles, one per subject, replaced as a whole.
#[async_trait]
pub trait Profiles: Send + Sync {
    /// Creates or replaces profiles; returns, per profile, whether it was new.
    async fn upsert_profiles(&self, profiles: Vec<pb::Profile>) -> Result<Vec<bool>>;
    /// The profiles of the given subjects, in order (`None` for unknown subjects).
    async fn get_profiles(&self, subject_ids: &[String]) -> Result<Vec<Option<pb::Profile>>>;
}

/// Rule versions and scoring-config versions. Every write makes a new version; old versions
/// stay readable (scores name the rule version and config version that produced them).
#[async_trait]
pub trait Rules: Send + Sync {
    /// Stores a new version of `rule.id`: `rule.version` when it is above the latest stored
    /// version (so a rule file keeps its versions), else one more than the latest (1 for a
    /// new rule; pass 0 to always get the next). Returns the stored rule.
    async fn put_rule(&self, rule: Rule) -> Result<Rule>;
    /// A rule at `version`, or at its latest version when `None`.
    async fn get_rule(&self, rule_id: &str, version: Option<u32>) -> Result<Option<Rule>>;
    /// The latest version of every rule (every version of every rule when `all_versions`),
    /// ordered by id then version.
    async fn list_rules(&self, all_versions: bool) -> Result<Vec<Rule>>;
    /// A counter that grows with every rule write: the version of the rule set as a whole.
    async fn rule_set_version(&self) -> Result<u64>;
    /// Stores a new config version: `config.version` when above the latest, else one more
    /// than the latest. Returns the stored config.
    async fn put_config(&self, config: ScoringConfig) -> Result<ScoringConfig>;
    /// A config at `version`, or the latest when `None`; `None` when none was ever stored.
    async fn get_config(&self, version: Option<u32>) -> Result<Option<ScoringConfig>>;
}

/// A subject's score state as last committed.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredSnapshot {
    /// The engine state, its dedup window included: everything restores to the bit.
    pub state: SubjectState,
    /// When it was committed.
    pub updated_at: Timestamp,
}

/// Filters of [`Snapshots::list_subjects`]; empty fields do not filter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SubjectFilter {
    /// Profile region.
    pub region: String,
    /// Current tier.
    pub tier: String,
    /// Lowest score, inclusive.
    pub min_score: Option<f64>,
    /// Highest score, inclusive.
    pub max_score: Option<f64>,
}

/// Live score state per subject, committed together with the bus offset it reflects.
#[async_trait]
pub trait Snapshots: Send + Sync {
    /// Atomically stores the states and sets the committed offset of `partition` to
    /// `next_offset` (the first bus offset *not* reflected). Written last in a micro-batch.
    async fn commit(
        &self,
        partition: u32,
        next_offset: u64,
        states: Vec<SubjectState>,
        at: Timestamp,
    ) -> Result<()>;
    /// The committed offset of a partition (0 when nothing was committed).
    async fn committed_offset(&self, partition: u32) -> Result<u64>;
    /// Every state whose subject hashes to `partition` out of `partitions`, for recovery.
    /// The backend does not hash: it returns what was committed under that partition.
    async fn load_partition(&self, partition: u32) -> Result<Vec<SubjectState>>;
    /// The snapshots of the given subjects, in order.
    async fn get_snapshots(&self, subject_ids: &[String]) -> Result<Vec<Option<StoredSnapshot>>>;
    /// Subjects with their snapshot and profile region/name, filtered, ordered by subject id.
    async fn list_subjects(
        &self,
        filter: &SubjectFilter,
        page: &Page,
    ) -> Result<Paged<(StoredSnapshot, Option<pb::Profile>)>>;
    /// How many subjects are in each tier, optionally only those of one profile region.
    async fn tier_counts(&self, region: &str) -> Result<Vec<(String, u64)>>;
}
