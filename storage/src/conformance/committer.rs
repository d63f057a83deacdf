//! The committer: every role of every batch, fenced, idempotent.

#![allow(clippy::wildcard_imports, reason = "the suite's shared helpers")]

use super::*;

/// A batch of `partition` over `offsets`, one event, point and change per offset, and the
/// subject's state, committed at epoch 0.
fn batch(partition: u32, subject: &str, offsets: std::ops::Range<u64>) -> crate::PartitionCommit {
    let mut b = crate::PartitionCommit {
        partition,
        epoch: 0,
        first_offset: offsets.start,
        next_offset: offsets.end,
        ..Default::default()
    };
    for offset in offsets {
        #[allow(clippy::cast_possible_wrap, reason = "small test offsets")]
        let at = T0 + offset as i64 * HOUR;
        let mut e = event(&format!("{subject}-{offset}"), subject, "financial", at);
        e.received_at = Some(ts(at));
        b.events.push(archived(e, partition, offset, true));
        let mut p = point(subject, "financial", "north", at, -5.0, 1, offset);
        p.partition = partition;
        p.event_id = format!("{subject}-{offset}");
        b.points.push(p);
        b.changes.push((offset, change(subject, "late", at, -5.0)));
        b.changes.push((offset, change(subject, "again", at, -1.0)));
    }
    b.states = changed(vec![state(subject, 995.0, "C")], "north");
    b
}

/// What the reads show of a subject: (events, points, changes, snapshot score).
async fn seen(stores: &Stores, subject: &str) -> (usize, usize, usize, Option<f64>) {
    let events = stores
        .archive
        .list_events(
            &crate::EventFilter {
                subject_id: subject.into(),
                ..Default::default()
            },
            &Page::first(100),
        )
        .await
        .expect("events");
    let history = stores
        .series
        .score_history(subject, crate::TimeRange::default(), &Page::first(100))
        .await
        .expect("history");
    let changes = stores
        .series
        .score_changes(subject, crate::TimeRange::default(), &Page::first(100))
        .await
        .expect("changes");
    let snapshot = stores
        .snapshots
        .get_snapshots(&[subject.to_owned()])
        .await
        .expect("snapshot")
        .pop()
        .flatten();
    (
        events.items.len(),
        history.items.len(),
        changes.items.len(),
        snapshot.map(|s| s.state.score),
    )
}

/// A committer writes every role of every batch, moves each partition's offset, and refuses
/// two batches of one partition in one call.
pub async fn committer_writes_every_role_then_the_offset(stores: Stores) {
    let committer = &stores.committer;
    committer
        .commit(vec![batch(0, "cm-a", 0..3), batch(1, "cm-b", 0..2)], ts(T0))
        .await
        .expect("commit two partitions");
    assert_eq!(
        stores.snapshots.committed_offset(0).await.expect("offset"),
        3
    );
    assert_eq!(
        stores.snapshots.committed_offset(1).await.expect("offset"),
        2
    );
    assert_eq!(seen(&stores, "cm-a").await, (3, 3, 6, Some(995.0)));
    assert_eq!(seen(&stores, "cm-b").await, (2, 2, 4, Some(995.0)));
    // Changes keep the engine's order within an event (not alphabetical).
    let changes = stores
        .series
        .score_changes("cm-a", crate::TimeRange::default(), &Page::first(2))
        .await
        .expect("changes");
    let rules: Vec<&str> = changes.items.iter().map(|c| &*c.rule_id).collect();
    assert_eq!(rules, ["late", "again"]);
    // A later batch continues the partition.
    committer
        .commit(vec![batch(0, "cm-a", 3..4)], ts(T0 + HOUR))
        .await
        .expect("commit again");
    assert_eq!(
        stores.snapshots.committed_offset(0).await.expect("offset"),
        4
    );
    let err = committer
        .commit(vec![batch(2, "cm-c", 0..1), batch(2, "cm-d", 1..2)], ts(T0))
        .await
        .expect_err("two batches of partition 2");
    assert!(err.to_string().contains("one batch per partition"), "{err}");
    assert_eq!(
        stores.snapshots.committed_offset(2).await.expect("offset"),
        0
    );
}

