//! Snapshots: exact round trips, claims and fenced commits, listings by the denormalised region.

#![allow(clippy::wildcard_imports, reason = "the suite's shared helpers")]

use super::*;

/// A commit stores the states and the offset together; states restore to the bit (but
/// for the duplicate digests) with their region; a later commit replaces.
pub async fn snapshots_commit_and_restore_exactly(stores: Stores) {
    let s = &stores.snapshots;
    assert_eq!(s.committed_offset(0).await.expect("offset"), 0);
    let a = state("a", 0.1 + 0.2, "C");
    let b = state("b", 1e-300, "E");
    let c = state("c", 1_999.999_999_999_9, "A");
    let at = ts(T0 + 42);
    s.commit(
        0,
        unclaimed(0),
        10,
        changed(vec![a.clone(), b.clone()], "north"),
        at,
    )
    .await
    .expect("commit p0");
    s.commit(1, unclaimed(0), 5, changed(vec![c.clone()], ""), at)
        .await
        .expect("commit p1");
    assert_eq!(s.committed_offset(0).await.expect("offset 0"), 10);
    assert_eq!(s.committed_offset(1).await.expect("offset 1"), 5);
    assert_eq!(s.committed_offset(2).await.expect("offset 2"), 0);

    let got = s
        .get_snapshots(&["c".into(), "zz".into(), "a".into(), "b".into()])
        .await
        .expect("get");
    assert_eq!(got.len(), 4);
    let got_c = got[0].clone().expect("c stored");
    assert_eq!(got_c.state, c);
    assert_eq!((got_c.updated_at, got_c.region.as_str()), (at, ""));
    assert!(got[1].is_none());
    let got_a = got[2].clone().expect("a stored");
    assert_eq!(got_a.state, a.clone());
    assert_eq!(got_a.state.score.to_bits(), (0.1_f64 + 0.2).to_bits());
    assert_eq!(got_a.region, "north");
    assert_eq!(got[3].clone().map(|s| s.state), Some(b));

    // A later commit replaces the state (once, not twice) and moves the offset.
    let mut a2 = a;
    a2.score = 512.125;
    a2.tier = Arc::from("D");
    a2.applied_events = 10;
    let later = ts(T0 + 99);
    s.commit(
        0,
        unclaimed(10),
        20,
        changed(vec![a2.clone()], "east"),
        later,
    )
    .await
    .expect("second commit");
    assert_eq!(s.committed_offset(0).await.expect("offset"), 20);
    let got = s.get_snapshots(&["a".into()]).await.expect("get a");
    assert_eq!(
        got[0].clone().map(|x| (x.state, x.region, x.updated_at)),
        Some((a2, "east".to_owned(), later))
    );
    let listed = s
        .list_subjects(&SubjectFilter::default(), &Page::first(0))
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 3, "one snapshot per subject");
    // An empty commit still moves the offset.
    s.commit(0, unclaimed(20), 25, vec![], later)
        .await
        .expect("empty commit");
    assert_eq!(s.committed_offset(0).await.expect("offset"), 25);
}

/// A claim raises the epoch and keeps the offset; a commit with an older epoch, or starting
/// anywhere but the committed offset, is Fenced and changes nothing.
pub async fn snapshots_claims_fence_old_owners(stores: Stores) {
    let s = &stores.snapshots;
    let first = s.claim(3).await.expect("first claim");
    assert_eq!(first.next_offset, 0);
    s.commit(
        3,
        first,
        4,
        changed(vec![state("f", 1.0, "C")], "north"),
        ts(T0),
    )
    .await
    .expect("owner commits");
    let second = s.claim(3).await.expect("second claim");
    assert!(second.epoch > first.epoch, "{first:?} then {second:?}");
    assert_eq!(second.next_offset, 4);
    assert_eq!(s.position(3).await.expect("position"), second);
    let old = Claim {
        epoch: first.epoch,
        next_offset: 4,
    };
    let late = s
        .commit(
            3,
            old,
            9,
            changed(vec![state("f", 2.0, "A")], "south"),
            ts(T0 + 1),
        )
        .await;
    match late {
        Err(StorageError::Fenced(msg)) => assert!(msg.contains("partition 3"), "{msg}"),
        other => panic!("an old owner's commit must be Fenced, got {other:?}"),
    }
    let wrong_start = Claim {
        epoch: second.epoch,
        next_offset: 2,
    };
    let gap = s.commit(3, wrong_start, 9, vec![], ts(T0 + 1)).await;
    assert!(matches!(gap, Err(StorageError::Fenced(_))), "{gap:?}");
    assert_eq!(s.committed_offset(3).await.expect("offset"), 4);
    let f = s.get_snapshots(&["f".into()]).await.expect("get")[0]
        .clone()
        .expect("f stored");
    assert_eq!((f.state.score, f.region.as_str()), (1.0, "north"));
    // The new owner goes on.
    s.commit(3, second, 6, vec![], ts(T0 + 2))
        .await
        .expect("new owner commits");
    assert_eq!(
        s.position(3).await.expect("position"),
        Claim {
            epoch: second.epoch,
            next_offset: 6
        }
    );
}

