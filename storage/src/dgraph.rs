//! The social graph on Dgraph (feature `dgraph`), through `dgraph-tonic`.
//!
//! **Schema.** A subject is a node keyed by `<prefix>.id` (its national id, the subject id:
//! `@index(exact) @upsert`, so two writers creating the same subject conflict and one retries
//! instead of making two nodes). A relation is an edge of the predicate of its kind
//! (`<prefix>.family`, `<prefix>.friend`, ...) with the facets `weight` (the effective
//! weight, a float) and `since`, written in both directions: relations are undirected, and
//! a traversal then follows one predicate per kind instead of a predicate and its reverse.
//! One predicate per kind because Dgraph keeps one edge per (node, predicate, node): a kind
//! facet on a single predicate could not hold a family and a colleague relation between the
//! same two subjects, which the graph role allows.
//!
//! **Traversals** run the search every backend shares (`graph_search`), one level per round
//! trip: the level's subjects are asked for by uid in one query that returns their edges of
//! the asked kinds with weights and the other ends' ids and uids. `neighbors` is at most
//! three round trips and `find_path` six, whatever the number of subjects reached, all in
//! one read-only transaction (one consistent snapshot). `neighbors_of_each` (a micro-batch's
//! association) runs the searches of every subject together: still three round trips for
//! the whole batch, not three per subject.
//!
//! **Writes** are one upsert block per call (up to [`WRITE_CHUNK`] relations): the query
//! finds the subjects' nodes by id, the mutation creates the missing ones and sets or
//! deletes the edges. A transaction that loses a conflict (two writers creating the same
//! subject) is retried.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use async_trait::async_trait;
use dgraph_tonic::{Client, ClientError, Mutate, Mutation, Query};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::Value;

use crate::error::{Result, StorageError};
use crate::graph::{Graph, Neighbor, PathStep, Relation, RelationKey, RelationKind};
use crate::graph_search::{Edge, Search, effective_weight, neighbour_depth, path_depth};

/// Relations written per upsert: the block's query asks for every subject of the chunk.
pub const WRITE_CHUNK: usize = 5_000;
/// Subjects asked for per traversal query.
const READ_CHUNK: usize = 2_000;
/// Attempts of a write whose transaction lost a conflict. Writers of relations around one
/// busy subject all touch its edges, so under contention most attempts lose: the pauses
/// between them grow and are jittered, so the writers stop meeting.
const WRITE_ATTEMPTS: u32 = 12;

/// Every relation kind, with the name its predicate carries.
const KINDS: [(RelationKind, &str); 6] = [
    (RelationKind::Family, "family"),
    (RelationKind::Friend, "friend"),
    (RelationKind::Colleague, "colleague"),
    (RelationKind::Neighbour, "neighbour"),
    (RelationKind::Classmate, "classmate"),
    (RelationKind::BusinessPartner, "business_partner"),
];

/// Where the graph lives and how long a call may take.
#[derive(Clone, Debug)]
pub struct DgraphOptions {
    /// The alpha's gRPC address, `http://host:port`.
    pub url: String,
    /// Prefix of every predicate (`<prefix>.id`, `<prefix>.friend`, ...): several platforms,
    /// or test runs, share one Dgraph without seeing each other's subjects.
    pub prefix: String,
    /// Longest wait for one call (a schema change at open, a query, an upsert).
    pub timeout: Duration,
    /// The path search's budget of relations followed (as the embedded backend's).
    pub path_budget: usize,
}

impl DgraphOptions {
    /// Options with the defaults: prefix `credence`, 10 s per call, a budget of 100,000.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            prefix: "credence".into(),
            timeout: Duration::from_secs(10),
            path_budget: 100_000,
        }
    }
}

/// The graph role on Dgraph.
pub struct DgraphGraph {
    client: Client,
    options: DgraphOptions,
    /// `<prefix>.id`.
    id: String,
    /// Per relation kind, in the order of [`KINDS`]: its predicate (`<prefix>.<kind>`) and
    /// the key its weight facet has in query results (`<predicate>|weight`), made once.
    predicates: Vec<(String, String)>,
}

