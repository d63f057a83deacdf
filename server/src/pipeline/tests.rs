//! The pipeline over the real embedded stores: faults of the committer, dead letters,
//! the state cache, and ownership (`rebalance`).

use std::sync::atomic::{AtomicU32, Ordering};

use credence_storage::embedded::{Embedded, EmbeddedOptions};
use credence_storage::{BusRecord, Committer, StorageError};
use tonic_health::pb::health_server::Health as _;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use tonic_health::server::{HealthReporter, HealthService};

use super::*;

/// Partitions assigned and revoked while the pipeline runs (a child module, so it shares
/// these fixtures).
mod rebalance;

#[derive(Clone, Copy)]
enum Fault {
    /// The first call writes everything, then reports a failure.
    FailOnceAfterWriting,
    /// Every call panics.
    Panic,
}

/// The real committer with a fault injected.
struct Faulty {
    inner: Arc<dyn Committer>,
    fault: Fault,
    calls: AtomicU32,
}

#[tonic::async_trait]
impl Committer for Faulty {
    async fn commit(
        &self,
        batches: Vec<PartitionCommit>,
        at: Timestamp,
    ) -> credence_storage::Result<()> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        match self.fault {
            Fault::FailOnceAfterWriting if call == 0 => {
                self.inner.commit(batches, at).await?;
                Err(StorageError::Unavailable(
                    "injected: the reply was lost".into(),
                ))
            }
            Fault::Panic => panic!("injected committer panic"),
            Fault::FailOnceAfterWriting => self.inner.commit(batches, at).await,
        }
    }
}

struct Running {
    pipeline: tokio::task::JoinHandle<()>,
    stop: watch::Sender<bool>,
    shared: Arc<Shared>,
    reporter: HealthReporter,
    /// The bus's partition assignments, as the test hands them out.
    rebalances: mpsc::Sender<Rebalance>,
}

/// A pipeline that owns every partition.
async fn start(stores: &Stores, fault: Option<Fault>) -> Running {
    let mut stores = stores.clone();
    if let Some(fault) = fault {
        stores.committer = Arc::new(Faulty {
            inner: Arc::clone(&stores.committer),
            fault,
            calls: AtomicU32::new(0),
        });
    }
    let running = launch(stores, PipelineSection::default()).await;
    let all = (0..running.shared.stores.bus.partitions()).collect();
    running
        .rebalances
        .send(Rebalance::Assigned(all))
        .await
        .unwrap();
    running
}

/// A pipeline over `stores` whose bus assigns no partition until the test says so.
async fn launch(stores: Stores, config: PipelineSection) -> Running {
    let (stores, rebalances) = rebalance::Driven::wrap(stores);
    let seed = credence_scorer::RuleFile::example().unwrap();
    let catalog = Arc::new(Catalog::open(stores.clone(), &seed).await.unwrap());
    let (reporter, _) = tonic_health::server::health_reporter();
    let shared = Arc::new(Shared {
        progress: Arc::new(Progress::new(stores.bus.partitions())),
        stores,
        catalog,
        alerts: broadcast::channel(16).0,
        config,
        graph: GraphSection::default(),
        health: Arc::new(Health::new(reporter.clone()).await),
    });
    let (stop, shutdown) = watch::channel(false);
    Running {
        pipeline: spawn(&shared, &shutdown).unwrap(),
        stop,
        shared,
        reporter,
        rebalances,
    }
}

impl Running {
    async fn overall_health(&self) -> ServingStatus {
        let service = HealthService::from_health_reporter(self.reporter.clone());
        let answer = service
            .check(tonic::Request::new(HealthCheckRequest {
                service: String::new(),
            }))
            .await
            .unwrap();
        answer.into_inner().status()
    }

