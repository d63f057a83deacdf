//! Crash safety: several producers publish while the server is killed with SIGKILL at random
//! points (seeded) and restarted on the same data directory. Afterwards every acknowledged
//! event is archived exactly once, and every subject's snapshot equals, to the bit, what the
//! pure engine computes over the archived events in their bus order.
//!
//! Bus order per subject is known on the client side: a subject private to one producer is
//! only ever published by it, one call at a time; a subject shared between producers is
//! published under a per-subject lock held until the call (and its retries) succeeded. So
//! the order in which the events of a subject were first sent is the order they reached the
//! bus, whichever attempt of a call made them durable.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use credence_loadgen::generate::Rng;
use credence_proto::v1 as pb;
use credence_proto::v1::ingestion_service_client::IngestionServiceClient;
use credence_scorer as domain;
use credence_tests::analytics::{run_sql, single_int};
use credence_tests::events::{domain_event, nanos_of, outcome, to_struct, ts, ts_nanos};
use credence_tests::{Node, NodeOptions, wait};
use serde_json::json;
use tokio::sync::watch;
use tonic::transport::{Channel, Endpoint};

const SEED: u64 = 0x00C0_FFEE;
const PRODUCERS: u64 = 4;
const PRIVATE_SUBJECTS: u64 = 30;
const SHARED_SUBJECTS: u64 = 6;
const BATCH: usize = 40;
const MAX_BATCHES: usize = 250;
const KILLS: usize = 5;
/// The whole test stops by itself within this.
const TEST_LIMIT: Duration = Duration::from_secs(170);

#[derive(Default)]
struct Log {
    /// Event ids per subject, in the order they were first sent.
    order: HashMap<String, Vec<String>>,
    /// Every event sent, by id.
    sent: HashMap<String, pb::Event>,
    /// Events a PublishEvents call answered OK for (accepted or duplicate).
    acked: HashSet<String>,
    duplicates_on_retry: u64,
}

struct Ctx {
    log: Mutex<Log>,
    locks: BTreeMap<String, Arc<tokio::sync::Mutex<()>>>,
    stop: AtomicBool,
    clock: AtomicI64,
    failed_calls: AtomicU64,
}

fn shared_subject(i: u64) -> String {
    format!("SUBJ-SHARED-{i}")
}

fn private_subject(producer: u64, i: u64) -> String {
    format!("SUBJ-P{producer}-{i:02}")
}

/// A synthetic event of a kind the example rules score.
fn make_event(rng: &mut Rng, id: String, subject: String, at_ns: i64) -> pb::Event {
    let (event_type, subtype, payload) = match rng.below(12) {
        0 => (
            "financial",
            "late_payment",
            json!({"days_late": rng.int(1, 120)}),
        ),
        1 => ("financial", "bill_paid", json!({"days_late": 0})),
        2 => (
            "financial",
            "loan_default",
            json!({"amount": rng.int(500, 30000)}),
        ),
        3 => (
            "financial",
            "savings_milestone",
            json!({"amount": rng.int(100, 5000)}),
        ),
        4 => ("social", "volunteer_work", json!({"hours": rng.int(1, 10)})),
        5 => (
            "social",
            "charity_donation",
            json!({"amount": rng.int(5, 900), "anonymous": rng.chance(0.3)}),
        ),
        6 => (
            "social",
            "traffic_violation",
            json!({"severity": *rng.pick(&["minor", "moderate", "major"])}),
        ),
        7 => ("social", "community_service", json!({})),
        8 => (
            "online",
            "review",
            json!({"verified_purchase": rng.chance(0.7), "helpful_votes": rng.int(0, 20)}),
        ),
        9 => (
            "online",
            "spam_report",
            json!({"confirmed": rng.chance(0.5)}),
        ),
        10 => (
            "online",
            "fraud_flag",
            json!({"confidence": rng.int(50, 99) / 100.0}),
        ),
        _ => (
            "online",
            "training",
            json!({"course": *rng.pick(&["security basics", "first aid"])}),
        ),
    };
    pb::Event {
        event_id: id,
        subject_id: subject,
        event_type: event_type.into(),
        event_subtype: subtype.into(),
        source_system: "crash-test".into(),
        occurred_at: Some(ts_nanos(at_ns)),
        payload: Some(to_struct(&payload)),
        ..pb::Event::default()
    }
}

