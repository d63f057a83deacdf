//! The social graph: undirected, weighted, typed relations between subjects.

use async_trait::async_trait;
use credence_scorer::Timestamp;

use crate::error::Result;

/// What a relation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RelationKind {
    /// Family member.
    Family,
    /// Friend.
    Friend,
    /// Colleague.
    Colleague,
    /// Neighbour.
    Neighbour,
    /// Classmate.
    Classmate,
    /// Business partner.
    BusinessPartner,
}

/// An undirected, weighted relation between two subjects.
#[derive(Clone, Debug, PartialEq)]
pub struct Relation {
    /// One subject.
    pub subject_id: String,
    /// The other subject (not the same one).
    pub other_subject_id: String,
    /// The kind.
    pub kind: RelationKind,
    /// Strength in (0, 1]; 0 counts as 1.
    pub weight: f64,
    /// Since when the relation holds (informational).
    pub since: Option<Timestamp>,
}

/// Names one relation, or every relation between two subjects.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RelationKey {
    /// One subject.
    pub subject_id: String,
    /// The other.
    pub other_subject_id: String,
    /// The kind; `None` names every kind between the two.
    pub kind: Option<RelationKind>,
}

/// A subject reached from another through relations.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbor {
    /// The neighbour.
    pub subject_id: String,
    /// Hops from the asked subject (1 = direct).
    pub depth: u32,
    /// Kind of the last relation on the path that reached it.
    pub kind: RelationKind,
    /// Product of the relation weights along that path.
    pub path_weight: f64,
    /// The subjects along that path, from the asked subject (excluded) to this one
    /// (included).
    pub path: Vec<String>,
}

/// One hop of a path.
#[derive(Clone, Debug, PartialEq)]
pub struct PathStep {
    /// The subject reached.
    pub subject_id: String,
    /// Kind of the relation taken.
    pub kind: RelationKind,
    /// Weight of the relation taken.
    pub weight: f64,
}

/// Relations and traversals. One relation per (unordered pair, kind); a put replaces it.
#[async_trait]
pub trait Graph: Send + Sync {
    /// Creates or replaces relations (already validated); returns how many were written.
    async fn put_relations(&self, relations: Vec<Relation>) -> Result<u32>;
    /// Removes relations; a key without a kind removes every kind between the two.
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
        kinds: &[RelationKind],
        limit: usize,
    ) -> Result<(Vec<Neighbor>, bool)>;
    /// [`Graph::neighbors`] of several subjects at once (same depth, kinds and limit), in
    /// the order given: what the pipeline asks for a micro-batch's association. A backend
    /// across the network answers it in one round trip per level for all of them; the
    /// default asks one subject at a time.
    async fn neighbors_of_each(
        &self,
        subject_ids: &[String],
        depth: u32,
        kinds: &[RelationKind],
        limit: usize,
    ) -> Result<Vec<(Vec<Neighbor>, bool)>> {
        let mut out = Vec::with_capacity(subject_ids.len());
        for id in subject_ids {
            out.push(self.neighbors(id, depth, kinds, limit).await?);
        }
        Ok(out)
    }
    /// A shortest path (fewest hops; among those the heaviest) from one subject to another,
    /// at most `max_depth` hops (1..=6); the steps go from the start (excluded) to the end
    /// (included), each with the kind and weight of the relation taken.
    async fn find_path(
        &self,
        from: &str,
        to: &str,
        max_depth: u32,
        kinds: &[RelationKind],
    ) -> Result<Option<Vec<PathStep>>>;
}
