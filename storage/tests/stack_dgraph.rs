//! Dgraph through `dgraph-tonic` (protocol feature `dgraph-21-03`), against the live alpha in
//! `CREDENCE_TEST_DGRAPH` (its gRPC URL; Dgraph v24 on the local stack). See docs/STACK.md.
#![cfg(feature = "dgraph")]

#[path = "common/stack.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use common::{TestResult, endpoint, unique};
use dgraph_tonic::{Client, Mutate, Mutation, Query};
use serde_json::Value;

const SCHEMA: &str = r"
nationalID: string @index(exact) @upsert .
name: string .
knows: [uid] @reverse .
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dgraph_schema_facets_mutate_two_hop_query() -> TestResult {
    let Some(url) = endpoint("CREDENCE_TEST_DGRAPH", "dgraph round trip") else {
        return Ok(());
    };
    let client = Client::new(url)?;
    client.set_schema(SCHEMA).await?;

    // a -> b, a -> c, b -> d, c -> e, d -> f; each edge with facets.
    let run = unique();
    let id = |n: &str| format!("{run}-{n}");
    let mut nquads = String::new();
    for n in ["a", "b", "c", "d", "e", "f"] {
        let _ = write!(
            nquads,
            "_:{n} <nationalID> \"{}\" .\n_:{n} <name> \"{n}\" .\n",
            id(n)
        );
    }
    let edges = [
        ("a", "b", 0.9),
        ("a", "c", 0.4),
        ("b", "d", 0.7),
        ("c", "e", 0.2),
        ("d", "f", 0.5),
    ];
    for (from, to, weight) in edges {
        let _ = writeln!(
            nquads,
            "_:{from} <knows> _:{to} (weight={weight}, since=2024-05-01T00:00:00Z) ."
        );
    }
    let mut mu = Mutation::new();
    mu.set_set_nquads(nquads);
    let mut txn = client.new_mutated_txn();
    let assigned = txn.mutate(mu).await?;
    txn.commit().await?;
    assert_eq!(
        assigned.uids.len(),
        6,
        "one uid per blank node: {:?}",
        assigned.uids
    );

    // Neighbours two hops out from a, found through the indexed nationalID, facets included.
    let q = r"query q($id: string) {
      q(func: eq(nationalID, $id)) {
        nationalID
        knows @facets(weight) {
          nationalID
          knows @facets(weight) { nationalID }
        }
      }
    }";
    let vars = HashMap::from([("$id", id("a"))]);
    let resp = client.new_read_only_txn().query_with_vars(q, vars).await?;
    let json: Value = serde_json::from_slice(&resp.json)?;
    let roots = json["q"].as_array().expect("q is a list");
    assert_eq!(
        roots.len(),
        1,
        "exactly one node has a's nationalID: {json}"
    );
    let a = &roots[0];
    assert_eq!(a["nationalID"], Value::String(id("a")));

    let mut hop1 = BTreeMap::new();
    let mut hop2 = BTreeMap::new();
    for b in a["knows"].as_array().expect("a knows someone") {
        let nid = b["nationalID"].as_str().expect("nationalID").to_owned();
        hop1.insert(
            nid.clone(),
            b["knows|weight"]
                .as_f64()
                .expect("weight facet on a's edge"),
        );
        for c in b["knows"].as_array().into_iter().flatten() {
            let w = c["knows|weight"]
                .as_f64()
                .expect("weight facet on the second hop");
            hop2.insert(
                c["nationalID"].as_str().expect("nationalID").to_owned(),
                (nid.clone(), w),
            );
            assert!(c.get("knows").is_none(), "the query stops at two hops");
        }
    }
    assert_eq!(hop1, BTreeMap::from([(id("b"), 0.9), (id("c"), 0.4)]));
    assert_eq!(
        hop2,
        BTreeMap::from([(id("d"), (id("b"), 0.7)), (id("e"), (id("c"), 0.2))])
    );

    // The reverse edge: who knows d?
    let q = r"query q($id: string) { q(func: eq(nationalID, $id)) { ~knows { nationalID } } }";
    let resp = client
        .new_read_only_txn()
        .query_with_vars(q, HashMap::from([("$id", id("d"))]))
        .await?;
    let json: Value = serde_json::from_slice(&resp.json)?;
    let who: BTreeSet<&str> = json["q"][0]["~knows"]
        .as_array()
        .expect("reverse edge")
        .iter()
        .filter_map(|n| n["nationalID"].as_str())
        .collect();
    assert_eq!(who, BTreeSet::from([id("b").as_str()]));
    Ok(())
}
