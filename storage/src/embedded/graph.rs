//! The relation graph: a table row per relation (the pair stored in id order), and the
//! adjacency in memory for traversals.

use async_trait::async_trait;
use credence_scorer::Timestamp;
use duckdb::{Connection, params};
use rustc_hash::FxHashMap;

use crate::embedded::convert::{relation_kind, relation_kind_code};
use crate::embedded::duck::{Ctx, Duck, blocking, in_transaction};
use crate::error::{Result, StorageError};
use crate::graph::{Graph, Neighbor, PathStep, Relation, RelationKey, RelationKind};

/// One side of a relation, as seen from a subject.
#[derive(Clone, Debug)]
struct Edge {
    other: String,
    kind: RelationKind,
    /// The effective weight (a stored 0 means 1).
    weight: f64,
}

/// Every relation, listed under both of its subjects.
#[derive(Default)]
pub(super) struct Adjacency {
    edges: FxHashMap<String, Vec<Edge>>,
}

impl Adjacency {
    /// Adds or replaces the relation (a, b, kind) on both sides.
    fn put(&mut self, a: &str, b: &str, kind: RelationKind, weight: f64) {
        for (from, to) in [(a, b), (b, a)] {
            let list = self.edges.entry(from.to_owned()).or_default();
            match list.iter_mut().find(|e| e.other == to && e.kind == kind) {
                Some(edge) => edge.weight = weight,
                None => list.push(Edge {
                    other: to.to_owned(),
                    kind,
                    weight,
                }),
            }
        }
    }

    /// Removes the relation (a, b, kind), or every kind between a and b for `None`; how
    /// many relations existed.
    fn remove(&mut self, a: &str, b: &str, kind: Option<RelationKind>) -> u32 {
        let mut removed = 0;
        for (from, to) in [(a, b), (b, a)] {
            if let Some(list) = self.edges.get_mut(from) {
                let before = list.len();
                list.retain(|e| !(e.other == to && kind.is_none_or(|k| e.kind == k)));
                // Both sides list the same relations: count one side.
                removed = (before - list.len()) as u32;
                if list.is_empty() {
                    self.edges.remove(from);
                }
            }
        }
        removed
    }

    /// Breadth-first search from `start` up to `max_depth` hops over relations of `kinds`
    /// (all when empty): every subject reached, once, at its smallest depth, through the
    /// heaviest path of that length. Stops after the level that reaches `stop_at`. Each
    /// relation followed is a node visit; past `budget` visits the search is refused (a
    /// dense graph at depth 6 is otherwise millions of visits on one request).
    fn search<'a>(
        &'a self,
        start: &'a str,
        max_depth: u32,
        kinds: &[RelationKind],
        stop_at: Option<&str>,
        budget: usize,
    ) -> Result<FxHashMap<&'a str, Reached<'a>>> {
        let mut visits = 0_usize;
        let mut reached: FxHashMap<&str, Reached<'_>> = FxHashMap::default();
        let mut frontier: Vec<(&str, f64)> = vec![(start, 1.0)];
        for depth in 1..=max_depth {
            let mut level: FxHashMap<&str, Reached<'_>> = FxHashMap::default();
            for &(from, from_weight) in &frontier {
                for edge in self.edges.get(from).into_iter().flatten() {
                    visits += 1;
                    if visits > budget {
                        return Err(StorageError::LimitExceeded(format!(
                            "the path search visited more than {budget} subjects (the \
                             node budget) by depth {depth}; ask for fewer hops or fewer \
                             relation kinds"
                        )));
                    }
                    let to = edge.other.as_str();
                    if to == start
                        || reached.contains_key(to)
                        || !(kinds.is_empty() || kinds.contains(&edge.kind))
                    {
                        continue;
                    }
                    let weight = from_weight * edge.weight;
                    let candidate = Reached {
                        depth,
                        weight,
                        kind: edge.kind,
                        edge_weight: edge.weight,
                        parent: from,
                    };
                    // Strictly heavier wins, so ties keep the first: the frontier is in id
                    // order, which makes the answer deterministic.
                    level
                        .entry(to)
                        .and_modify(|r| {
                            if weight > r.weight {
                                *r = candidate.clone();
                            }
                        })
                        .or_insert(candidate);
                }
            }
            if level.is_empty() {
                break;
            }
            let mut next: Vec<(&str, f64)> = level.iter().map(|(id, r)| (*id, r.weight)).collect();
            next.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let done = stop_at.is_some_and(|s| level.contains_key(s));
            reached.extend(level);
            if done {
                break;
            }
            frontier = next;
        }
        Ok(reached)
    }
}

/// How the search reached a subject.
#[derive(Clone)]
struct Reached<'a> {
    depth: u32,
    /// Product of the weights along the path.
    weight: f64,
    /// Kind and weight of the last relation on the path.
    kind: RelationKind,
    edge_weight: f64,
    parent: &'a str,
}

/// The subjects from the start (exclusive) to `to` (inclusive), following parents.
fn path_to<'a>(reached: &FxHashMap<&'a str, Reached<'a>>, to: &'a str) -> Vec<&'a str> {
    let mut path = vec![to];
    let mut at = to;
    while let Some(r) = reached.get(at) {
        at = r.parent;
        path.push(at);
    }
    path.pop(); // the start
    path.reverse();
    path
}

/// The stored pair in id order: one row per unordered pair and kind.
fn ordered<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if a <= b { (a, b) } else { (b, a) }
}

fn effective_weight(weight: f64) -> f64 {
    if weight == 0.0 { 1.0 } else { weight }
}

