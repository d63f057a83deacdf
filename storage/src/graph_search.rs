//! The breadth-first search every graph backend answers `neighbors` and `find_path` with,
//! level by level, so that a backend whose edges live in another process (Dgraph) fetches
//! one level's edges in one round trip and gets exactly the answers the embedded backend
//! gets from its adjacency in memory.

use rustc_hash::FxHashMap;

use crate::error::{Result, StorageError};
use crate::graph::{Neighbor, PathStep, RelationKind};

/// One side of a relation, as seen from a subject.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Edge {
    /// The subject at the other end.
    pub other: String,
    /// The kind.
    pub kind: RelationKind,
    /// The effective weight (a stored 0 means 1, see [`effective_weight`]).
    pub weight: f64,
}

/// A weight as traversals use it: 0 (not given) counts as 1.
pub(crate) fn effective_weight(weight: f64) -> f64 {
    if weight == 0.0 { 1.0 } else { weight }
}

/// How the search reached a subject.
#[derive(Clone, Debug)]
struct Reached {
    depth: u32,
    /// Product of the weights along the path.
    weight: f64,
    /// Kind and weight of the last relation on the path.
    kind: RelationKind,
    edge_weight: f64,
    parent: String,
}

/// A search from one subject: every subject reached, once, at its smallest depth, through
/// the heaviest path of that length.
pub(crate) struct Search {
    start: String,
    kinds: Vec<RelationKind>,
    budget: usize,
    visits: usize,
    depth: u32,
    reached: FxHashMap<String, Reached>,
    /// The last level's subjects in id order, with their path weights.
    frontier: Vec<(String, f64)>,
}

impl Search {
    /// A search from `start` over relations of `kinds` (every kind when empty) that refuses
    /// to follow more than `budget` relations (a dense graph at depth 6 is otherwise
    /// millions of visits on one request).
    pub(crate) fn new(start: &str, kinds: &[RelationKind], budget: usize) -> Self {
        Self {
            start: start.to_owned(),
            kinds: kinds.to_vec(),
            budget,
            visits: 0,
            depth: 0,
            reached: FxHashMap::default(),
            frontier: vec![(start.to_owned(), 1.0)],
        }
    }

    /// The subjects whose relations the next level follows, in id order; empty when the
    /// search has nowhere left to go. (The embedded backend looks edges up as asked; a
    /// backend across the network fetches the frontier's first.)
    #[cfg(feature = "dgraph")]
    pub(crate) fn frontier(&self) -> impl Iterator<Item = &str> {
        self.frontier.iter().map(|(id, _)| id.as_str())
    }

    /// The relation kinds followed (every kind when empty).
    #[cfg(feature = "dgraph")]
    pub(crate) fn kinds(&self) -> &[RelationKind] {
        &self.kinds
    }

    /// Whether `id` has been reached.
    pub(crate) fn has_reached(&self, id: &str) -> bool {
        self.reached.contains_key(id)
    }

    /// Follows every relation of the frontier (`edges_of` gives a subject's) one hop.
    /// Returns whether a subject was reached for the first time; past the budget, an error
    /// naming it. Ties between equally heavy paths go to the first frontier subject in id
    /// order, then to the first edge in (other subject, kind) order, so every backend gives
    /// the same answer whatever order its edges come in.
    pub(crate) fn expand<'e>(&mut self, edges_of: impl Fn(&str) -> &'e [Edge]) -> Result<bool> {
        self.depth += 1;
        let depth = self.depth;
        let mut level: FxHashMap<&'e str, Reached> = FxHashMap::default();
        for (from, from_weight) in &self.frontier {
            let mut edges: Vec<&Edge> = edges_of(from).iter().collect();
            edges.sort_by(|a, b| a.other.cmp(&b.other).then(a.kind.cmp(&b.kind)));
            for edge in edges {
                self.visits += 1;
                if self.visits > self.budget {
                    return Err(StorageError::LimitExceeded(format!(
                        "the path search visited more than {} subjects (the node budget) by \
                         depth {depth}; ask for fewer hops or fewer relation kinds",
                        self.budget
                    )));
                }
                let to = edge.other.as_str();
                if to == self.start
                    || self.reached.contains_key(to)
                    || !(self.kinds.is_empty() || self.kinds.contains(&edge.kind))
                {
                    continue;
                }
                let weight = from_weight * edge.weight;
                // Strictly heavier wins, so ties keep the first.
                match level.get_mut(to) {
                    Some(r) if weight <= r.weight => {}
                    Some(r) => {
                        r.weight = weight;
                        r.kind = edge.kind;
                        r.edge_weight = edge.weight;
                        r.parent.clone_from(from);
                    }
                    None => {
                        level.insert(
                            to,
                            Reached {
                                depth,
                                weight,
                                kind: edge.kind,
                                edge_weight: edge.weight,
                                parent: from.clone(),
                            },
                        );
                    }
                }
            }
        }
        let mut next: Vec<(String, f64)> = level
            .iter()
            .map(|(id, r)| ((*id).to_owned(), r.weight))
            .collect();
        next.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let grew = !level.is_empty();
        self.reached
            .extend(level.into_iter().map(|(id, r)| (id.to_owned(), r)));
        self.frontier = next;
        Ok(grew)
    }

    /// The subjects from the start (exclusive) to `to` (inclusive), following parents.
    fn path_to<'a>(&'a self, to: &'a str) -> Vec<&'a str> {
        let mut path = vec![to];
        let mut at = to;
        while let Some(r) = self.reached.get(at) {
            at = &r.parent;
            path.push(at);
        }
        path.pop(); // the start
        path.reverse();
        path
    }

    /// Every subject reached, nearest first then by id, at most `limit`; the flag says
    /// whether more were left out.
    pub(crate) fn neighbours(&self, limit: usize) -> (Vec<Neighbor>, bool) {
        let mut found: Vec<(&String, &Reached)> = self.reached.iter().collect();
        found.sort_unstable_by(|a, b| a.1.depth.cmp(&b.1.depth).then(a.0.cmp(b.0)));
        let truncated = found.len() > limit;
        let neighbours = found
            .into_iter()
            .take(limit)
            .map(|(id, r)| Neighbor {
                subject_id: id.clone(),
                depth: r.depth,
                kind: r.kind,
                path_weight: r.weight,
                path: self.path_to(id).into_iter().map(str::to_owned).collect(),
            })
            .collect();
        (neighbours, truncated)
    }

    /// The path found to `to`, each step with the kind and weight of the relation taken;
    /// `None` when the search has not reached it.
    pub(crate) fn path(&self, to: &str) -> Option<Vec<PathStep>> {
        if !self.reached.contains_key(to) {
            return None;
        }
        let steps = self
            .path_to(to)
            .into_iter()
            .filter_map(|id| {
                self.reached.get(id).map(|r| PathStep {
                    subject_id: id.to_owned(),
                    kind: r.kind,
                    weight: r.edge_weight,
                })
            })
            .collect();
        Some(steps)
    }
}

/// The depth `neighbors` searches: 0 means 1, past 3 is refused.
pub(crate) fn neighbour_depth(depth: u32) -> Result<u32> {
    match depth {
        0 => Ok(1),
        1..=3 => Ok(depth),
        _ => Err(StorageError::Invalid(format!(
            "depth {depth}: neighbours are searched 1 to 3 hops deep"
        ))),
    }
}

/// The depth `find_path` searches: 0 means 6, and 6 at most.
pub(crate) fn path_depth(max_depth: u32) -> u32 {
    if max_depth == 0 { 6 } else { max_depth.min(6) }
}