    /// Waits (bounded) until `done` holds.
    async fn wait_for(&self, what: &str, done: impl Fn(&Self) -> bool) {
        for _ in 0..3_000 {
            if done(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("gave up waiting for {what}");
    }

    fn caught_up(&self) -> bool {
        let bus = &self.shared.stores.bus;
        (0..bus.partitions()).all(|p| self.shared.progress.get(p) >= *bus.end(p).borrow())
    }

    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.pipeline.await.unwrap();
    }
}

fn record(i: u32, partitions: u32) -> BusRecord {
    let subject = format!("subject-{}", i % 7);
    let at = convert::timestamp_to_pb(Timestamp::from_unix_seconds(1_700_000_000 + i64::from(i)));
    let event = pb::Event {
        event_id: format!("e-{i}"),
        subject_id: subject.clone(),
        event_type: "payment".into(),
        occurred_at: Some(at),
        received_at: Some(at),
        ..pb::Event::default()
    };
    BusRecord {
        partition: credence_proto::partition_of(&subject, partitions),
        payload: event.encode_to_vec(),
    }
}

/// Rows of `sql` (analytics answers the row count with the Arrow stream).
async fn rows(stores: &Stores, sql: &str) -> u64 {
    let limits = credence_storage::QueryLimits {
        max_rows: 100_000,
        timeout: Duration::from_secs(30),
    };
    stores.analytics.run_sql(sql, limits).await.unwrap().rows
}

/// Every event on the bus is archived once and scored once, and every subject's state
/// counts each of its events once.
async fn assert_scored_exactly_once(stores: &Stores, events: u64) {
    assert_eq!(rows(stores, "SELECT * FROM events").await, events);
    assert_eq!(
        rows(stores, "SELECT DISTINCT event_id FROM events").await,
        events
    );
    assert_eq!(rows(stores, "SELECT * FROM score_points").await, events);
    let subjects: Vec<String> = (0..7).map(|s| format!("subject-{s}")).collect();
    let applied: u64 = stores
        .snapshots
        .get_snapshots(&subjects)
        .await
        .unwrap()
        .into_iter()
        .flatten()
        .map(|s| s.state.applied_events)
        .sum();
    assert_eq!(applied, events);
}

fn open() -> (tempfile::TempDir, Embedded) {
    let dir = tempfile::tempdir().unwrap();
    let embedded =
        tokio::task::block_in_place(|| Embedded::open(&EmbeddedOptions::new(dir.path()))).unwrap();
    (dir, embedded)
}

async fn append(stores: &Stores, range: std::ops::Range<u32>) {
    let partitions = stores.bus.partitions();
    let records = range.map(|i| record(i, partitions)).collect();
    stores.bus.append(records).await.unwrap();
}

/// Runs a pipeline until it has scored all of the bus, healthy at the end.
async fn score_all(stores: &Stores, fault: Option<Fault>) {
    let running = start(stores, fault).await;
    running
        .wait_for("the pipeline to catch up", Running::caught_up)
        .await;
    assert_eq!(running.overall_health().await, ServingStatus::Serving);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_fails_once_is_retried_and_scores_every_event_once() {
    let (_dir, embedded) = open();
    let stores = embedded.stores();
    append(&stores, 0..200).await;
    score_all(&stores, Some(Fault::FailOnceAfterWriting)).await;
    assert_scored_exactly_once(&stores, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committer_that_panics_turns_health_not_serving_and_loses_nothing() {
    let (_dir, embedded) = open();
    let stores = embedded.stores();
    append(&stores, 0..200).await;
    let running = start(&stores, Some(Fault::Panic)).await;
    running
        .wait_for("the committer to be reported failing", |r| {
            r.shared.health.is_failing(Component::Committer)
        })
        .await;
    assert_eq!(running.overall_health().await, ServingStatus::NotServing);
    running.stop().await;
    // Restarted with a committer that works, every acknowledged event is scored.
    score_all(&stores, None).await;
    assert_scored_exactly_once(&stores, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_record_is_parked_and_its_partition_goes_on() {
    let (_dir, embedded) = open();
    let stores = embedded.stores();
    append(&stores, 0..50).await;
    let poisoned = record(50, stores.bus.partitions()).partition;
    stores
        .bus
        .append(vec![BusRecord {
            partition: poisoned,
            // Field 1 with wire type 7, which does not exist.
            payload: vec![0x0f, 0xff, 0xff],
        }])
        .await
        .unwrap();
    append(&stores, 50..100).await;
    score_all(&stores, None).await;
    assert_scored_exactly_once(&stores, 100).await;
    assert_eq!(
        rows(
            &stores,
            &format!(
                "SELECT * FROM dead_letters WHERE bus_partition = {poisoned} AND payload_bytes = 3 \
             AND reason LIKE 'not an encoded event%'"
            )
        )
        .await,
        1
    );
}

fn state(id: &str) -> SubjectState {
    SubjectState::new(
        id,
        1000.0,
        std::sync::Arc::from("C"),
        Timestamp::from_nanos(0),
    )
}

#[test]
fn the_state_cache_drops_the_least_recently_used_past_its_capacity() {
    let mut cache = StateCache::new(2);
    cache.insert(state("a"));
    cache.insert(state("b"));
    cache.insert(state("c"));
    // Over capacity within a batch is fine; the drop comes after the commit.
    assert!(cache.get("a").is_some());
    assert!(cache.touch("a"), "a is used again, so b is the oldest");
    cache.shrink();
    assert!(cache.get("b").is_none());
    assert!(cache.get("a").is_some() && cache.get("c").is_some());
    assert!(!cache.touch("b"));
    cache.insert(state("d"));
    cache.shrink();
    assert!(cache.get("c").is_none(), "c was used before a and d");
    assert_eq!(cache.states.len(), cache.by_use.len());
}