impl DgraphGraph {
    /// Connects and installs the schema (idempotent). A prefix that is not a plain name, or
    /// no alpha answering within the timeout, is an error naming it.
    pub async fn open(options: DgraphOptions) -> Result<Self> {
        let prefix_ok = !options.prefix.is_empty()
            && options
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !prefix_ok {
            return Err(StorageError::Invalid(format!(
                "Dgraph predicate prefix {:?}: use letters, digits and '_'",
                options.prefix
            )));
        }
        let client = Client::new(options.url.as_str())
            .map_err(|e| StorageError::Invalid(format!("Dgraph address {:?}: {e}", options.url)))?;
        let predicates = KINDS
            .iter()
            .map(|(_, name)| {
                let predicate = format!("{}.{name}", options.prefix);
                let facet = format!("{predicate}|weight");
                (predicate, facet)
            })
            .collect();
        let graph = Self {
            client,
            id: format!("{}.id", options.prefix),
            options,
            predicates,
        };
        let mut schema = format!("{}: string @index(exact) @upsert .\n", graph.id);
        for (kind, _) in KINDS {
            let _ = writeln!(schema, "{}: [uid] @count .", graph.predicate(kind));
        }
        graph
            .call(
                "installing the graph schema",
                graph.client.set_schema(schema),
            )
            .await?;
        Ok(graph)
    }

    fn predicate(&self, kind: RelationKind) -> &str {
        &self.predicate_and_facet(kind).0
    }

    /// A kind's predicate and the result key of its weight facet.
    fn predicate_and_facet(&self, kind: RelationKind) -> &(String, String) {
        let index = KINDS.iter().position(|(k, _)| *k == kind).unwrap_or(0);
        &self.predicates[index]
    }

