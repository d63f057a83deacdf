//! The social graph: relations in and out, neighbours to depth 3, shortest paths, the
//! association value (and a rule reading it), and bad relations refused one by one.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use credence_proto::v1 as pb;
use credence_tests::events::event;
use credence_tests::{Node, NodeOptions, wait};
use serde_json::json;
use tonic::Code;

const A: &str = "G-A";
const B: &str = "G-B";
const C: &str = "G-C";
const D: &str = "G-D";
const E: &str = "G-E";
const F: &str = "G-F";

fn rel(a: &str, b: &str, kind: pb::RelationKind, weight: f64) -> pb::Relation {
    pb::Relation {
        subject_id: a.into(),
        other_subject_id: b.into(),
        kind: kind as i32,
        weight,
        since: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neighbours_paths_association_and_bad_relations() {
    graph_test(NodeOptions::default()).await;
}

/// The same on a node whose graph is in Dgraph (`make test-stack`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neighbours_paths_association_and_bad_relations_on_dgraph() {
    let Some(env) = credence_tests::cluster::dgraph_graph_env("graph test on Dgraph") else {
        return;
    };
    graph_test(NodeOptions {
        env,
        ..NodeOptions::default()
    })
    .await;
}

async fn graph_test(options: NodeOptions) {
    use pb::RelationKind::{Colleague, Family, Friend, Neighbour, Unspecified};
    let node = Node::start_with(options).await.unwrap();
    let mut graph = node.graph();

    // A -friend 1.0- B -colleague 0.5- C -family 0.8- D -friend- F ; A -neighbour 0.4- E
    let response = graph
        .put_relations(pb::PutRelationsRequest {
            relations: vec![
                rel(A, B, Friend, 1.0),
                rel(B, C, Colleague, 0.5),
                rel(A, A, Friend, 1.0),
                rel(C, D, Family, 0.8),
                rel(A, E, Neighbour, 0.4),
                rel(D, F, Friend, 0.0), // 0 means 1
                rel(B, D, Unspecified, 0.5),
                rel(B, E, Friend, 1.5),
                rel(B, F, Friend, -0.2),
                rel(B, "", Friend, 0.5),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.upserted, 5, "{response:?}");
    let rejected: Vec<_> = response.rejected.iter().map(|r| r.index).collect();
    assert_eq!(rejected, [2, 6, 7, 8, 9], "{response:?}");
    let reasons: Vec<_> = response
        .rejected
        .iter()
        .map(|r| r.reason.to_lowercase())
        .collect();
    assert!(
        reasons[0].contains("same") || reasons[0].contains("self") || reasons[0].contains("itself"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("kind"), "{reasons:?}");
    assert!(
        reasons[2].contains("weight") && reasons[3].contains("weight"),
        "{reasons:?}"
    );
    assert!(reasons[4].contains("subject"), "{reasons:?}");

    // neighbours to depth 3, ordered by depth then id, with the path that reached them
    let neighbors = graph
        .get_neighbors(pb::GetNeighborsRequest {
            subject_id: A.into(),
            depth: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<_> = neighbors
        .neighbors
        .iter()
        .map(|n| {
            (
                n.subject_id.as_str(),
                n.depth,
                n.kind,
                n.path_weight,
                n.path.clone(),
            )
        })
        .collect();
    let path = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        got,
        [
            (B, 1, Friend as i32, 1.0, path(&[B])),
            (E, 1, Neighbour as i32, 0.4, path(&[E])),
            (C, 2, Colleague as i32, 0.5, path(&[B, C])),
            (D, 3, Family as i32, 0.5 * 0.8, path(&[B, C, D])),
        ]
    );
    assert!(!neighbors.truncated);
    let direct_friends = graph
        .get_neighbors(pb::GetNeighborsRequest {
            subject_id: A.into(),
            depth: 3,
            kinds: vec![Friend as i32],
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = direct_friends
        .neighbors
        .iter()
        .map(|n| n.subject_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [B],
        "only friend relations: B, and nothing through the colleague edge"
    );
    let limited = graph
        .get_neighbors(pb::GetNeighborsRequest {
            subject_id: A.into(),
            depth: 3,
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(limited.neighbors.len(), 2);
    assert!(limited.truncated);
    let err = graph
        .get_neighbors(pb::GetNeighborsRequest {
            subject_id: A.into(),
            depth: 4,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("depth"), "{err:?}");

    // shortest paths
    let found = graph
        .find_path(pb::FindPathRequest {
            from_subject_id: A.into(),
            to_subject_id: D.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(found.found);
    let steps: Vec<_> = found
        .steps
        .iter()
        .map(|s| (s.subject_id.as_str(), s.kind, s.weight))
        .collect();
    assert_eq!(
        steps,
        [
            (B, Friend as i32, 1.0),
            (C, Colleague as i32, 0.5),
            (D, Family as i32, 0.8)
        ]
    );
    let reverse = graph
        .find_path(pb::FindPathRequest {
            from_subject_id: F.into(),
            to_subject_id: A.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reverse.steps.len(),
        4,
        "relations are undirected: {reverse:?}"
    );
    assert_eq!(reverse.steps[0].weight, 1.0, "weight 0 stored as 1");
    let too_far = graph
        .find_path(pb::FindPathRequest {
            from_subject_id: A.into(),
            to_subject_id: F.into(),
            max_depth: 3,
            kinds: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!too_far.found && too_far.steps.is_empty(), "{too_far:?}");

    // association: scores first (one event each, so no decay): B 600, C 700, E 1000
    let events = vec![
        event(
            "g-b",
            B,
            "financial",
            "bankruptcy",
            "2026-05-01T00:00:00Z",
            &json!({}),
        ),
        event(
            "g-c",
            C,
            "financial",
            "loan_default",
            "2026-05-01T00:00:00Z",
            &json!({"amount": 25000}),
        ),
        event(
            "g-e",
            E,
            "online",
            "purchase",
            "2026-05-01T00:00:00Z",
            &json!({"category": "groceries"}),
        ),
    ];
    node.ingestion()
        .publish_events(pb::PublishEventsRequest { events })
        .await
        .unwrap();
    for s in [B, C, E] {
        wait::scored(&node, s, 1).await.unwrap();
    }
    // weights: B 1.0 (depth 1), E 0.4 (depth 1), C 0.5 * 0.5 (depth 2, attenuation 0.5)
    let weights = [(B, 1.0, -400.0), (E, 0.4, 0.0), (C, 0.25, -300.0)];
    let total: f64 = weights.iter().map(|w| w.1).sum();
    let expected: f64 = weights.iter().map(|w| w.1 * w.2).sum::<f64>() / total;
    let association = graph
        .get_association(pb::GetAssociationRequest {
            subject_id: A.into(),
            depth: 2,
            kinds: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(association.attenuation, 0.5);
    assert!(
        (association.association - expected).abs() < 1e-9,
        "{} vs {expected}",
        association.association
    );
    let contributors: Vec<_> = association
        .contributors
        .iter()
        .map(|c| (c.subject_id.as_str(), c.depth, c.score, c.deviation))
        .collect();
    assert_eq!(
        contributors,
        [
            (B, 1, 600.0, -400.0),
            (C, 2, 700.0, -300.0),
            (E, 1, 1000.0, 0.0)
        ],
        "largest |contribution| first"
    );
    for (c, (_, weight, deviation)) in association
        .contributors
        .iter()
        .zip([weights[0], weights[2], weights[1]])
    {
        assert!((c.weight - weight).abs() < 1e-12, "{c:?}");
        assert!(
            (c.contribution - weight * deviation / total).abs() < 1e-9,
            "{c:?}"
        );
    }
    let depth1 = graph
        .get_association(pb::GetAssociationRequest {
            subject_id: A.into(),
            depth: 1,
            kinds: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        (depth1.association - (-400.0 / 1.4)).abs() < 1e-9,
        "{depth1:?}"
    );
    let lonely = graph
        .get_association(pb::GetAssociationRequest {
            subject_id: "G-NOBODY".into(),
            ..Default::default()
        })
        .await;
    if let Ok(lonely) = lonely {
        let lonely = lonely.into_inner();
        assert_eq!((lonely.association, lonely.contributors.len()), (0.0, 0));
    }

    // fraud_flag reads subject.association: x1.5 below -100
    node.ingestion()
        .publish_events(pb::PublishEventsRequest {
            events: vec![event(
                "g-a",
                A,
                "online",
                "fraud_flag",
                "2026-05-02T00:00:00Z",
                &json!({"confidence": 0.9}),
            )],
        })
        .await
        .unwrap();
    let snapshot = wait::scored(&node, A, 1).await.unwrap();
    assert_eq!(
        snapshot.score,
        1000.0 - 225.0,
        "fraud_flag x1.5 for an association below -100"
    );
    let change = node
        .scoring()
        .explain_score(pb::ExplainScoreRequest {
            subject_id: A.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .changes
        .pop()
        .unwrap();
    let read = change
        .inputs
        .as_ref()
        .and_then(|i| i.fields.get("subject.association"))
        .cloned();
    assert!(
        read.is_some(),
        "the change records the association it read: {change:?}"
    );

    // removal
    let removed = graph
        .remove_relations(pb::RemoveRelationsRequest {
            relations: vec![pb::RelationKey {
                subject_id: C.into(),
                other_subject_id: B.into(),
                kind: 0,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.removed, 1);
    let after = graph
        .get_neighbors(pb::GetNeighborsRequest {
            subject_id: A.into(),
            depth: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = after
        .neighbors
        .iter()
        .map(|n| n.subject_id.as_str())
        .collect();
    assert_eq!(ids, [B, E]);
}
