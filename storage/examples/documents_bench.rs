//! The document roles on MongoDB's protocol (`credence_storage::mongo`) against the driver's
//! own paths on the same server, measured in the same run:
//!
//! - writing new profiles: `upsert_profiles` of subjects not stored yet against a plain
//!   unordered `insert_many` of documents of the same shape into a collection of their own;
//! - replacing stored profiles: `upsert_profiles` of subjects stored already (the insert
//!   refuses them, then one `update` command per 1,000 replaces them);
//! - reading a micro-batch's profiles: `get_profiles` of 500 stored subjects (`find_one` by
//!   `_id`, 16 in flight) against one `$in` query for the same 500.
//!
//! A benchmark, not a test: it prints a table and asserts only that both reads agree. It
//! talks to the server in `CREDENCE_TEST_MONGO` only:
//!
//! ```text
//! deploy/local/stack.sh up ferretdb && eval "$(deploy/local/stack.sh env)"
//! cargo run --release -p credence-storage --features mongodb --example documents_bench
//! ```

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use credence_storage::mongo::{MongoDocuments, MongoOptions};
use credence_storage::{Profiles, SubjectProfile};
use futures::TryStreamExt as _;
use mongodb::Client;
use mongodb::bson::{Document, doc};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Profiles written.
const SUBJECTS: usize = 50_000;
/// Profiles per call.
const BATCH: usize = 5_000;
/// Stored profiles replaced.
const REPLACED: usize = 5_000;
/// Profiles read per call, as a micro-batch reads them, and the number of calls.
const READ: usize = 500;
const READS: usize = 10;

fn profile(i: usize, region: &str) -> SubjectProfile {
    SubjectProfile {
        subject_id: format!("s{i:07}"),
        display_name: format!("Subject {i}"),
        birth_year: 1950 + (i % 60) as i32,
        region: region.into(),
        district: format!("d{}", i % 50),
        occupation: "clerk".into(),
        flags: vec!["student".into()],
        consent: [("marketing".to_owned(), i % 2 == 0)].into(),
        attributes: [("segment".to_owned(), "b".to_owned())].into(),
        updated_at: None,
    }
}

fn row(what: &str, n: usize, t: Duration, unit: &str) {
    println!(
        "| {what} | {n} | {:.2} | {:.0} {unit}/s |",
        t.as_secs_f64(),
        n as f64 / t.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let Ok(uri) = std::env::var("CREDENCE_TEST_MONGO") else {
        return Err("CREDENCE_TEST_MONGO is unset: eval \"$(deploy/local/stack.sh env)\"".into());
    };
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() % 1_000_000_000);
    let database = format!("bench{run}");
    println!("| MongoDB protocol at {uri} | count | seconds | rate |");
    println!("|---|---:|---:|---:|");

    // The driver's bulk path: the same documents, plain inserts.
    let client = Client::with_uri_str(&uri).await?;
    let raw = client.database(&database).collection::<Document>("raw");
    let docs: Vec<Document> = (0..SUBJECTS)
        .map(|i| {
            let p = profile(i, "north");
            doc! {
                "_id": p.subject_id, "display_name": p.display_name, "birth_year": p.birth_year,
                "region": p.region, "district": p.district, "occupation": p.occupation,
                "flags": p.flags, "consent": [{ "purpose": "marketing", "granted": i % 2 == 0 }],
                "attributes": [{ "name": "segment", "value": "b" }], "updated_at": null,
            }
        })
        .collect();
    let t = Instant::now();
    for chunk in docs.chunks(BATCH) {
        raw.insert_many(chunk).ordered(false).await?;
    }
    row(
        &format!("bulk path: insert_many of {BATCH}, unordered"),
        SUBJECTS,
        t.elapsed(),
        "docs",
    );

    let mut options = MongoOptions::new(&uri);
    options.database = database;
    options.timeout = Duration::from_secs(300);
    let documents = MongoDocuments::open(options).await?;
    let t = Instant::now();
    for start in (0..SUBJECTS).step_by(BATCH) {
        let batch = (start..start + BATCH)
            .map(|i| profile(i, "north"))
            .collect();
        documents.upsert_profiles(batch).await?;
    }
    row(
        &format!("upsert_profiles of {BATCH} new subjects"),
        SUBJECTS,
        t.elapsed(),
        "profiles",
    );
    let t = Instant::now();
    for start in (0..REPLACED).step_by(BATCH) {
        let batch = (start..start + BATCH)
            .map(|i| profile(i, "south"))
            .collect();
        documents.upsert_profiles(batch).await?;
    }
    row(
        &format!("upsert_profiles of {BATCH} stored subjects (replaced)"),
        REPLACED,
        t.elapsed(),
        "profiles",
    );

    let batches: Vec<Vec<String>> = (0..READS)
        .map(|b| {
            (0..READ)
                .map(|i| format!("s{:07}", (b * READ + i) * 97 % SUBJECTS))
                .collect()
        })
        .collect();
    let t = Instant::now();
    let mut together = Vec::new();
    for ids in &batches {
        together.push(documents.get_profiles(ids).await?);
    }
    row(
        &format!("get_profiles of {READ} stored subjects (find_one by _id, 16 in flight)"),
        READ * READS,
        t.elapsed(),
        "profiles",
    );
    let t = Instant::now();
    let profiles = client
        .database(&format!("bench{run}"))
        .collection::<Document>("profiles");
    for (ids, expected) in batches.iter().zip(&together) {
        let found: Vec<Document> = profiles
            .find(doc! { "_id": { "$in": ids } })
            .await?
            .try_collect()
            .await?;
        assert_eq!(found.len(), expected.iter().filter(|p| p.is_some()).count());
    }
    row(
        &format!("one $in query on _id for the same {READ}"),
        READ * READS,
        t.elapsed(),
        "profiles",
    );
    Ok(())
}