/// Every stored relation.
pub(super) fn load(conn: &Connection) -> Result<Adjacency> {
    let mut stmt = conn
        .prepare("SELECT subject_id, other_subject_id, kind, weight FROM store.relations")
        .ctx("loading relations")?;
    let mut rows = stmt.query([]).ctx("loading relations")?;
    let mut graph = Adjacency::default();
    while let Some(row) = rows.next().ctx("loading relations")? {
        let a: String = row.get(0).ctx("reading a relation")?;
        let b: String = row.get(1).ctx("reading a relation")?;
        graph.put(
            &a,
            &b,
            relation_kind(row.get(2).ctx("reading a relation")?)?,
            row.get(3).ctx("reading a relation")?,
        );
    }
    Ok(graph)
}

#[async_trait]
impl Graph for Duck {
    async fn put_relations(&self, relations: Vec<Relation>) -> Result<u32> {
        // One row per key: the last relation given for a key wins.
        let mut last: FxHashMap<(&str, &str, RelationKind), &Relation> = FxHashMap::default();
        for r in &relations {
            let (a, b) = ordered(&r.subject_id, &r.other_subject_id);
            last.insert((a, b, r.kind), r);
        }
        self.write(|w| {
            in_transaction(&w.conn, "storing relations", |conn| {
                {
                    let mut app = conn
                        .appender_to_catalog_and_db("relations_stage", "temp", "main")
                        .ctx("staging relations")?;
                    for (&(a, b, kind), r) in &last {
                        app.append_row(params![
                            a,
                            b,
                            relation_kind_code(kind),
                            effective_weight(r.weight),
                            r.since.map(Timestamp::nanos),
                        ])
                        .ctx("staging relations")?;
                    }
                    app.flush().ctx("staging relations")?;
                }
                conn.execute_batch(
                    "DELETE FROM store.relations USING relations_stage s \
                         WHERE store.relations.subject_id = s.subject_id \
                         AND store.relations.other_subject_id = s.other_subject_id \
                         AND store.relations.kind = s.kind; \
                     INSERT INTO store.relations SELECT * FROM relations_stage; \
                     DELETE FROM relations_stage;",
                )
                .ctx("storing relations")
            })?;
            let mut graph = self.graph.write();
            for (&(a, b, kind), r) in &last {
                graph.put(a, b, kind, effective_weight(r.weight));
            }
            Ok(())
        })?;
        Ok(relations.len() as u32)
    }

    async fn remove_relations(&self, keys: Vec<RelationKey>) -> Result<u32> {
        self.write(|w| {
            in_transaction(&w.conn, "removing relations", |conn| {
                let mut stmt = conn
                    .prepare(
                        "DELETE FROM store.relations \
                         WHERE subject_id = ? AND other_subject_id = ? AND (kind = ? OR ? = 0)",
                    )
                    .ctx("removing relations")?;
                for k in &keys {
                    let (a, b) = ordered(&k.subject_id, &k.other_subject_id);
                    // 0, which no stored kind is, stands for every kind.
                    let kind = k.kind.map_or(0, relation_kind_code);
                    stmt.execute(params![a, b, kind, kind])
                        .ctx("removing relations")?;
                }
                Ok(())
            })?;
            let mut graph = self.graph.write();
            let mut removed = 0;
            for k in &keys {
                removed += graph.remove(&k.subject_id, &k.other_subject_id, k.kind);
            }
            Ok(removed)
        })
    }

    async fn neighbors(
        &self,
        subject_id: &str,
        depth: u32,
        kinds: &[RelationKind],
        limit: usize,
    ) -> Result<(Vec<Neighbor>, bool)> {
        let depth = match depth {
            0 => 1,
            1..=3 => depth,
            _ => {
                return Err(StorageError::Invalid(format!(
                    "depth {depth}: neighbours are searched 1 to 3 hops deep"
                )));
            }
        };
        blocking(|| {
            let graph = self.graph.read();
            let reached = graph.search(subject_id, depth, kinds, None, usize::MAX)?;
            let mut found: Vec<(&str, &Reached<'_>)> =
                reached.iter().map(|(id, r)| (*id, r)).collect();
            found.sort_unstable_by(|a, b| a.1.depth.cmp(&b.1.depth).then(a.0.cmp(b.0)));
            let truncated = found.len() > limit;
            let neighbours = found
                .into_iter()
                .take(limit)
                .map(|(id, r)| Neighbor {
                    subject_id: id.to_owned(),
                    depth: r.depth,
                    kind: r.kind,
                    path_weight: r.weight,
                    path: path_to(&reached, id)
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                })
                .collect();
            Ok((neighbours, truncated))
        })
    }

    async fn find_path(
        &self,
        from: &str,
        to: &str,
        max_depth: u32,
        kinds: &[RelationKind],
    ) -> Result<Option<Vec<PathStep>>> {
        let max_depth = if max_depth == 0 { 6 } else { max_depth.min(6) };
        if from == to {
            return Ok(Some(Vec::new())); // there already: no hop
        }
        // Off the async worker: a deep search over a dense graph takes a while.
        blocking(|| {
            let graph = self.graph.read();
            let reached = graph.search(from, max_depth, kinds, Some(to), self.path_budget)?;
            if !reached.contains_key(to) {
                return Ok(None);
            }
            let mut steps = Vec::new();
            for id in path_to(&reached, to) {
                if let Some(r) = reached.get(id) {
                    steps.push(PathStep {
                        subject_id: id.to_owned(),
                        kind: r.kind,
                        weight: r.edge_weight,
                    });
                }
            }
            Ok(Some(steps))
        })
    }
}
