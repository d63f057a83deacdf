//! The graph: neighbours, paths, updates, and a bounded path search.

#![allow(clippy::wildcard_imports, reason = "the suite's shared helpers")]

use super::*;

fn relation(a: &str, b: &str, kind: RelationKind, weight: f64) -> Relation {
    Relation {
        subject_id: a.into(),
        other_subject_id: b.into(),
        kind,
        weight,
        since: Some(ts(T0)),
    }
}

/// Neighbours by depth with the heaviest shortest path, kind filters and limits; paths;
/// replacement and removal of relations.
pub async fn graph_neighbors_paths_and_updates(stores: Stores) {
    use RelationKind::{Colleague, Family, Friend};
    let g = &stores.graph;
    let written = g
        .put_relations(vec![
            relation("a", "b", Friend, 0.5),
            relation("c", "b", Family, 0.0), // weight 0 means 1
            relation("a", "d", Colleague, 0.9),
            relation("d", "c", Friend, 0.8),
            relation("c", "e", Friend, 1.0),
        ])
        .await
        .expect("put");
    assert_eq!(written, 5);
    let neighbors = |depth: u32, kinds: Vec<RelationKind>, limit: usize| {
        let g = g.clone();
        async move {
            g.neighbors("a", depth, &kinds, limit)
                .await
                .expect("neighbors")
        }
    };
    let summary = |(n, truncated): (Vec<Neighbor>, bool)| {
        (
            n.into_iter()
                .map(|n| (n.subject_id, n.depth, n.kind, n.path_weight, n.path))
                .collect::<Vec<_>>(),
            truncated,
        )
    };
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    let (f, fa, co) = (Friend, Family, Colleague);
    assert_eq!(
        summary(neighbors(1, vec![], 100).await),
        (
            vec![
                ("b".into(), 1, f, 0.5, s(&["b"])),
                ("d".into(), 1, co, 0.9, s(&["d"]))
            ],
            false
        )
    );
    let two = summary(neighbors(2, vec![], 100).await);
    assert_eq!(
        two.0[2],
        ("c".into(), 2, f, 0.9 * 0.8, s(&["d", "c"])),
        "c at depth 2 through the heavier path"
    );
    assert_eq!(two.0.len(), 3);
    let three = summary(neighbors(3, vec![], 100).await);
    assert_eq!(
        three.0.iter().map(|n| n.0.as_str()).collect::<Vec<_>>(),
        ["b", "d", "c", "e"]
    );
    assert_eq!(
        three.0[3],
        ("e".into(), 3, f, 0.9 * 0.8 * 1.0, s(&["d", "c", "e"]))
    );
    let limited = summary(neighbors(3, vec![], 2).await);
    assert_eq!((limited.0.len(), limited.1), (2, true));
    assert_eq!(
        summary(neighbors(3, vec![f], 100).await).0,
        vec![("b".into(), 1, f, 0.5, s(&["b"]))]
    );
    // Several subjects at once: each exactly as asked alone, in the order given.
    let ids = s(&["c", "nobody", "a", "c"]);
    let each = g
        .neighbors_of_each(&ids, 2, &[], 3)
        .await
        .expect("neighbors of each");
    assert_eq!(each.len(), ids.len());
    for (id, got) in ids.iter().zip(each) {
        let alone = g.neighbors(id, 2, &[], 3).await.expect("alone");
        assert_eq!(got, alone, "{id}");
    }
    assert!(
        g.neighbors("nobody", 2, &[], 10)
            .await
            .expect("unknown")
            .0
            .is_empty()
    );

    let steps = |p: Option<Vec<PathStep>>| {
        p.map(|steps| {
            steps
                .into_iter()
                .map(|s| (s.subject_id, s.kind, s.weight))
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        steps(g.find_path("a", "e", 6, &[]).await.expect("path")),
        Some(vec![
            ("d".into(), co, 0.9),
            ("c".into(), f, 0.8),
            ("e".into(), f, 1.0)
        ])
    );
    assert_eq!(
        steps(g.find_path("a", "e", 2, &[]).await.expect("too short")),
        None
    );
    assert_eq!(
        steps(
            g.find_path("a", "e", 6, &[co])
                .await
                .expect("colleagues only")
        ),
        None
    );
    assert_eq!(
        steps(g.find_path("a", "zz", 6, &[]).await.expect("unknown")),
        None
    );

    // Replace a-d (given the other way round): the path through b becomes the heavier.
    g.put_relations(vec![relation("d", "a", Colleague, 0.1)])
        .await
        .expect("replace");
    assert_eq!(
        steps(g.find_path("e", "a", 6, &[]).await.expect("path back")),
        Some(vec![
            ("c".into(), f, 1.0),
            ("b".into(), fa, 1.0),
            ("a".into(), f, 0.5)
        ])
    );
    let removed = g
        .remove_relations(vec![
            RelationKey {
                subject_id: "b".into(),
                other_subject_id: "c".into(),
                kind: Some(fa),
            },
            RelationKey {
                subject_id: "a".into(),
                other_subject_id: "b".into(),
                kind: Some(co),
            },
        ])
        .await
        .expect("remove");
    assert_eq!(removed, 1, "only b-c family existed");
    assert_eq!(
        steps(g.find_path("a", "c", 3, &[]).await.expect("path")),
        Some(vec![("d".into(), co, 0.1), ("c".into(), f, 0.8)])
    );
    // A key without a kind removes every kind between the two.
    g.put_relations(vec![relation("a", "d", Friend, 0.3)])
        .await
        .expect("second kind");
    let removed = g
        .remove_relations(vec![RelationKey {
            subject_id: "d".into(),
            other_subject_id: "a".into(),
            kind: None,
        }])
        .await
        .expect("remove all kinds");
    assert_eq!(removed, 2, "colleague and friend between a and d");
    assert_eq!(
        steps(g.find_path("a", "c", 3, &[]).await.expect("no path")),
        None
    );
    let (left, _) = g.neighbors("a", 3, &[], 10).await.expect("neighbors");
    assert_eq!(
        left.into_iter().map(|n| n.subject_id).collect::<Vec<_>>(),
        ["b"]
    );
}

/// A path search over a dense graph that cannot find its target stops at the backend's node
/// budget with LimitExceeded naming it, instead of walking millions of relations; a target
/// within reach is still found.
pub async fn graph_path_search_stops_at_its_budget(stores: Stores) {
    let g = &stores.graph;
    // 400 subjects, each related to every other: 79,800 relations, and 159,201 relations
    // to follow at depth 2 alone.
    let n = 400;
    let mut relations = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            relations.push(relation(
                &format!("d{i}"),
                &format!("d{j}"),
                RelationKind::Friend,
                1.0,
            ));
        }
    }
    g.put_relations(relations).await.expect("dense graph");
    let near = g.find_path("d0", "d7", 6, &[]).await.expect("one hop");
    assert_eq!(near.map(|p| p.len()), Some(1));
    match g.find_path("d0", "nowhere", 6, &[]).await {
        Err(StorageError::LimitExceeded(msg)) => assert!(msg.contains("budget"), "{msg}"),
        other => panic!("expected the node budget to stop the search, got {other:?}"),
    }
}
