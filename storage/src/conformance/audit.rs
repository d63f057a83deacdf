//! Audit: entries come back whole, in the order recorded, from a given time on.

#![allow(clippy::wildcard_imports, reason = "the suite's shared helpers")]

use super::*;
use crate::AuditEntry;

fn entry(at: i64, actor: &str, action: &str, target: &str) -> AuditEntry {
    AuditEntry {
        at: ts(at),
        actor: actor.into(),
        action: action.into(),
        target: target.into(),
        detail: format!("{{\"by\":\"{actor}\",\"note\":\"ünï\\\"code\"}}"),
    }
}

/// Entries are kept whole and read back in the order recorded (two at the same nanosecond
/// included), from a time on, up to a limit; nothing recorded is nothing read.
pub async fn audit_keeps_entries_in_order(stores: Stores) {
    let a = &stores.audit;
    assert_eq!(a.audit_entries(ts(0), 0).await.expect("empty"), vec![]);
    a.record(vec![]).await.expect("nothing to record");
    let first = entry(T0 + 5, "ops-admin", "PutRule", "rule late v2");
    let same_time = entry(T0 + 5, "ops-admin", "SetRuleStatus", "rule late v3");
    let later = entry(T0 + HOUR, "ingest", "UpsertProfiles", "2 profiles: s1, s2");
    a.record(vec![first.clone(), same_time.clone()])
        .await
        .expect("record");
    a.record(vec![later.clone()]).await.expect("record");
    let all = vec![first.clone(), same_time.clone(), later.clone()];
    assert_eq!(a.audit_entries(ts(0), 0).await.expect("all"), all);
    assert_eq!(a.audit_entries(ts(T0 + 5), 0).await.expect("from"), all);
    assert_eq!(
        a.audit_entries(ts(T0 + 6), 0).await.expect("later"),
        vec![later]
    );
    assert_eq!(
        a.audit_entries(ts(0), 2).await.expect("limited"),
        vec![first, same_time],
        "a limit keeps the oldest"
    );
}
