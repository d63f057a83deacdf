//! The document roles: subject profiles, rules and config (versioned), and score snapshots.

use std::collections::BTreeMap;

use async_trait::async_trait;
use credence_scorer::{Rule, ScoringConfig, SubjectState, Timestamp};

use crate::error::Result;
use crate::page::{Page, Paged};

/// The descriptive record of a subject. Empty strings and a birth year of 0 mean unknown.
///
/// Not the engine's [`credence_scorer::Profile`], which holds only what rules read (see
/// [`SubjectProfile::for_rules`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectProfile {
    /// The subject.
    pub subject_id: String,
    /// Display name.
    pub display_name: String,
    /// Year of birth (0: unknown).
    pub birth_year: i32,
    /// Home region.
    pub region: String,
    /// Home district.
    pub district: String,
    /// Occupation.
    pub occupation: String,
    /// Flags such as `student`, in the order given.
    pub flags: Vec<String>,
    /// Consent by purpose.
    pub consent: BTreeMap<String, bool>,
    /// Other attributes, not read by scoring.
    pub attributes: BTreeMap<String, String>,
    /// When the profile was last written.
    pub updated_at: Option<Timestamp>,
}

impl SubjectProfile {
    /// The fields rules read; empty ones (and a birth year of 0) do not resolve.
    pub fn for_rules(&self) -> credence_scorer::Profile {
        credence_scorer::Profile::from_record(
            &self.region,
            &self.district,
            &self.occupation,
            self.birth_year,
            &self.flags,
        )
    }
}

/// Subject profiles, one per subject, replaced as a whole.
#[async_trait]
pub trait Profiles: Send + Sync {
    /// Creates or replaces profiles; returns, per profile, whether it was new.
    async fn upsert_profiles(&self, profiles: Vec<SubjectProfile>) -> Result<Vec<bool>>;
    /// The profiles of the given subjects, in order (`None` for unknown subjects).
    async fn get_profiles(&self, subject_ids: &[String]) -> Result<Vec<Option<SubjectProfile>>>;
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
    /// The engine state, its dedup window included: everything restores to the bit. A
    /// backend may keep only the window's floor and rebuild its entries from the archive:
    /// they are the subject's applied events above the floor, and a committer archives an
    /// event no later than the commit that moves the offset past it.
    pub state: SubjectState,
    /// The subject's profile region when the state was committed ("" without a profile).
    /// Denormalised here so that listings filter by region in the store that holds the
    /// snapshots, without a join against profiles that a document or wide-column store
    /// cannot do.
    pub region: String,
    /// When it was committed.
    pub updated_at: Timestamp,
}

/// A changed subject state to commit, with the region it is listed under.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangedState {
    /// The engine state.
    pub state: SubjectState,
    /// The subject's profile region ("" without a profile); see [`StoredSnapshot::region`].
    pub region: String,
}

/// Who may commit to a partition, and where its next batch must start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Claim {
    /// The owner's epoch: raised by every [`Snapshots::claim`], so an older owner's commits
    /// are refused.
    pub epoch: u64,
    /// The committed offset: the first bus offset not reflected in the snapshots.
    pub next_offset: u64,
}

/// Filters of [`Snapshots::list_subjects`]; empty fields do not filter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SubjectFilter {
    /// Region (the snapshot's denormalised [`StoredSnapshot::region`]).
    pub region: String,
    /// Current tier.
    pub tier: String,
    /// Lowest score, inclusive.
    pub min_score: Option<f64>,
    /// Highest score, inclusive.
    pub max_score: Option<f64>,
}

/// Live score state per subject, committed together with the bus offset it reflects, and
/// fenced by the owner's epoch.
#[async_trait]
pub trait Snapshots: Send + Sync {
    /// Takes ownership of a partition: atomically raises its epoch (0 before the first
    /// claim) and returns it with the committed offset, where the new owner starts.
    async fn claim(&self, partition: u32) -> Result<Claim>;
    /// The partition's current epoch and committed offset, without claiming it.
    async fn position(&self, partition: u32) -> Result<Claim>;
    /// Atomically stores the states and sets the committed offset of `partition` to
    /// `next_offset` (the first bus offset *not* reflected), if `expected` is the stored
    /// position (the caller's epoch, and the offset its batch starts at); otherwise writes
    /// nothing and answers [`crate::StorageError::Fenced`]. Written last in a micro-batch.
    async fn commit(
        &self,
        partition: u32,
        expected: Claim,
        next_offset: u64,
        states: Vec<ChangedState>,
        at: Timestamp,
    ) -> Result<()>;
    /// The committed offset of a partition (0 when nothing was committed).
    async fn committed_offset(&self, partition: u32) -> Result<u64>;
    /// The snapshots of the given subjects, in order: what a pipeline worker reads for the
    /// subjects of a micro-batch that are not in its cache.
    async fn get_snapshots(&self, subject_ids: &[String]) -> Result<Vec<Option<StoredSnapshot>>>;
    /// Snapshots, filtered, ordered by subject id, paged by subject id.
    async fn list_subjects(
        &self,
        filter: &SubjectFilter,
        page: &Page,
    ) -> Result<Paged<StoredSnapshot>>;
    /// How many subjects are in each tier, optionally only those of one region.
    async fn tier_counts(&self, region: &str) -> Result<Vec<(String, u64)>>;
}

/// The fence check every backend makes in the same atomic step as the write: the refusal
/// names the partition, the epochs and the offsets.
pub fn check_fence(partition: u32, stored: Claim, expected: Claim) -> Result<()> {
    if stored.epoch != expected.epoch {
        return Err(crate::StorageError::Fenced(format!(
            "partition {partition} is owned by epoch {}, not {}; another worker claimed it, \
             so this one must stop",
            stored.epoch, expected.epoch
        )));
    }
    if stored.next_offset != expected.next_offset {
        return Err(crate::StorageError::Fenced(format!(
            "partition {partition}: the batch starts at offset {} but the committed offset \
             is {}; reload the partition from its committed offset",
            expected.next_offset, stored.next_offset
        )));
    }
    Ok(())
}
