//! The graph role on Dgraph (`credence_storage::dgraph`) against Dgraph's own bulk path,
//! measured in the same run:
//!
//! - writing relations: `put_relations` (upsert blocks that find or create each subject by
//!   id) against plain mutations of the same edges between new blank nodes, committed at
//!   once, the same number of relations per request;
//! - a micro-batch's association: the neighbours of 1,000 subjects two hops out asked for
//!   together (`neighbors_of_each`, what the pipeline does) and one subject at a time.
//!
//! A benchmark, not a test: it prints a table and asserts only that both ways of asking
//! give the same answers. It talks to the alpha in `CREDENCE_TEST_DGRAPH` only:
//!
//! ```text
//! deploy/local/stack.sh up dgraph && eval "$(deploy/local/stack.sh env)"
//! cargo run --release -p credence-storage --features dgraph --example graph_bench
//! ```

use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use credence_storage::dgraph::{DgraphGraph, DgraphOptions, WRITE_CHUNK};
use credence_storage::{Graph, Relation, RelationKind};
use dgraph_tonic::{Client, Mutate, Mutation};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Subjects of the benchmark graph: a ring of friends with colleague chords.
const SUBJECTS: usize = 20_000;
/// Subjects whose neighbourhoods are asked for.
const ASKED: usize = 1_000;

fn run_id() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000_000)
}

/// The benchmark's relations: two per subject.
fn relations() -> Vec<Relation> {
    let relation = |a: usize, b: usize, kind| Relation {
        subject_id: format!("s{a}"),
        other_subject_id: format!("s{}", b % SUBJECTS),
        kind,
        weight: 0.5,
        since: None,
    };
    (0..SUBJECTS)
        .flat_map(|i| {
            [
                relation(i, i + 1, RelationKind::Friend),
                relation(i, i * 7 + 3, RelationKind::Colleague),
            ]
        })
        .collect()
}

/// The bulk path: the same edges (both directions, weight facet) and ids as N-Quads between
/// blank nodes, `WRITE_CHUNK` relations per mutation, committed at once. It creates nodes
/// without looking any up, so it is the ceiling an upsert can approach, not a way to keep
/// one node per subject.
async fn raw_mutations(client: &Client, relations: &[Relation], run: u128) -> Result<(), BoxError> {
    for chunk in relations.chunks(WRITE_CHUNK) {
        let mut nquads = String::new();
        let mut named = std::collections::HashSet::new();
        for r in chunk {
            for id in [&r.subject_id, &r.other_subject_id] {
                if named.insert(id.clone()) {
                    let _ = writeln!(nquads, "_:{id} <raw{run}.id> \"{id}\" .");
                }
            }
            let kind = format!("{:?}", r.kind).to_lowercase();
            for (a, b) in [
                (&r.subject_id, &r.other_subject_id),
                (&r.other_subject_id, &r.subject_id),
            ] {
                let _ = writeln!(nquads, "_:{a} <raw{run}.{kind}> _:{b} (weight=0.5) .");
            }
        }
        let mut mutation = Mutation::new();
        mutation.set_set_nquads(nquads);
        client
            .new_mutated_txn()
            .mutate_and_commit_now(mutation)
            .await?;
    }
    Ok(())
}

fn row(what: &str, n: usize, t: Duration, unit: &str) {
    println!(
        "| {what} | {n} | {:.2} | {:.0} {unit}/s |",
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let Ok(url) = std::env::var("CREDENCE_TEST_DGRAPH") else {
        return Err("CREDENCE_TEST_DGRAPH is unset: eval \"$(deploy/local/stack.sh env)\"".into());
    };
    let run = run_id();
    let relations = relations();
    let count = relations.len();
    println!("| Dgraph | count | seconds | rate |");
    println!("|---|---:|---:|---:|");

    let client = Client::new(url.as_str())?;
    let t = Instant::now();
    raw_mutations(&client, &relations, run).await?;
    row(
        &format!("bulk path: mutations of {WRITE_CHUNK} relations between blank nodes, commit now"),
        count,
        t.elapsed(),
        "relations",
    );

    let mut options = DgraphOptions::new(&url);
    options.prefix = format!("bench{run}");
    options.timeout = Duration::from_secs(120);
    let graph = DgraphGraph::open(options).await?;
    let t = Instant::now();
    graph.put_relations(relations).await?;
    row(
        &format!(
            "put_relations: upserts of {WRITE_CHUNK} relations, subjects found or created by id"
        ),
        count,
        t.elapsed(),
        "relations",
    );

    let ids: Vec<String> = (0..ASKED)
        .map(|i| format!("s{}", i * 13 % SUBJECTS))
        .collect();
    let t = Instant::now();
    let together = graph.neighbors_of_each(&ids, 2, &[], 10_000).await?;
    row(
        "neighbours of 1,000 subjects, 2 hops, together (a micro-batch's association)",
        ASKED,
        t.elapsed(),
        "subjects",
    );
    let t = Instant::now();
    for (id, expected) in ids.iter().zip(&together) {
        let alone = graph.neighbors(id, 2, &[], 10_000).await?;
        assert_eq!(&alone, expected, "{id}: together and alone differ");
    }
    row(
        "neighbours of 1,000 subjects, 2 hops, one subject at a time",
        ASKED,
        t.elapsed(),
        "subjects",
    );
    Ok(())
}
