//! Bulk write rates of the five stores of the real stack, each through its own client crate.
//!
//! A benchmark, not a test: it measures and prints, it asserts only that the work was done.
//! Every loop is bounded by a count and by `STACK_BENCH_SECONDS` (default 20) per store, and
//! it talks only to the loopback endpoints that `deploy/local/stack.sh env` prints:
//!
//! ```text
//! deploy/local/stack.sh up && eval "$(deploy/local/stack.sh env)"
//! cargo run --release -p credence-storage --features stack --example stack_bench
//! ```
//!
//! A store whose `CREDENCE_TEST_*` variable is unset is skipped (said on stderr).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use futures::StreamExt;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn budget() -> Duration {
    let s = std::env::var("STACK_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(s)
}

fn env(var: &str) -> Option<String> {
    let v = std::env::var(var).ok().filter(|v| !v.is_empty());
    if v.is_none() {
        eprintln!("skipped: {var} is unset");
    }
    v
}

fn run_id() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A synthetic ~300-byte JSON event.
fn event(i: usize) -> String {
    let e = format!(
        r#"{{"event_id":"ev-{i:012}","subject":"subject-{:06}","kind":"{}","source":"loadgen","occurred_at":"2026-11-21T10:{:02}:{:02}Z","amount":{},"currency":"EUR","country":"DE","device":"dev-{:08x}","ip":"203.0.113.{}","session":"sess-{:016x}","attrs":{{"channel":"web","risk":"low"}}}}"#,
        i % 50_000,
        ["login", "payment", "transfer", "signup"][i % 4],
        (i / 60) % 60,
        i % 60,
        (i * 37) % 10_000,
        i * 2_654_435_761 % 0xffff_ffff,
        i % 250,
        (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
    );
    debug_assert!(e.len() > 250);
    e
}

struct Figure {
    store: &'static str,
    what: String,
    n: usize,
    secs: f64,
    unit: &'static str,
}

impl Figure {
    fn new(
        store: &'static str,
        what: impl Into<String>,
        n: usize,
        t: Instant,
        unit: &'static str,
    ) -> Self {
        let f = Figure {
            store,
            what: what.into(),
            n,
            secs: t.elapsed().as_secs_f64(),
            unit,
        };
        eprintln!(
            "{}: {} -> {} {} in {:.2} s = {:.0} {}/s",
            f.store,
            f.what,
            f.n,
            f.unit,
            f.secs,
            f.rate(),
            f.unit
        );
        f
    }
    fn rate(&self) -> f64 {
        self.n as f64 / self.secs
    }
}

async fn kafka(brokers: &str) -> Result<Vec<Figure>, BoxError> {
    use rdkafka::ClientConfig;
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::{Offset, TopicPartitionList};

    const N: usize = 300_000;
    let topic = format!("credence-bench-{}", run_id());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    admin
        .create_topics(
            &[NewTopic::new(&topic, 6, TopicReplication::Fixed(1))],
            &opts,
        )
        .await?;
    let payloads: Vec<String> = (0..N).map(event).collect();
    let bytes = payloads.iter().map(String::len).sum::<usize>() / N;

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "10")
        .set("batch.size", "262144")
        .set("compression.type", "lz4")
        .create()?;
    let t = Instant::now();
    let deadline = t + budget();
    let mut sent = 0;
    for (i, p) in payloads.iter().enumerate() {
        if Instant::now() > deadline {
            break;
        }
        let key = format!("subject-{:06}", i % 50_000);
        let mut record = BaseRecord::to(&topic).key(&key).payload(p);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        sent += 1;
    }
    producer.flush(Duration::from_secs(60))?;
    let produce = Figure::new(
        "Kafka",
        format!("produce, idempotent, acks=all, lz4, {bytes}-byte JSON"),
        sent,
        t,
        "msgs",
    );

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-raw"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..6 {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let t = Instant::now();
    let deadline = t + budget();
    let mut got = 0;
    while got < sent && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            m?;
            got += 1;
        }
    }
    let consume = Figure::new(
        "Kafka",
        "raw consume (assigned partitions, no commits)",
        got,
        t,
        "msgs",
    );
    admin.delete_topics(&[&topic], &opts).await?;
    Ok(vec![produce, consume])
}

