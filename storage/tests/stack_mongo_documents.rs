//! The document roles on the MongoDB protocol (`credence_storage::mongo`) against the live
//! server in `CREDENCE_TEST_MONGO` (FerretDB on the local stack): the profile, rule, list
//! and audit conformance suites, then what only a shared store has (two nodes writing the
//! same rule, replacements in bulk, a server that does not answer).
#![cfg(feature = "mongodb")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "common/stack.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{endpoint, unique};
use credence_scorer::Rule;
use credence_storage::mongo::{MongoDocuments, MongoOptions};
use credence_storage::{Profiles, Rules, StorageError, Stores, SubjectProfile};

/// Options with a database of their own, so tests never see each other's documents.
fn options(uri: &str) -> MongoOptions {
    let mut options = MongoOptions::new(uri);
    options.database = format!("credence_test_{}", unique());
    options
}

/// Embedded stores with the document roles swapped for MongoDB in a fresh database; `None`
/// (skipped, loudly) without a server.
async fn mongo_stores() -> Option<Stores> {
    let uri = endpoint("CREDENCE_TEST_MONGO", "mongodb document conformance")?;
    let mut stores = common::embedded_stores();
    Arc::new(MongoDocuments::open(options(&uri)).await.unwrap()).install(&mut stores);
    Some(stores)
}

credence_storage::profiles_conformance_tests!(match mongo_stores().await {
    Some(stores) => stores,
    None => return,
});
credence_storage::rules_conformance_tests!(match mongo_stores().await {
    Some(stores) => stores,
    None => return,
});
credence_storage::lists_conformance_tests!(match mongo_stores().await {
    Some(stores) => stores,
    None => return,
});
credence_storage::audit_conformance_tests!(match mongo_stores().await {
    Some(stores) => stores,
    None => return,
});

/// Two nodes (two clients on one database) putting versions of one rule at once: every
/// write gets a version of its own, and every version is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rule_writers_take_distinct_versions() {
    let Some(uri) = endpoint("CREDENCE_TEST_MONGO", "mongodb concurrent rule writers") else {
        return;
    };
    let options = options(&uri);
    let one = Arc::new(MongoDocuments::open(options.clone()).await.unwrap());
    let two = Arc::new(MongoDocuments::open(options).await.unwrap());
    let writes = (0..8).map(|i| {
        let rules = if i % 2 == 0 { one.clone() } else { two.clone() };
        tokio::spawn(async move {
            let mut rule = Rule::new("late", "financial", -f64::from(i));
            rule.version = 0;
            rules.put_rule(rule).await.unwrap().version
        })
    });
    let mut versions: Vec<u32> = futures::future::join_all(writes)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=8).collect::<Vec<u32>>());
    assert_eq!(one.list_rules(true).await.unwrap().len(), 8);
    assert_eq!(two.rule_set_version().await.unwrap(), 8);
}

/// More profiles than one `update` command holds.
const N: usize = 2_500;

fn profile(subject: usize, region: &str) -> SubjectProfile {
    SubjectProfile {
        subject_id: format!("s{subject:05}"),
        display_name: format!("Subject {subject}"),
        birth_year: 1970 + (subject % 40) as i32,
        region: region.into(),
        district: format!("d{}", subject % 7),
        occupation: "clerk".into(),
        flags: vec!["student".into()],
        consent: [("marketing".to_owned(), subject % 2 == 0)].into(),
        attributes: [("a.b".to_owned(), "$x".to_owned())].into(),
        updated_at: None,
    }
}

/// More profiles than one `update` command holds, replaced in one call with a subject named
/// twice: every replacement lands, the last of the twice-named wins, and only the
/// genuinely new subjects are reported new. Keys that MongoDB field names could not hold
/// (dots, `$`) round-trip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_replace_in_bulk_and_keep_call_order() {
    let Some(uri) = endpoint("CREDENCE_TEST_MONGO", "mongodb bulk profiles") else {
        return;
    };
    let documents = MongoDocuments::open(options(&uri)).await.unwrap();
    let first: Vec<SubjectProfile> = (0..N).map(|i| profile(i, "north")).collect();
    assert!(
        documents
            .upsert_profiles(first)
            .await
            .unwrap()
            .iter()
            .all(|&new| new)
    );

    let mut second: Vec<SubjectProfile> = (0..N + 2).map(|i| profile(i, "south")).collect();
    second.push(profile(3, "east"));
    let created = documents.upsert_profiles(second).await.unwrap();
    let mut expected = vec![false; N];
    expected.extend([true, true, false]);
    assert_eq!(created, expected);

    let ids: Vec<String> = [0, 3, N - 1, N + 1, N + 7]
        .iter()
        .map(|i| format!("s{i:05}"))
        .collect();
    let got = documents.get_profiles(&ids).await.unwrap();
    let regions: Vec<Option<&str>> = got
        .iter()
        .map(|p| p.as_ref().map(|p| p.region.as_str()))
        .collect();
    assert_eq!(
        regions,
        vec![
            Some("south"),
            Some("east"),
            Some("south"),
            Some("south"),
            None
        ]
    );
    assert_eq!(got[0], Some(profile(0, "south")));
}

/// A server that does not answer is refused within the timeout, as unavailable, naming it
/// (and never its password).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_unavailable_within_the_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut options = MongoOptions::new(&format!("mongodb://ops:s3cret@127.0.0.1:{port}/"));
    options.timeout = Duration::from_millis(500);
    let started = Instant::now();
    let Err(err) = MongoDocuments::open(options).await else {
        panic!("opened a server that is not there");
    };
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}
