//! The social graph: undirected, weighted, typed relations between subjects.

use async_trait::async_trait;
use credence_proto::v1 as pb;

use crate::error::Result;

/// Identifies one relation: the unordered pair and the kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RelationKey {
    /// One subject.
    pub subject_id: String,
    /// The other.
    pub other_subject_id: String,
    /// The kind (`pb::RelationKind` as i32).
    pub kind: i32,
}

/// Relations and traversals. One relation per (unordered pair, kind); a put replaces it.
#[async_trait]
pub trait Graph: Send + Sync {
    /// Creates or replaces relations (already validated); returns how many were written.
    async fn put_relations(&self, relations: Vec<pb::Relation>) -> Result<u32>;
    /// Removes relations; a key of kind 0 (UNSPECIFIED) removes every kind between the two.
    /// Returns how many relations existed.
    async fn remove_relations(&self, keys: Vec<RelationKey>) -> Result<u32>;
    /// Subjects within `depth` hops (1..=3), each once at its smallest depth, nearest first
    /// then by id; `path_weight` is the product of the weights along the path found (the
    /// heaviest among the shortest), `path` the subjects from the start (exclusive) to it
    /// (inclusive). An empty `kinds` means every kind. At most `limit` neighbours; the
    /// flag says whether more were left out.
    async fn neighbors(
        &self,
        subject_id: &str,
        depth: u32,
        kinds: &[i32],
        limit: usize,
    ) -> Result<(Vec<pb::Neighbor>, bool)>;
    /// A shortest path (fewest hops; among those the heaviest) from one subject to another,
    /// at most `max_depth` hops (1..=6); the steps go from the start (excluded) to the end
    /// (included), each with the kind and weight of the relation taken.
    async fn find_path(
        &self,
        from: &str,
        to: &str,
        max_depth: u32,
        kinds: &[i32],
    ) -> Result<Option<Vec<pb::PathStep>>>;
}
