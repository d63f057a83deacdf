//! The graph on Dgraph (`credence_storage::dgraph`) against the live alpha in
//! `CREDENCE_TEST_DGRAPH`: the graph conformance suite, then what only a shared graph has
//! (two writers creating the same subjects, an alpha that does not answer).
#![cfg(feature = "dgraph")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "common/stack.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{endpoint, unique};
use credence_storage::dgraph::{DgraphGraph, DgraphOptions};
use credence_storage::{Graph, Relation, RelationKind, StorageError, Stores};

/// Options with a predicate prefix of their own, so tests never see each other's subjects.
fn options(url: &str) -> DgraphOptions {
    let mut options = DgraphOptions::new(url);
    options.prefix = format!("t{}", unique());
    options
}

/// Embedded stores with the graph swapped for Dgraph under a fresh prefix; `None` (skipped,
/// loudly) without an alpha.
async fn dgraph_stores() -> Option<Stores> {
    let url = endpoint("CREDENCE_TEST_DGRAPH", "dgraph graph conformance")?;
    let mut stores = common::embedded_stores();
    stores.graph = Arc::new(DgraphGraph::open(options(&url)).await.unwrap());
    Some(stores)
}

credence_storage::graph_conformance_tests!(match dgraph_stores().await {
    Some(stores) => stores,
    None => return,
});

fn friends(a: &str, b: &str) -> Relation {
    Relation {
        subject_id: a.into(),
        other_subject_id: b.into(),
        kind: RelationKind::Friend,
        weight: 0.5,
        since: None,
    }
}

/// Two graphs on one prefix (two nodes) putting relations of the same new subjects at once:
/// each subject is one node afterwards (the `@upsert` id makes one writer retry), so every
/// relation is found from either side.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_make_one_node_per_subject() {
    let Some(url) = endpoint("CREDENCE_TEST_DGRAPH", "dgraph concurrent writers") else {
        return;
    };
    let options = options(&url);
    let one = Arc::new(DgraphGraph::open(options.clone()).await.unwrap());
    let two = Arc::new(DgraphGraph::open(options).await.unwrap());
    let writes = (0..8).map(|i| {
        let graph = if i % 2 == 0 { one.clone() } else { two.clone() };
        tokio::spawn(async move {
            graph
                .put_relations(vec![friends("hub", &format!("spoke{i}"))])
                .await
        })
    });
    for write in writes.collect::<Vec<_>>() {
        assert_eq!(write.await.unwrap().unwrap(), 1);
    }
    let (around, truncated) = two.neighbors("hub", 1, &[], 100).await.unwrap();
    assert!(!truncated);
    let ids: Vec<&str> = around.iter().map(|n| n.subject_id.as_str()).collect();
    assert_eq!(
        ids,
        (0..8).map(|i| format!("spoke{i}")).collect::<Vec<_>>(),
        "one hub node holds every relation"
    );
    for i in 0..8 {
        let path = one
            .find_path(&format!("spoke{i}"), "hub", 1, &[])
            .await
            .unwrap();
        assert_eq!(path.map(|p| p.len()), Some(1), "spoke{i} reaches the hub");
    }
}

/// No alpha at the address: the open fails within its timeout, naming the address.
#[tokio::test]
async fn an_alpha_that_does_not_answer_is_named() {
    let mut options = DgraphOptions::new("http://127.0.0.1:9");
    options.timeout = Duration::from_secs(2);
    match DgraphGraph::open(options).await {
        Err(StorageError::Unavailable(msg)) => assert!(msg.contains("127.0.0.1:9"), "{msg}"),
        Err(other) => panic!("expected Unavailable naming the address, got {other}"),
        Ok(_) => panic!("opened a graph with no alpha"),
    }
}