/// Subjects list in id order with region (the snapshot's own), tier and score filters and
/// keyset pages; tier counts follow the same region filter.
pub async fn snapshots_list_filter_page_and_count_tiers(stores: Stores) {
    let states = [
        (state("s4", 1200.0, "B"), "north"),
        (state("s1", 500.0, "E"), "north"),
        (state("s3", 950.0, "C"), "north"),
        (state("s2", 1150.0, "B"), "south"),
        (state("s5", 1000.0, "C"), ""), // no profile
    ]
    .into_iter()
    .map(|(state, region)| ChangedState {
        state,
        region: region.into(),
    })
    .collect();
    stores
        .snapshots
        .commit(0, unclaimed(0), 5, states, ts(T0))
        .await
        .expect("commit");
    let list = |filter: SubjectFilter, page: Page| {
        let snapshots = stores.snapshots.clone();
        async move {
            let paged = snapshots.list_subjects(&filter, &page).await.expect("list");
            let ids: Vec<(String, String)> = paged
                .items
                .into_iter()
                .map(|s| (s.state.subject_id, s.region))
                .collect();
            (ids, paged.next_token)
        }
    };
    let id = |s: &str, r: &str| (s.to_owned(), r.to_owned());
    let (all, token) = list(SubjectFilter::default(), Page::first(0)).await;
    assert_eq!(
        all,
        vec![
            id("s1", "north"),
            id("s2", "south"),
            id("s3", "north"),
            id("s4", "north"),
            id("s5", "")
        ]
    );
    assert!(token.is_empty());

    let north = SubjectFilter {
        region: "north".into(),
        ..SubjectFilter::default()
    };
    let (first, token) = list(north.clone(), Page::first(2)).await;
    assert_eq!(first, vec![id("s1", "north"), id("s3", "north")]);
    assert!(!token.is_empty(), "a second page exists");
    let (second, token) = list(north.clone(), Page { size: 2, token }).await;
    assert_eq!(second, vec![id("s4", "north")]);
    assert!(token.is_empty());

    let tier_b = SubjectFilter {
        tier: "B".into(),
        ..SubjectFilter::default()
    };
    assert_eq!(
        list(tier_b, Page::first(0)).await.0,
        vec![id("s2", "south"), id("s4", "north")]
    );
    let scores = SubjectFilter {
        min_score: Some(950.0),
        max_score: Some(1150.0),
        ..SubjectFilter::default()
    };
    assert_eq!(
        list(scores, Page::first(0)).await.0,
        vec![id("s2", "south"), id("s3", "north"), id("s5", "")]
    );
    for filter in [SubjectFilter::default(), north] {
        let full = stores
            .snapshots
            .list_subjects(&filter, &Page::first(0))
            .await
            .expect("full listing")
            .items;
        let snapshots = stores.snapshots.clone();
        pages_add_up("subjects", &full, |page| {
            let snapshots = snapshots.clone();
            let filter = filter.clone();
            async move { snapshots.list_subjects(&filter, &page).await }
        })
        .await;
    }

    let counts = |v: Vec<(String, u64)>| v.into_iter().collect::<BTreeMap<_, _>>();
    assert_eq!(
        counts(stores.snapshots.tier_counts("").await.expect("tiers")),
        BTreeMap::from([("B".into(), 2), ("C".into(), 2), ("E".into(), 1)])
    );
    assert_eq!(
        counts(
            stores
                .snapshots
                .tier_counts("north")
                .await
                .expect("tiers north")
        ),
        BTreeMap::from([("B".into(), 1), ("C".into(), 1), ("E".into(), 1)])
    );
}