fn client(addr: &str) -> anyhow::Result<IngestionServiceClient<Channel>> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    Ok(IngestionServiceClient::new(channel))
}

async fn producer(
    id: u64,
    ctx: Arc<Ctx>,
    mut addr: watch::Receiver<String>,
) -> anyhow::Result<u64> {
    let mut rng = Rng::new(SEED ^ (id + 1).wrapping_mul(0x9E37_79B9));
    let mut current = addr.borrow_and_update().clone();
    let mut ingestion = client(&current)?;
    let mut published = 0;
    for batch_no in 0..MAX_BATCHES {
        if ctx.stop.load(Ordering::SeqCst) {
            break;
        }
        let events: Vec<pb::Event> = (0..BATCH)
            .map(|i| {
                let subject = if rng.chance(0.15) {
                    shared_subject(rng.below(SHARED_SUBJECTS))
                } else {
                    private_subject(id, rng.below(PRIVATE_SUBJECTS))
                };
                let at = ctx.clock.fetch_add(60_000_000_000, Ordering::SeqCst);
                make_event(&mut rng, format!("c{id}-{batch_no:04}-{i:02}"), subject, at)
            })
            .collect();
        let shared: BTreeSet<&str> = events
            .iter()
            .map(|e| e.subject_id.as_str())
            .filter(|s| ctx.locks.contains_key(*s))
            .collect();
        let mut guards = Vec::new();
        for s in shared {
            guards.push(Arc::clone(&ctx.locks[s]).lock_owned().await);
        }
        {
            let mut log = ctx.log.lock().unwrap();
            for e in &events {
                log.order
                    .entry(e.subject_id.clone())
                    .or_default()
                    .push(e.event_id.clone());
                log.sent.insert(e.event_id.clone(), e.clone());
            }
        }
        let request = pb::PublishEventsRequest { events };
        let give_up = Instant::now() + Duration::from_secs(60);
        let mut attempt = 0;
        loop {
            let latest = addr.borrow_and_update().clone();
            if latest != current {
                current = latest;
                ingestion = client(&current)?;
            }
            let call = tokio::time::timeout(
                Duration::from_secs(10),
                ingestion.publish_events(request.clone()),
            )
            .await;
            match call {
                Ok(Ok(response)) => {
                    let response = response.into_inner();
                    anyhow::ensure!(
                        response.results.len() == request.events.len(),
                        "one result per event: {response:?}"
                    );
                    let mut log = ctx.log.lock().unwrap();
                    for r in &response.results {
                        match outcome(r) {
                            pb::EventOutcome::Accepted => {}
                            pb::EventOutcome::Duplicate if attempt > 0 => {
                                log.duplicates_on_retry += 1;
                            }
                            other => bail!(
                                "event {} answered {other:?} on attempt {attempt}: {}",
                                r.event_id,
                                r.reason
                            ),
                        }
                        log.acked.insert(r.event_id.clone());
                    }
                    published += request.events.len() as u64;
                    break;
                }
                Ok(Err(_)) | Err(_) => {
                    ctx.failed_calls.fetch_add(1, Ordering::SeqCst);
                }
            }
            attempt += 1;
            if Instant::now() > give_up {
                bail!("producer {id}: batch {batch_no} could not be published for 60 s");
            }
            // a new server, or a short pause
            let _ = tokio::time::timeout(Duration::from_millis(100), addr.changed()).await;
        }
        drop(guards);
    }
    Ok(published)
}

/// One crash test at a time: each wants the machine's cores for its load and restarts.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_kill_9_and_score_exactly_once() {
    crash_test("transactional", Vec::new()).await;
}

/// The same with the committer cluster backends use: role by role through the role traits,
/// so a kill can land between any two role writes of a batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_kill_9_with_the_role_by_role_committer() {
    crash_test("role_by_role", Vec::new()).await;
}

