//! The relation graph: a table row per relation (the pair stored in id order), and the
//! adjacency in memory for traversals.

use async_trait::async_trait;
use credence_scorer::Timestamp;
use duckdb::{Connection, params};
use rustc_hash::FxHashMap;

use crate::embedded::convert::{relation_kind, relation_kind_code};
use crate::embedded::duck::{Ctx, Duck, blocking, in_transaction};
use crate::error::Result;
use crate::graph::{Graph, Neighbor, PathStep, Relation, RelationKey, RelationKind};
use crate::graph_search::{Edge, Search, effective_weight, neighbour_depth, path_depth};

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

    /// Runs `search` up to `max_depth` levels, or until it reaches `stop_at`.
    fn run(&self, search: &mut Search, max_depth: u32, stop_at: Option<&str>) -> Result<()> {
        for _ in 0..max_depth {
            let grew = search.expand(|id| self.edges.get(id).map_or(&[][..], Vec::as_slice))?;
            if !grew || stop_at.is_some_and(|s| search.has_reached(s)) {
                break;
            }
        }
        Ok(())
    }
}

/// The stored pair in id order: one row per unordered pair and kind.
fn ordered<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if a <= b { (a, b) } else { (b, a) }
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
        let depth = neighbour_depth(depth)?;
        blocking(|| {
            let graph = self.graph.read();
            let mut search = Search::new(subject_id, kinds, usize::MAX);
            graph.run(&mut search, depth, None)?;
            Ok(search.neighbours(limit))
        })
    }

    async fn find_path(
        &self,
        from: &str,
        to: &str,
        max_depth: u32,
        kinds: &[RelationKind],
    ) -> Result<Option<Vec<PathStep>>> {
        let max_depth = path_depth(max_depth);
        if from == to {
            return Ok(Some(Vec::new())); // there already: no hop
        }
        // Off the async worker: a deep search over a dense graph takes a while.
        blocking(|| {
            let graph = self.graph.read();
            let mut search = Search::new(from, kinds, self.path_budget);
            graph.run(&mut search, max_depth, Some(to))?;
            Ok(search.path(to))
        })
    }
}