/// An old owner's late commit (its epoch superseded by a claim) is Fenced and changes
/// nothing: not the snapshots, not the offset, not the archive or series as reads see them;
/// nor does a batch that does not start at the committed offset.
pub async fn committer_fences_an_old_owner(stores: Stores) {
    let committer = &stores.committer;
    let old = stores.snapshots.claim(0).await.expect("old owner claims");
    let mut first = batch(0, "fe-a", 0..2);
    first.epoch = old.epoch;
    committer
        .commit(vec![first], ts(T0))
        .await
        .expect("old owner commits");
    let new = stores.snapshots.claim(0).await.expect("new owner claims");
    assert_eq!(new.next_offset, 2);
    let before = seen(&stores, "fe-a").await;

    let mut late = batch(0, "fe-a", 2..5);
    late.epoch = old.epoch;
    late.states = changed(vec![state("fe-a", 1.0, "E")], "south");
    // With a batch of another partition that is in order: nothing of the call is written.
    let mut other = batch(1, "fe-b", 0..1);
    other.epoch = 0;
    match committer.commit(vec![late, other], ts(T0 + 1)).await {
        Err(StorageError::Fenced(msg)) => {
            assert!(msg.contains("partition 0"), "{msg}");
        }
        other => panic!("a late commit of an old owner must be Fenced, got {other:?}"),
    }
    assert_eq!(
        seen(&stores, "fe-a").await,
        before,
        "the late commit changed reads"
    );
    assert_eq!(
        stores.snapshots.position(0).await.expect("position"),
        new,
        "the late commit moved the partition"
    );

    let mut gap = batch(0, "fe-a", 3..5);
    gap.epoch = new.epoch;
    let refused = committer.commit(vec![gap], ts(T0 + 1)).await;
    assert!(
        matches!(refused, Err(StorageError::Fenced(_))),
        "{refused:?}"
    );
    assert_eq!(seen(&stores, "fe-a").await, before);

    let mut next = batch(0, "fe-a", 2..5);
    next.epoch = new.epoch;
    committer
        .commit(vec![next], ts(T0 + 2))
        .await
        .expect("the new owner goes on");
    assert_eq!(seen(&stores, "fe-a").await, (5, 5, 10, Some(995.0)));
}

/// Rows already written by an earlier attempt at the same batch (a crash between role
/// writes, then a retry) are not written twice: one copy of every archive row, point and
/// change.
pub async fn committer_rewrites_nothing_twice(stores: Stores) {
    let b = batch(0, "id-a", 0..3);
    // The first attempt got as far as the archive and series, not the snapshots.
    stores
        .archive
        .append_events(b.events.clone())
        .await
        .expect("archive");
    stores
        .series
        .append_scores(0, b.points.clone(), b.changes.clone())
        .await
        .expect("series");
    stores
        .committer
        .commit(vec![b], ts(T0))
        .await
        .expect("the retry commits");
    assert_eq!(seen(&stores, "id-a").await, (3, 3, 6, Some(995.0)));
    assert_eq!(
        stores.snapshots.committed_offset(0).await.expect("offset"),
        3
    );
}

/// A committer parks dead letters with its batch, once per (partition, offset) however
/// often they are written, and analytics reads them from the `dead_letters` view.
pub async fn committer_parks_dead_letters_once(stores: Stores) {
    let letter = crate::DeadLetter {
        partition: 1,
        offset: 4,
        reason: "not an event: invalid wire type".into(),
        payload: vec![0xff, 0x00, 0x07],
    };
    let claim = stores.snapshots.claim(1).await.expect("claim");
    let batch = crate::PartitionCommit {
        partition: 1,
        epoch: claim.epoch,
        first_offset: 0,
        next_offset: 5,
        dead_letters: vec![letter.clone()],
        ..Default::default()
    };
    stores
        .committer
        .commit(vec![batch], ts(T0))
        .await
        .expect("commit with a dead letter");
    // Parked again (a retry after a crash between role writes) changes nothing.
    stores
        .archive
        .park_dead_letters(vec![letter], ts(T0 + HOUR))
        .await
        .expect("park again");
    assert_eq!(
        stores.snapshots.committed_offset(1).await.expect("offset"),
        5
    );
    let result = stores
        .analytics
        .run_sql(
            "SELECT bus_partition, bus_offset, reason, payload_bytes FROM dead_letters",
            super::analytics::limits(10, Duration::from_secs(30)),
        )
        .await
        .expect("dead letters view");
    let (_, rows) = super::analytics::decode(&result.ipc);
    assert_eq!(
        rows,
        vec![vec![
            "1".to_owned(),
            "4".to_owned(),
            "not an event: invalid wire type".to_owned(),
            "3".to_owned()
        ]]
    );
}