/// The same on the Kafka bus (every other role embedded): the node is killed between a
/// producer's send and its acknowledgement, between a read and its commit, and restarted
/// into the same consumer group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_kill_9_on_the_kafka_bus() {
    let Some(env) = credence_tests::cluster::kafka_bus_env("crash test on the Kafka bus") else {
        return;
    };
    crash_test("transactional", env).await;
}

/// Runs the crash test against nodes configured with `storage.committer = committer` and
/// the variables `env` (the bus).
async fn crash_test(committer: &str, env: Vec<(String, String)>) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let started = Instant::now();
    let bus = env
        .iter()
        .find(|(k, _)| k == "CREDENCE__STORAGE__BUS")
        .map_or("embedded", |(_, v)| v.as_str())
        .to_owned();
    tokio::time::timeout(TEST_LIMIT, run(committer, &bus, env))
        .await
        .expect("the crash test stops within its time limit");
    eprintln!(
        "committer {committer}, bus {bus}: {:.1?}",
        started.elapsed()
    );
}

async fn run(committer: &str, bus: &str, mut env: Vec<(String, String)>) {
    env.push(("CREDENCE__STORAGE__COMMITTER".into(), committer.into()));
    let mut node = Node::start_with(NodeOptions {
        env,
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    // The settings took: a node that ignored them would test another setup twice.
    let log = node.log_tail(usize::MAX);
    assert!(
        log.contains(&format!("committer={committer}")),
        "the node does not say it commits {committer}"
    );
    assert!(
        log.contains(&format!("bus={bus}")),
        "the node does not say its bus is {bus}"
    );
    let ctx = Arc::new(Ctx {
        log: Mutex::new(Log::default()),
        locks: (0..SHARED_SUBJECTS)
            .map(|i| (shared_subject(i), Arc::default()))
            .collect(),
        stop: AtomicBool::new(false),
        clock: AtomicI64::new(nanos_of(&ts("2026-01-01T00:00:00Z"))),
        failed_calls: AtomicU64::new(0),
    });
    let (addr_tx, addr_rx) = watch::channel(node.addr().to_string());
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|id| tokio::spawn(producer(id, Arc::clone(&ctx), addr_rx.clone())))
        .collect();

    // kill -9 at random points, restart on the same data directory
    let mut rng = Rng::new(SEED);
    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(300 + rng.below(1200))).await;
        let acked_before = ctx.log.lock().unwrap().acked.len();
        node.kill();
        tokio::time::sleep(Duration::from_millis(rng.below(300))).await;
        node.restart()
            .await
            .with_context(|| format!("restart after kill {kill}"))
            .unwrap();
        addr_tx.send_replace(node.addr().to_string());
        eprintln!("kill {kill}: {acked_before} events acknowledged before it");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    ctx.stop.store(true, Ordering::SeqCst);
    let mut published = 0;
    for p in producers {
        published += p.await.unwrap().unwrap();
    }
    let log = std::mem::take(&mut *ctx.log.lock().unwrap());
    eprintln!(
        "published {published} events ({} acknowledged, {} failed calls retried, {} duplicates on retry)",
        log.acked.len(),
        ctx.failed_calls.load(Ordering::SeqCst),
        log.duplicates_on_retry
    );
    assert!(
        log.acked.len() >= 1000,
        "enough load to mean something: {}",
        log.acked.len()
    );

    // wait until every acknowledged event is applied and the pipeline is still
    let mut acked_per_subject: HashMap<&str, u64> = HashMap::new();
    for id in &log.acked {
        *acked_per_subject
            .entry(log.sent[id].subject_id.as_str())
            .or_default() += 1;
    }
    let subjects: Vec<String> = log.order.keys().cloned().collect();
    let snapshots = wait::until(
        "every acknowledged event to be scored",
        Duration::from_secs(60),
        || async {
            let batch = node
                .scoring()
                .batch_get_scores(pb::BatchGetScoresRequest {
                    subject_ids: subjects.clone(),
                })
                .await?
                .into_inner();
            let done = batch.snapshots.iter().all(|s| {
                s.applied_events
                    >= acked_per_subject
                        .get(s.subject_id.as_str())
                        .copied()
                        .unwrap_or(0)
            }) && batch
                .missing_subject_ids
                .iter()
                .all(|s| !acked_per_subject.contains_key(s.as_str()));
            if !done {
                return Ok(None);
            }
            if let Ok(m) = node.metrics().await
                && m.sum("credence_pipeline_lag_events", &[]) > 0.0
            {
                return Ok(None);
            }
            Ok(Some(batch.snapshots))
        },
    )
    .await
    .unwrap();
    // still after a moment: nothing more trickles in
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = node
        .scoring()
        .batch_get_scores(pb::BatchGetScoresRequest {
            subject_ids: subjects.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .snapshots;
    assert_eq!(again, snapshots, "the snapshots are stable");

    // the archive: every acknowledged event exactly once, nothing we did not send
    let mut archived: HashMap<String, pb::Event> = HashMap::new();
    let mut duplicated = Vec::new();
    let mut token = String::new();
    loop {
        let page = node
            .query()
            .list_events(pb::ListEventsRequest {
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        for e in page.events {
            if let Some(first) = archived.insert(e.event_id.clone(), e) {
                duplicated.push(first.event_id);
            }
        }
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert!(
        duplicated.is_empty(),
        "events archived more than once: {:?}",
        &duplicated[..duplicated.len().min(10)]
    );
    let lost: Vec<_> = log
        .acked
        .iter()
        .filter(|id| !archived.contains_key(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    for (id, e) in &archived {
        let sent = log
            .sent
            .get(id)
            .unwrap_or_else(|| panic!("archived event {id} was never sent"));
        assert_eq!(
            (
                &e.subject_id,
                &e.event_type,
                &e.event_subtype,
                &e.occurred_at,
                &e.payload
            ),
            (
                &sent.subject_id,
                &sent.event_type,
                &sent.event_subtype,
                &sent.occurred_at,
                &sent.payload
            ),
            "archived event {id} differs from what was sent"
        );
    }
    let dup_rows = run_sql(
        &node,
        "select event_id, count(*) as n from events group by event_id having count(*) > 1",
        0,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        dup_rows
            .iter()
            .map(arrow::array::RecordBatch::num_rows)
            .sum::<usize>(),
        0,
        "the events view has no duplicate ids"
    );
    let total = single_int(
        &run_sql(&node, "select count(*) from events", 0, None)
            .await
            .unwrap(),
    );
    assert_eq!(
        total,
        Some(archived.len() as i64),
        "the events view holds the archive"
    );

    // the pure engine over the archived events in bus order, subject by subject
    let engine = domain::RuleFile::example().unwrap().engine(1).unwrap();
    let mut scorer = domain::Scorer::new(engine);
    let mut out = domain::Outcomes::default();
    for (subject, ids) in &log.order {
        for id in ids.iter().filter(|id| archived.contains_key(*id)) {
            let outcome = scorer.apply(&domain_event(&log.sent[id]), &mut out);
            assert!(
                matches!(outcome, domain::EventOutcome::Applied { .. }),
                "{subject} {id}: {outcome:?}"
            );
        }
    }
    let config_version = node
        .scoring()
        .get_config(pb::GetConfigRequest::default())
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap()
        .version;
    let by_subject: HashMap<&str, &pb::ScoreSnapshot> = snapshots
        .iter()
        .map(|s| (s.subject_id.as_str(), s))
        .collect();
    let mut compared = 0;
    for state in scorer.states() {
        let snapshot = by_subject
            .get(state.subject_id.as_str())
            .unwrap_or_else(|| panic!("{} has archived events but no snapshot", state.subject_id));
        let id = &state.subject_id;
        credence_tests::fixtures::assert_snapshot_matches(snapshot, state);
        assert_eq!(snapshot.config_version, config_version, "{id}");
        compared += 1;
    }
    assert_eq!(
        compared,
        snapshots.len(),
        "no snapshot without archived events"
    );
    eprintln!(
        "{compared} subjects and {} archived events match the pure engine to the bit",
        archived.len()
    );
}