    /// Runs one Dgraph call within the timeout, naming what it was doing on failure.
    async fn call<T>(
        &self,
        doing: &str,
        call: impl Future<Output = anyhow::Result<T>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.options.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(classify(doing, &self.options.url, &e)),
            Err(_) => Err(StorageError::Unavailable(format!(
                "{doing}: Dgraph at {} did not answer within {:?}",
                self.options.url, self.options.timeout
            ))),
        }
    }

    /// Runs an upsert block (its query, its mutations) and commits it, again while it loses
    /// conflicts; returns the query's answer (the state before the mutations).
    async fn upsert(
        &self,
        doing: &str,
        query: &str,
        vars: &HashMap<String, String>,
        mutation: Mutation,
    ) -> Result<Value> {
        let mut attempt = 1;
        loop {
            let mut txn = self.client.new_mutated_txn();
            let result = self
                .call(doing, async {
                    let response = txn
                        .upsert_with_vars(query, vars.clone(), vec![mutation.clone()])
                        .await?;
                    txn.commit().await?;
                    Ok(response.json)
                })
                .await;
            match result {
                Ok(json) if json.is_empty() => return Ok(Value::Null),
                Ok(json) => return parse(doing, &json),
                Err(StorageError::Conflict(_)) if attempt < WRITE_ATTEMPTS => {
                    tokio::time::sleep(retry_pause(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The query part that finds each subject's node: `sN as var(func: eq(<id>, $sN))`,
    /// with its variables; returns the variable name of every subject.
    fn find_subjects<'s>(
        &self,
        subjects: impl IntoIterator<Item = &'s str>,
    ) -> (
        String,
        String,
        HashMap<String, String>,
        FxHashMap<&'s str, String>,
    ) {
        let mut declarations = Vec::new();
        let mut blocks = String::new();
        let mut vars = HashMap::new();
        let mut names = FxHashMap::default();
        for subject in subjects {
            if names.contains_key(subject) {
                continue;
            }
            let name = format!("s{}", names.len());
            declarations.push(format!("${name}: string"));
            let _ = writeln!(blocks, "{name} as var(func: eq({}, ${name}))", self.id);
            vars.insert(format!("${name}"), subject.to_owned());
            names.insert(subject, name);
        }
        (declarations.join(", "), blocks, vars, names)
    }

    async fn put_chunk(&self, relations: &[&Relation]) -> Result<()> {
        let subjects = relations
            .iter()
            .flat_map(|r| [r.subject_id.as_str(), r.other_subject_id.as_str()]);
        let (declarations, blocks, vars, names) = self.find_subjects(subjects);
        let query = format!("query q({declarations}) {{\n{blocks}}}");
        let mut nquads = String::new();
        for (subject, name) in &names {
            let _ = writeln!(
                nquads,
                "uid({name}) <{}> {} .",
                self.id,
                nquad_string(subject)
            );
        }
        for r in relations {
            let (a, b) = (
                &names[r.subject_id.as_str()],
                &names[r.other_subject_id.as_str()],
            );
            let mut facets = format!("weight={}", float_facet(effective_weight(r.weight)));
            if let Some(since) = r.since {
                let _ = write!(facets, ", since={}", since.to_rfc3339());
            }
            let predicate = self.predicate(r.kind);
            for (from, to) in [(a, b), (b, a)] {
                let _ = writeln!(nquads, "uid({from}) <{predicate}> uid({to}) ({facets}) .");
            }
        }
        let mut mutation = Mutation::new();
        mutation.set_set_nquads(nquads);
        self.upsert("storing relations", &query, &vars, mutation)
            .await?;
        Ok(())
    }

    async fn remove_chunk(&self, keys: &[RelationKey]) -> Result<u32> {
        let subjects = keys
            .iter()
            .flat_map(|k| [k.subject_id.as_str(), k.other_subject_id.as_str()]);
        let (declarations, mut blocks, vars, names) = self.find_subjects(subjects);
        // For each key, the edges that exist now, one direction (both sides hold the same).
        let mut nquads = String::new();
        for (i, key) in keys.iter().enumerate() {
            let (a, b) = (
                &names[key.subject_id.as_str()],
                &names[key.other_subject_id.as_str()],
            );
            let _ = write!(blocks, "k{i}(func: uid({a})) {{ ");
            for (kind, _) in KINDS {
                if key.kind.is_some_and(|k| k != kind) {
                    continue;
                }
                let predicate = self.predicate(kind);
                let _ = write!(blocks, "{predicate} @filter(uid({b})) {{ uid }} ");
                for (from, to) in [(a, b), (b, a)] {
                    let _ = writeln!(nquads, "uid({from}) <{predicate}> uid({to}) .");
                }
            }
            blocks.push_str("}\n");
        }
        let query = format!("query q({declarations}) {{\n{blocks}}}");
        let mut mutation = Mutation::new();
        mutation.set_delete_nquads(nquads);
        let before = self
            .upsert("removing relations", &query, &vars, mutation)
            .await?;
        let mut existed = 0;
        for i in 0..keys.len() {
            for node in before[format!("k{i}")].as_array().into_iter().flatten() {
                for (kind, _) in KINDS {
                    if let Some(edges) = node[self.predicate(kind)].as_array() {
                        existed += edges.len() as u32;
                    }
                }
            }
        }
        Ok(existed)
    }

    /// Runs `searches` (all over the same kinds) level by level up to `max_depth`, each
    /// until it reaches nobody new or `stop_at`: one query per level (per [`READ_CHUNK`]
    /// subjects) for all of them together, in one read-only transaction.
    async fn run(
        &self,
        searches: &mut [Search],
        max_depth: u32,
        stop_at: Option<&str>,
    ) -> Result<()> {
        let Some(first) = searches.first() else {
            return Ok(());
        };
        let kinds: Vec<RelationKind> = KINDS
            .iter()
            .map(|(k, _)| *k)
            .filter(|k| first.kinds().is_empty() || first.kinds().contains(k))
            .collect();
        let mut fields = format!("uid {}", self.id);
        for kind in &kinds {
            let _ = write!(
                fields,
                " {} @facets(weight) {{ uid {} }}",
                self.predicate(*kind),
                self.id
            );
        }
        let mut txn = self.client.new_read_only_txn();
        // Subject id -> uid, for everyone the searches have seen.
        let mut uids: FxHashMap<String, String> = FxHashMap::default();
        let mut active = vec![true; searches.len()];
        for depth in 0..max_depth {
            let mut wanted: Vec<&str> = searches
                .iter()
                .zip(&active)
                .filter(|(_, on)| **on)
                .flat_map(|(search, _)| search.frontier())
                .collect();
            wanted.sort_unstable();
            wanted.dedup();
            if wanted.is_empty() {
                break;
            }
            let mut edges: FxHashMap<String, Vec<Edge>> = FxHashMap::default();
            for chunk in wanted.chunks(READ_CHUNK) {
                // The starts by id (one block each); later levels by the uids found.
                let (query, vars) = if depth == 0 {
                    let mut declarations = Vec::new();
                    let mut blocks = String::new();
                    let mut vars = HashMap::new();
                    for (i, id) in chunk.iter().enumerate() {
                        declarations.push(format!("$s{i}: string"));
                        let _ =
                            write!(blocks, "s{i}(func: eq({}, $s{i})) {{ {fields} }} ", self.id);
                        vars.insert(format!("$s{i}"), (*id).to_owned());
                    }
                    (
                        format!("query q({}) {{ {blocks}}}", declarations.join(", ")),
                        vars,
                    )
                } else {
                    let list: Vec<&str> = chunk
                        .iter()
                        .filter_map(|id| uids.get(*id).map(String::as_str))
                        .collect();
                    if list.is_empty() {
                        continue;
                    }
                    (
                        format!("{{ q(func: uid({})) {{ {fields} }} }}", list.join(", ")),
                        HashMap::new(),
                    )
                };
                let response = self
                    .call("searching the graph", txn.query_with_vars(query, vars))
                    .await?;
                let json = parse("searching the graph", &response.json)?;
                let blocks = json.as_object().into_iter().flat_map(|o| o.values());
                for node in blocks.filter_map(Value::as_array).flatten() {
                    self.read_edges(node, &kinds, &mut edges, &mut uids);
                }
            }
            for (search, on) in searches.iter_mut().zip(&mut active) {
                if !*on {
                    continue;
                }
                let grew = search.expand(|id| edges.get(id).map_or(&[][..], Vec::as_slice))?;
                if !grew || stop_at.is_some_and(|s| search.has_reached(s)) {
                    *on = false;
                }
            }
        }
        Ok(())
    }

    /// The edges of one node of a traversal answer, under its subject id; remembers the
    /// uid of every subject at their other ends.
    fn read_edges(
        &self,
        node: &Value,
        kinds: &[RelationKind],
        edges: &mut FxHashMap<String, Vec<Edge>>,
        uids: &mut FxHashMap<String, String>,
    ) {
        let Some(id) = node[&self.id].as_str() else {
            return;
        };
        if let Some(uid) = node["uid"].as_str() {
            uids.entry(id.to_owned()).or_insert_with(|| uid.to_owned());
        }
        let list = edges.entry(id.to_owned()).or_default();
        for kind in kinds {
            let (predicate, facet) = self.predicate_and_facet(*kind);
            for other in node[predicate].as_array().into_iter().flatten() {
                let (Some(other_id), Some(uid)) = (other[&self.id].as_str(), other["uid"].as_str())
                else {
                    continue;
                };
                uids.entry(other_id.to_owned())
                    .or_insert_with(|| uid.to_owned());
                list.push(Edge {
                    other: other_id.to_owned(),
                    kind: *kind,
                    weight: other[facet].as_f64().unwrap_or(1.0),
                });
            }
        }
    }
}

#[async_trait]
impl Graph for DgraphGraph {
    async fn put_relations(&self, relations: Vec<Relation>) -> Result<u32> {
        // One edge per key: the last relation given for a key wins.
        let mut seen: FxHashSet<(&str, &str, RelationKind)> = FxHashSet::default();
        let mut last: Vec<&Relation> = Vec::with_capacity(relations.len());
        for r in relations.iter().rev() {
            let (a, b) = if r.subject_id <= r.other_subject_id {
                (r.subject_id.as_str(), r.other_subject_id.as_str())
            } else {
                (r.other_subject_id.as_str(), r.subject_id.as_str())
            };
            if seen.insert((a, b, r.kind)) {
                last.push(r);
            }
        }
        for chunk in last.chunks(WRITE_CHUNK) {
            self.put_chunk(chunk).await?;
        }
        Ok(relations.len() as u32)
    }

    async fn remove_relations(&self, keys: Vec<RelationKey>) -> Result<u32> {
        let mut removed = 0;
        for chunk in keys.chunks(WRITE_CHUNK) {
            removed += self.remove_chunk(chunk).await?;
        }
        Ok(removed)
    }

    async fn neighbors(
        &self,
        subject_id: &str,
        depth: u32,
        kinds: &[RelationKind],
        limit: usize,
    ) -> Result<(Vec<Neighbor>, bool)> {
        let depth = neighbour_depth(depth)?;
        let mut search = [Search::new(subject_id, kinds, usize::MAX)];
        self.run(&mut search, depth, None).await?;
        Ok(search[0].neighbours(limit))
    }

    async fn neighbors_of_each(
        &self,
        subject_ids: &[String],
        depth: u32,
        kinds: &[RelationKind],
        limit: usize,
    ) -> Result<Vec<(Vec<Neighbor>, bool)>> {
        let depth = neighbour_depth(depth)?;
        let mut searches: Vec<Search> = subject_ids
            .iter()
            .map(|id| Search::new(id, kinds, usize::MAX))
            .collect();
        self.run(&mut searches, depth, None).await?;
        Ok(searches.iter().map(|s| s.neighbours(limit)).collect())
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
        let mut search = [Search::new(from, kinds, self.options.path_budget)];
        self.run(&mut search, max_depth, Some(to)).await?;
        Ok(search[0].path(to))
    }
}

/// The pause after losing attempt `attempt` (1, 2, ...): 20 ms doubling up to 1 s, times a
/// jitter in [0.5, 1.5).
fn retry_pause(attempt: u32) -> Duration {
    let base = Duration::from_millis(10 << attempt.min(7)).min(Duration::from_secs(1));
    // Jitter from the clock's nanoseconds, mixed: enough to split writers that lost together.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = u64::from(nanos).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11;
    let unit = mixed as f64 / (1_u64 << 53) as f64;
    base.mul_f64(0.5 + unit)
}

fn parse(doing: &str, json: &[u8]) -> Result<Value> {
    serde_json::from_slice(json)
        .map_err(|e| StorageError::Backend(format!("{doing}: Dgraph answered with bad JSON: {e}")))
}

/// A Dgraph failure as a storage error: a lost transaction conflict is `Conflict` (retried
/// by the writer), an alpha that cannot be reached `Unavailable`, the rest `Backend`.
fn classify(doing: &str, url: &str, error: &anyhow::Error) -> StorageError {
    // gRPC code numbers: `dgraph-tonic` re-exports tonic's `Status` but not its `Code`.
    const DEADLINE_EXCEEDED: i32 = 4;
    const ABORTED: i32 = 10;
    const UNAVAILABLE: i32 = 14;
    let status = error
        .chain()
        .find_map(|cause| match cause.downcast_ref::<ClientError>()? {
            ClientError::CannotAlter(s)
            | ClientError::CannotQuery(s)
            | ClientError::CannotMutate(s)
            | ClientError::CannotDoRequest(s)
            | ClientError::CannotCommitOrAbort(s)
            | ClientError::CannotLogin(s)
            | ClientError::CannotRefreshLogin(s)
            | ClientError::CannotCheckVersion(s) => Some(s),
            _ => None,
        });
    let message = status.map_or_else(|| format!("{error:#}"), |s| s.message().to_owned());
    match status.map(|s| s.code() as i32) {
        Some(ABORTED) => StorageError::Conflict(format!(
            "{doing}: the Dgraph transaction was aborted: {message}"
        )),
        Some(UNAVAILABLE | DEADLINE_EXCEEDED) | None => {
            StorageError::Unavailable(format!("{doing}: Dgraph at {url}: {message}"))
        }
        Some(_) => StorageError::Backend(format!("{doing}: Dgraph at {url}: {message}")),
    }
}

/// A string as an N-Quad literal (quotes, backslashes and line ends escaped).
fn nquad_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A weight as a float facet: Rust's shortest text that reads back to the same bits, with a
/// decimal point (Dgraph takes `1` for an integer facet).
fn float_facet(weight: f64) -> String {
    let text = weight.to_string();
    if text.contains('.') {
        text
    } else {
        format!("{text}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facets_and_literals_are_written_so_they_read_back() {
        assert_eq!(float_facet(1.0), "1.0");
        assert_eq!(float_facet(0.5), "0.5");
        assert_eq!(float_facet(1e-7), "0.0000001");
        assert_eq!(nquad_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }
}