async fn mongo(uri: &str) -> Result<Vec<Figure>, BoxError> {
    use mongodb::bson::{Document, doc};
    use mongodb::{Client, IndexModel, options::IndexOptions};

    const N: usize = 100_000;
    const BATCH: usize = 5_000;
    const UPSERTS: usize = 50_000;
    const BATCH_UPS: usize = 1_000;
    let client = Client::with_uri_str(uri).await?;
    let db = client.database(&format!("credence_bench_{}", run_id()));
    let events = db.collection::<Document>("events");
    let t = Instant::now();
    let deadline = t + budget();
    let mut n = 0;
    while n < N && Instant::now() < deadline {
        let docs: Vec<Document> = (n..n + BATCH)
            .map(|i| doc! { "subject": format!("subject-{:06}", i % 50_000), "seq": i as i64, "body": event(i) })
            .collect();
        n += events
            .insert_many(docs)
            .ordered(false)
            .await?
            .inserted_ids
            .len();
    }
    let ins = Figure::new(
        "MongoDB protocol",
        format!("insert_many, unordered, {BATCH} per call"),
        n,
        t,
        "docs",
    );

    // Batched upserts: one `update` command carrying BATCH_UPS statements (the per-collection
    // batch every server speaks; the driver's Client::bulk_write needs MongoDB 8). Keyed by
    // `_id`: FerretDB's SQLite backend pushes down only `{_id: <string>}` filters.
    let t = Instant::now();
    let deadline = t + budget();
    let mut done = 0;
    while done < UPSERTS && Instant::now() < deadline {
        let updates: Vec<Document> = (done..done + BATCH_UPS)
            .map(|i| {
                doc! {
                    "q": { "_id": format!("subject-{:06}", i % 5_000) },
                    "u": { "$set": { "last": i as i64 }, "$inc": { "events": 1_i64 } },
                    "upsert": true,
                }
            })
            .collect();
        let reply = db
            .run_command(doc! { "update": "profiles", "updates": updates, "ordered": false })
            .await?;
        assert!(
            reply.get_document("writeErrors").is_err(),
            "write errors: {reply}"
        );
        done += BATCH_UPS;
    }
    let batched = Figure::new(
        "MongoDB protocol",
        format!("batched upserts by _id ($set+$inc, {BATCH_UPS} per update command)"),
        done,
        t,
        "docs",
    );

    let one_by_one = |field: &'static str, coll: mongodb::Collection<Document>, secs: Duration| async move {
        let t = Instant::now();
        let deadline = t + secs;
        let n = futures::stream::iter(0..UPSERTS)
            .take_while(|_| futures::future::ready(Instant::now() < deadline))
            .map(|i| {
                let coll = coll.clone();
                async move {
                    coll.update_one(
                        doc! { field: format!("subject-{:06}", i % 5_000) },
                        doc! { "$set": { "last": i as i64 }, "$inc": { "events": 1_i64 } },
                    )
                    .upsert(true)
                    .await
                }
            })
            .buffer_unordered(32)
            .fold(Ok::<usize, mongodb::error::Error>(0), |acc, r| async move {
                Ok(acc? + r.map(|_| 1)?)
            })
            .await?;
        Ok::<_, BoxError>((n, t))
    };
    let (n, t) = one_by_one("_id", db.collection::<Document>("profiles"), budget()).await?;
    let by_id = Figure::new(
        "MongoDB protocol",
        "upserts by _id (update_one, 32 in flight)",
        n,
        t,
        "docs",
    );

    let by_subject = db.collection::<Document>("profiles_by_subject");
    by_subject
        .create_index(
            IndexModel::builder()
                .keys(doc! { "subject": 1 })
                .options(IndexOptions::builder().unique(true).build())
                .build(),
        )
        .await?;
    let (n, t) = one_by_one("subject", by_subject, budget() / 2).await?;
    let by_field = Figure::new(
        "MongoDB protocol",
        "upserts by a unique-indexed field (update_one, 32 in flight)",
        n,
        t,
        "docs",
    );
    db.drop().await?;
    Ok(vec![ins, batched, by_id, by_field])
}

async fn cql(node: &str) -> Result<Vec<Figure>, BoxError> {
    use scylla::client::session::Session;
    use scylla::client::session_builder::SessionBuilder;
    use scylla::value::CqlDate;

    const N: usize = 200_000;
    const IN_FLIGHT: usize = 128;
    let session: Session = SessionBuilder::new().known_node(node).build().await?;
    let ks = format!("credence_bench_{}", run_id() % 1_000_000_000);
    session
        .query_unpaged(
            format!("CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"),
            &[],
        )
        .await?;
    session
        .query_unpaged(
            format!(
                "CREATE TABLE {ks}.events (subject text, day date, at bigint, body text, \
                 PRIMARY KEY ((subject, day), at)) WITH default_time_to_live = 2592000"
            ),
            &[],
        )
        .await?;
    let mut insert = session
        .prepare(format!(
            "INSERT INTO {ks}.events (subject, day, at, body) VALUES (?, ?, ?, ?)"
        ))
        .await?;
    insert.set_is_idempotent(true);
    let session = &session;
    let insert = &insert;
    let t = Instant::now();
    let deadline = t + budget();
    let done = futures::stream::iter(0..N)
        .take_while(|_| futures::future::ready(Instant::now() < deadline))
        .map(|i| async move {
            let subject = format!("subject-{:06}", i % 50_000);
            session
                .execute_unpaged(
                    insert,
                    (subject, CqlDate((1 << 31) + 20_413), i as i64, event(i)),
                )
                .await
        })
        .buffer_unordered(IN_FLIGHT)
        .fold(Ok::<usize, BoxError>(0), |acc, r| async move {
            Ok(acc? + r.map(|_| 1)?)
        })
        .await?;
    let f = Figure::new(
        "CQL",
        format!("prepared inserts, {IN_FLIGHT} in flight"),
        done,
        t,
        "rows",
    );
    session
        .query_unpaged(format!("DROP KEYSPACE {ks}"), &[])
        .await?;
    Ok(vec![f])
}

