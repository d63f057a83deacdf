//! The MongoDB protocol through the `mongodb` driver, against the live server in
//! `CREDENCE_TEST_MONGO` (a `mongodb://` URI; FerretDB on the local stack). See docs/STACK.md.
#![cfg(feature = "mongodb")]

#[path = "common/stack.rs"]
mod common;

use common::{TestResult, endpoint, unique};
use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Client, IndexModel};

const BULK: usize = 10_000;

/// A whole number as the server returns it: `$sum` gives Int32 or Int64 by magnitude.
fn int(d: &Document, key: &str) -> i64 {
    match d.get(key) {
        Some(Bson::Int32(v)) => i64::from(*v),
        Some(Bson::Int64(v)) => *v,
        other => panic!("{key}: expected an integer, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongo_unique_index_upsert_find_bulk_and_aggregate() -> TestResult {
    let Some(uri) = endpoint("CREDENCE_TEST_MONGO", "mongo round trip") else {
        return Ok(());
    };
    let client = Client::with_uri_str(&uri).await?;
    let db = client.database(&format!("credence_test_{}", unique()));
    let profiles = db.collection::<Document>("profiles");

    // Unique index on the subject key.
    let index = IndexModel::builder()
        .keys(doc! { "subject": 1 })
        .options(
            IndexOptions::builder()
                .unique(true)
                .name("subject_unique".to_owned())
                .build(),
        )
        .build();
    profiles.create_index(index).await?;

    // Upsert with $set/$inc: the first creates, the second increments.
    for score in [5_i64, 7] {
        profiles
            .update_one(
                doc! { "subject": "s-1" },
                doc! { "$set": { "tier": "watch", "last_score": score }, "$inc": { "events": 1_i64, "total": score } },
            )
            .upsert(true)
            .await?;
    }
    let found = profiles
        .find_one(doc! { "subject": "s-1" })
        .await?
        .expect("upserted document");
    assert_eq!(int(&found, "events"), 2);
    assert_eq!(int(&found, "total"), 12);
    assert_eq!(int(&found, "last_score"), 7);
    assert_eq!(found.get_str("tier")?, "watch");

    // The unique index refuses a second document with the same subject.
    let dup = profiles.insert_one(doc! { "subject": "s-1" }).await;
    let err = dup.expect_err("duplicate subject must be refused by the unique index");
    assert!(
        err.to_string().contains("E11000") || err.to_string().to_lowercase().contains("duplicate"),
        "{err}"
    );

    // insert_many of 10,000 documents (unordered).
    let events = db.collection::<Document>("events");
    let docs: Vec<Document> = (0..BULK)
        .map(|i| {
            doc! {
                "subject": format!("s-{}", i % 100),
                "kind": if i % 3 == 0 { "payment" } else { "login" },
                "score": (i % 10) as i64,
                "seq": i as i64,
            }
        })
        .collect();
    let inserted = events.insert_many(docs).ordered(false).await?;
    assert_eq!(inserted.inserted_ids.len(), BULK);
    assert_eq!(events.count_documents(doc! {}).await?, BULK as u64);

    // Find by the indexed field.
    events
        .create_index(
            IndexModel::builder()
                .keys(doc! { "subject": 1, "seq": 1 })
                .build(),
        )
        .await?;
    let s7: Vec<Document> = events
        .find(doc! { "subject": "s-7" })
        .await?
        .try_collect()
        .await?;
    assert_eq!(s7.len(), BULK / 100);
    assert!(s7.iter().all(|d| d.get_str("subject").ok() == Some("s-7")));

    // Aggregation: $match + $group (+ $sort to make the order deterministic).
    let pipeline = vec![
        doc! { "$match": { "kind": "payment" } },
        doc! { "$group": { "_id": "$score", "n": { "$sum": 1 }, "total": { "$sum": "$score" } } },
        doc! { "$sort": { "_id": 1 } },
    ];
    let groups: Vec<Document> = events.aggregate(pipeline).await?.try_collect().await?;
    // Payments are i % 3 == 0; their score is i % 10: every score 0..9 occurs.
    assert_eq!(groups.len(), 10);
    let mut n_total = 0;
    for g in &groups {
        let score = int(g, "_id");
        let n = int(g, "n");
        let expected = (0..BULK)
            .filter(|i| i % 3 == 0 && (i % 10) as i64 == score)
            .count() as i64;
        assert_eq!(n, expected, "group {score}");
        assert_eq!(int(g, "total"), n * score);
        n_total += n;
    }
    assert_eq!(n_total, (0..BULK).filter(|i| i % 3 == 0).count() as i64);

    db.drop().await?;
    Ok(())
}
