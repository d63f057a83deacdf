//! The archive: exact round trips, filters, keyset pages, idempotent appends.

#![allow(clippy::wildcard_imports, reason = "the suite's shared helpers")]

use super::*;

/// Archived events round-trip exactly, list in event-time order with filters and keyset
/// pages, and appending the same events again adds nothing.
pub async fn archive_round_trips_filters_pages_and_dedups(stores: Stores) {
    let a = &stores.archive;
    let mut bare = event("e0", "s2", "social", T0 + 5);
    bare.location = None;
    bare.payload = None;
    bare.received_at = None;
    bare.event_subtype = String::new();
    let p0 = vec![
        archived(
            event("e3", "s1", "financial", T0 + 3 * HOUR + 1),
            0,
            0,
            true,
        ),
        archived(event("e1", "s1", "financial", T0 + HOUR), 0, 1, true),
        // An empty payload is not an absent one (`bare` below has none).
        archived(
            ReceivedEvent {
                payload: Some(Payload::new()),
                ..event("e2", "s1", "social", T0 + HOUR)
            },
            0,
            2,
            false,
        ),
        archived(event("e4", "s1", "financial", T0 + 4 * HOUR), 0, 3, true),
    ];
    a.append_events(p0.clone()).await.expect("append p0");
    a.append_events(vec![archived(bare.clone(), 1, 0, true)])
        .await
        .expect("append p1");

    let all = a
        .list_events(&EventFilter::default(), &Page::first(0))
        .await
        .expect("list");
    assert_eq!(
        all.items,
        vec![
            archived(bare, 1, 0, true),
            p0[1].clone(),
            p0[2].clone(),
            p0[0].clone(),
            p0[3].clone()
        ],
        "exact round trip, ordered by occurred_at then event id"
    );

    let ids = |items: Vec<ArchivedEvent>| {
        items
            .into_iter()
            .map(|e| e.event.event_id)
            .collect::<Vec<_>>()
    };
    let filter = EventFilter {
        subject_id: "s1".into(),
        event_type: "financial".into(),
        from: Some(ts(T0 + HOUR)),
        to: Some(ts(T0 + 4 * HOUR)),
    };
    let page = a
        .list_events(&filter, &Page::first(1))
        .await
        .expect("filtered");
    assert_eq!(ids(page.items), vec!["e1"]);
    let page = a
        .list_events(
            &filter,
            &Page {
                size: 1,
                token: page.next_token,
            },
        )
        .await
        .expect("page 2");
    assert_eq!(ids(page.items), vec!["e3"], "to is exclusive");
    assert!(page.next_token.is_empty());

    // A retried or re-scored batch: one copy of every row, the first one kept.
    let mut again = p0.clone();
    again[1].applied = false;
    a.append_events(again).await.expect("append p0 again");
    let after = a
        .list_events(&EventFilter::default(), &Page::first(0))
        .await
        .expect("list");
    assert_eq!(
        after.items, all.items,
        "appending again changed the archive"
    );
    // A later offset of the partition still goes in.
    a.append_events(vec![archived(event("e5", "s3", "social", T0), 0, 4, true)])
        .await
        .expect("append p0 offset 4");
    let full = a
        .list_events(&EventFilter::default(), &Page::first(0))
        .await
        .expect("list")
        .items;
    assert_eq!(ids(full.clone()), vec!["e5", "e0", "e1", "e2", "e3", "e4"]);
    pages_add_up("events", &full, |page| {
        let a = a.clone();
        async move { a.list_events(&EventFilter::default(), &page).await }
    })
    .await;
}