async fn influx(url: &str) -> Result<Vec<Figure>, BoxError> {
    const BATCH: usize = 5_000;
    const BATCHES: usize = 100;
    let bucket = std::env::var("CREDENCE_TEST_INFLUX_BUCKET").unwrap_or_else(|_| "credence".into());
    let org = std::env::var("CREDENCE_TEST_INFLUX_ORG").unwrap_or_else(|_| "credence".into());
    let client = influxdb2::Client::new(url, &org, "credence-local");
    let m = format!("bench_{}", run_id());
    let base = run_id() as i64 - 3_600_000_000_000;
    let t = Instant::now();
    let deadline = t + budget();
    let mut n = 0;
    for b in 0..BATCHES {
        if Instant::now() > deadline {
            break;
        }
        let mut body = String::with_capacity(BATCH * 90);
        for j in 0..BATCH {
            let i = b * BATCH + j;
            let _ = writeln!(
                body,
                "{m},subject=subject-{:05},kind={} score={}i,amount={} {}",
                i % 20_000,
                ["login", "payment"][i % 2],
                i % 100,
                (i % 997) as f64 / 3.0,
                base + i as i64 * 1_000
            );
        }
        client.write_line_protocol(&org, &bucket, body).await?;
        n += BATCH;
    }
    Ok(vec![Figure::new(
        "InfluxDB",
        format!("line protocol, {BATCH} points per write"),
        n,
        t,
        "points",
    )])
}

async fn dgraph(url: &str) -> Result<Vec<Figure>, BoxError> {
    use dgraph_tonic::{Client, Mutate, Mutation};
    const QUADS: usize = 1_000;
    const MUTATIONS: usize = 100;
    let client = Client::new(url)?;
    client
        .set_schema("nationalID: string @index(exact) .\nknows: [uid] @reverse .\nname: string .")
        .await?;
    let run = run_id();
    let t = Instant::now();
    let deadline = t + budget();
    let mut n = 0;
    for m in 0..MUTATIONS {
        if Instant::now() > deadline {
            break;
        }
        // 250 people x (nationalID, name, 2 edges with a facet) = 1,000 quads.
        let mut nq = String::with_capacity(QUADS * 80);
        for p in 0..QUADS / 4 {
            let _ = write!(
                nq,
                "_:p{p} <nationalID> \"{run}-{m}-{p}\" .\n_:p{p} <name> \"person {p}\" .\n"
            );
            let a = (p + 1) % (QUADS / 4);
            let b = (p * 7 + 3) % (QUADS / 4);
            let _ = write!(
                nq,
                "_:p{p} <knows> _:p{a} (weight=0.5) .\n_:p{p} <knows> _:p{b} (weight=0.25) .\n"
            );
        }
        let mut mu = Mutation::new();
        mu.set_set_nquads(nq);
        let resp = client.new_mutated_txn().mutate_and_commit_now(mu).await?;
        assert_eq!(resp.uids.len(), QUADS / 4);
        n += QUADS;
    }
    Ok(vec![Figure::new(
        "Dgraph",
        format!("mutations of {QUADS} N-Quads, commit now"),
        n,
        t,
        "quads",
    )])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), BoxError> {
    let mut figures = Vec::new();
    if let Some(e) = env("CREDENCE_TEST_KAFKA") {
        figures.extend(kafka(&e).await?);
    }
    if let Some(e) = env("CREDENCE_TEST_MONGO") {
        figures.extend(mongo(&e).await?);
    }
    if let Some(e) = env("CREDENCE_TEST_CQL") {
        figures.extend(cql(&e).await?);
    }
    if let Some(e) = env("CREDENCE_TEST_INFLUX") {
        figures.extend(influx(&e).await?);
    }
    if let Some(e) = env("CREDENCE_TEST_DGRAPH") {
        figures.extend(dgraph(&e).await?);
    }
    println!("| store | what | count | seconds | rate |");
    println!("|---|---|---:|---:|---:|");
    for f in &figures {
        println!(
            "| {} | {} | {} | {:.2} | {:.0} {}/s |",
            f.store,
            f.what,
            f.n,
            f.secs,
            f.rate(),
            f.unit
        );
    }
    Ok(())
}
