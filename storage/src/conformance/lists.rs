//! Lists: one entry per (subject, kind), filters, expiry, keyset pages.

#![allow(clippy::wildcard_imports, reason = "the suite's shared helpers")]

use super::*;

fn entry(subject: &str, kind: ListKind, expires: Option<i64>) -> ListEntry {
    ListEntry {
        subject_id: subject.into(),
        kind,
        reason: format!("{subject} {kind:?}"),
        expires_at: expires.map(ts),
        created_at: Some(ts(T0)),
    }
}

/// One entry per (subject, kind); listings filter by kind, subject and expiry and page.
pub async fn lists_filter_expire_and_page(stores: Stores) {
    use ListKind::{Allow, Block};
    let l = &stores.lists;
    let now = T0 + 10 * HOUR;
    let expired = entry("s1", Block, Some(now));
    let allow = entry("s1", Allow, None);
    let live = entry("s2", Block, Some(now + 1));
    assert!(l.put_entry(expired.clone()).await.expect("put"));
    assert!(l.put_entry(allow.clone()).await.expect("put"));
    assert!(l.put_entry(entry("s2", Block, None)).await.expect("put"));
    assert!(
        !l.put_entry(live.clone()).await.expect("replace"),
        "replacing is not new"
    );

    let list = |filter: ListFilter, page: Page| {
        let l = l.clone();
        async move { l.list_entries(&filter, &page).await.expect("list") }
    };
    let at_now = ListFilter {
        now: Some(ts(now)),
        ..ListFilter::default()
    };
    assert_eq!(
        list(at_now.clone(), Page::first(0)).await.items,
        vec![allow.clone(), live.clone()]
    );
    let everything = ListFilter {
        include_expired: true,
        ..at_now.clone()
    };
    let first = list(everything.clone(), Page::first(2)).await;
    assert_eq!(
        first.items,
        vec![expired.clone(), allow.clone()],
        "subject then kind"
    );
    let second = list(
        everything.clone(),
        Page {
            size: 2,
            token: first.next_token,
        },
    )
    .await;
    assert_eq!(second.items, vec![live.clone()]);
    assert!(second.next_token.is_empty());
    let blocks = ListFilter {
        kind: Some(Block),
        ..everything.clone()
    };
    assert_eq!(
        list(blocks, Page::first(0)).await.items,
        vec![expired.clone(), live.clone()]
    );
    let s2 = ListFilter {
        subject_id: "s2".into(),
        ..at_now
    };
    assert_eq!(list(s2, Page::first(0)).await.items, vec![live.clone()]);

    let full = list(everything.clone(), Page::first(0)).await.items;
    pages_add_up("list entries", &full, |page| {
        let l = l.clone();
        let filter = everything.clone();
        async move { l.list_entries(&filter, &page).await }
    })
    .await;

    let for_subjects = l
        .entries_for(&["s1".into(), "nobody".into(), "s2".into()])
        .await
        .expect("entries for");
    assert_eq!(for_subjects, vec![vec![expired, allow], vec![], vec![live]]);
    assert!(l.remove_entry("s1", Block).await.expect("remove"));
    assert!(!l.remove_entry("s1", Block).await.expect("remove again"));
    assert_eq!(
        l.entries_for(&["s1".into()]).await.expect("after remove")[0].len(),
        1
    );
}
