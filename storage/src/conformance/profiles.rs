//! Profiles: created, replaced as a whole, read by id.

#![allow(clippy::wildcard_imports, reason = "the suite's shared helpers")]

use super::*;

/// Profiles are created, then replaced as a whole; unknown subjects read as `None`.
pub async fn profiles_create_replace_and_get(stores: Stores) {
    let p = &stores.profiles;
    let created = p
        .upsert_profiles(vec![profile("s1", "north"), profile("s2", "south")])
        .await
        .expect("create");
    assert_eq!(created, vec![true, true]);
    let mut changed = profile("s1", "east");
    changed.flags = vec![];
    changed.updated_at = None;
    let created = p
        .upsert_profiles(vec![changed.clone(), profile("s3", "west")])
        .await
        .expect("update");
    assert_eq!(created, vec![false, true]);
    let got = p
        .get_profiles(&["s1".into(), "nobody".into(), "s3".into(), "s2".into()])
        .await
        .expect("get");
    assert_eq!(
        got,
        vec![
            Some(changed),
            None,
            Some(profile("s3", "west")),
            Some(profile("s2", "south"))
        ]
    );
}
