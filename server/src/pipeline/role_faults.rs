//! Faults between the role writes of the role-by-role committer ([`credence_storage::Sequential`])
//! over the real embedded stores: the k-th write of one role (archive, dead letters, series,
//! snapshots with the offset) fails, refused before writing or after writing (a lost reply),
//! and the pipeline recovers from the committed offsets with every event scored exactly once.

use std::sync::atomic::{AtomicU32, Ordering};

use credence_scorer::{Outcomes, RuleFile, ScoreChange, Scorer};
use credence_storage::embedded::{Embedded, EmbeddedOptions};
use credence_storage::{
    AggregateQuery, Archive, BusRecord, EventFilter, Page, Paged, QueryLimits, Result, Sequential,
    Series, Snapshots, StoredSnapshot, SubjectFilter, TimeRange,
};
use prost_types::value::Kind;
use tonic::async_trait;

use super::*;

/// Events on the bus, spread over `SUBJECTS` subjects.
const EVENTS: u32 = 240;
const SUBJECTS: u32 = 9;
/// An unreadable record goes on the bus after every this many events.
const POISON_EVERY: u32 = 50;
/// Small batches, so a run makes many commits.
const MICRO_BATCH: usize = 16;
/// Every this-many-th write of the chosen role fails...
const FAIL_EVERY: u32 = 3;
/// ...this many times in a run.
const FAILURES: u32 = 3;

/// The role writes of one batch, in the order `Sequential` makes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Write {
    Archive,
    DeadLetters,
    Series,
    Snapshots,
}

/// How the chosen write fails.
#[derive(Clone, Copy, Debug)]
enum Failure {
    /// Refused: nothing of it is written.
    Refused,
    /// Written, then an error: the reply was lost. Only idempotent rows make the retry
    /// harmless.
    WrittenThenFailed,
}

/// The embedded roles with one role's writes failing now and then.
struct Faulty {
    real: Stores,
    target: Write,
    failure: Failure,
    calls: AtomicU32,
    failed: AtomicU32,
}

impl Faulty {
    /// Runs one role write, failing it as planned.
    async fn write(
        &self,
        write: Write,
        f: impl std::future::Future<Output = Result<()>>,
    ) -> Result<()> {
        let fails = write == self.target
            && (self.calls.fetch_add(1, Ordering::SeqCst) + 1) % FAIL_EVERY == 0
            && self.failed.load(Ordering::SeqCst) < FAILURES;
        if !fails {
            return f.await;
        }
        self.failed.fetch_add(1, Ordering::SeqCst);
        if let Failure::WrittenThenFailed = self.failure {
            f.await?;
        }
        Err(StorageError::Unavailable(format!(
            "injected: the {write:?} write failed ({:?})",
            self.failure
        )))
    }
}

#[async_trait]
impl Archive for Faulty {
    async fn append_events(&self, events: Vec<ArchivedEvent>) -> Result<()> {
        self.write(Write::Archive, self.real.archive.append_events(events))
            .await
    }
    async fn park_dead_letters(&self, letters: Vec<DeadLetter>, at: Timestamp) -> Result<()> {
        let park = self.real.archive.park_dead_letters(letters, at);
        self.write(Write::DeadLetters, park).await
    }
    async fn list_events(&self, filter: &EventFilter, page: &Page) -> Result<Paged<ArchivedEvent>> {
        self.real.archive.list_events(filter, page).await
    }
}

#[async_trait]
impl Series for Faulty {
    async fn append_scores(
        &self,
        partition: u32,
        points: Vec<ScorePoint>,
        changes: Vec<(u64, ScoreChange)>,
    ) -> Result<()> {
        let append = self.real.series.append_scores(partition, points, changes);
        self.write(Write::Series, append).await
    }
    async fn score_history(
        &self,
        subject_id: &str,
        range: TimeRange,
        page: &Page,
    ) -> Result<Paged<ScorePoint>> {
        self.real
            .series
            .score_history(subject_id, range, page)
            .await
    }
    async fn score_changes(
        &self,
        subject_id: &str,
        range: TimeRange,
        page: &Page,
    ) -> Result<Paged<ScoreChange>> {
        self.real
            .series
            .score_changes(subject_id, range, page)
            .await
    }
    async fn aggregates(
        &self,
        query: &AggregateQuery,
        page: &Page,
    ) -> Result<Paged<credence_storage::AggregateRow>> {
        self.real.series.aggregates(query, page).await
    }
}

#[async_trait]
impl Snapshots for Faulty {
    async fn claim(&self, partition: u32) -> Result<Claim> {
        self.real.snapshots.claim(partition).await
    }
    async fn position(&self, partition: u32) -> Result<Claim> {
        self.real.snapshots.position(partition).await
    }
    async fn commit(
        &self,
        partition: u32,
        expected: Claim,
        next_offset: u64,
        states: Vec<ChangedState>,
        at: Timestamp,
    ) -> Result<()> {
        let commit = self
            .real
            .snapshots
            .commit(partition, expected, next_offset, states, at);
        self.write(Write::Snapshots, commit).await
    }
    async fn committed_offset(&self, partition: u32) -> Result<u64> {
        self.real.snapshots.committed_offset(partition).await
    }
    async fn get_snapshots(&self, subject_ids: &[String]) -> Result<Vec<Option<StoredSnapshot>>> {
        self.real.snapshots.get_snapshots(subject_ids).await
    }
    async fn list_subjects(
        &self,
        filter: &SubjectFilter,
        page: &Page,
    ) -> Result<Paged<StoredSnapshot>> {
        self.real.snapshots.list_subjects(filter, page).await
    }
    async fn tier_counts(&self, region: &str) -> Result<Vec<(String, u64)>> {
        self.real.snapshots.tier_counts(region).await
    }
}

fn number(n: u32) -> prost_types::Value {
    prost_types::Value {
        kind: Some(Kind::NumberValue(f64::from(n))),
    }
}

/// Event `i`: a kind the example rules score (most make score changes), one minute
/// after the one before.
fn event(i: u32) -> pb::Event {
    let (event_type, subtype, field, value) = match i % 4 {
        0 => (
            "financial",
            "late_payment",
            "days_late",
            number(i % 120 + 1),
        ),
        1 => ("social", "volunteer_work", "hours", number(i % 10 + 1)),
        2 => (
            "social",
            "charity_donation",
            "amount",
            number(i * 7 % 900 + 5),
        ),
        _ => ("financial", "bill_paid", "days_late", number(0)),
    };
    let at = convert::timestamp_to_pb(Timestamp::from_unix_seconds(
        1_767_225_600 + 60 * i64::from(i),
    ));
    pb::Event {
        event_id: format!("rf-{i}"),
        subject_id: format!("rf-subject-{}", i % SUBJECTS),
        event_type: event_type.into(),
        event_subtype: subtype.into(),
        occurred_at: Some(at),
        received_at: Some(at),
        payload: Some(prost_types::Struct {
            fields: [(field.to_owned(), value)].into(),
        }),
        ..pb::Event::default()
    }
}

/// Appends every event (and now and then an unreadable record); returns the events and
/// how many records were unreadable. An `Ok` append is an acknowledgement.
async fn fill_bus(stores: &Stores) -> (Vec<pb::Event>, u64) {
    let partitions = stores.bus.partitions();
    let events: Vec<pb::Event> = (0..EVENTS).map(event).collect();
    let mut records = Vec::new();
    let mut poisoned = 0;
    for (i, e) in (0..).zip(&events) {
        records.push(BusRecord {
            partition: credence_proto::partition_of(&e.subject_id, partitions),
            payload: e.encode_to_vec(),
        });
        if i % POISON_EVERY == POISON_EVERY / 2 {
            poisoned += 1;
            records.push(BusRecord {
                partition: i % partitions,
                // Field 1 with wire type 7, which does not exist.
                payload: vec![0x0f, 0xff, 0xff],
            });
        }
    }
    stores.bus.append(records).await.unwrap();
    (events, poisoned)
}

/// Runs the pipeline over `stores` until it has committed all of the bus.
async fn score_all(stores: Stores) {
    let seed = RuleFile::example().unwrap();
    let catalog = Arc::new(Catalog::open(stores.clone(), &seed).await.unwrap());
    let (reporter, _) = tonic_health::server::health_reporter();
    let shared = Arc::new(Shared {
        progress: Arc::new(Progress::new(stores.bus.partitions())),
        stores,
        catalog,
        alerts: broadcast::channel(16).0,
        config: PipelineSection {
            micro_batch_events: MICRO_BATCH,
            ..PipelineSection::default()
        },
        graph: GraphSection::default(),
        health: Arc::new(Health::new(reporter).await),
    });
    let (stop, shutdown) = watch::channel(false);
    let pipeline = spawn(&shared, &shutdown).unwrap();
    let bus = &shared.stores.bus;
    let caught_up =
        || (0..bus.partitions()).all(|p| shared.progress.get(p) >= *bus.end(p).borrow());
    for _ in 0..3_000 {
        if caught_up() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(caught_up(), "the pipeline did not catch up within a minute");
    stop.send(true).unwrap();
    pipeline.await.unwrap();
}

/// Rows `sql` answers.
async fn rows(stores: &Stores, sql: &str) -> u64 {
    let limits = QueryLimits {
        max_rows: 100_000,
        timeout: Duration::from_secs(30),
    };
    stores.analytics.run_sql(sql, limits).await.unwrap().rows
}

/// Every acknowledged event archived and scored once, its changes stored once, every
/// unreadable record parked once, every snapshot equal to the pure engine's state, and
/// every partition committed to its end.
async fn assert_exactly_once(stores: &Stores, events: &[pb::Event], poisoned: u64) {
    let engine = RuleFile::example().unwrap().engine(1).unwrap();
    let mut pure = Scorer::new(engine);
    let mut out = Outcomes::default();
    let mut changes = 0;
    for e in events {
        out.clear();
        let outcome = pure.apply(&convert::event(e).unwrap(), &mut out);
        assert!(
            matches!(outcome, EventOutcome::Applied { .. }),
            "{}: {outcome:?}",
            e.event_id
        );
        changes += out.changes.len() as u64;
    }
    let n = events.len() as u64;
    // Cooldowns and caps hold many back; enough remain to be counted.
    assert!(changes > n / 4, "the events make score changes: {changes}");
    for (sql, expected) in [
        ("SELECT * FROM events", n),
        ("SELECT DISTINCT event_id FROM events", n),
        ("SELECT DISTINCT bus_partition, bus_offset FROM events", n),
        ("SELECT * FROM events WHERE applied", n),
        ("SELECT * FROM score_points", n),
        (
            "SELECT DISTINCT bus_partition, bus_offset FROM score_points",
            n,
        ),
        ("SELECT * FROM score_changes", changes),
        (
            "SELECT DISTINCT bus_partition, bus_offset, change_index FROM score_changes",
            changes,
        ),
        ("SELECT * FROM dead_letters", poisoned),
    ] {
        assert_eq!(rows(stores, sql).await, expected, "{sql}");
    }
    let subjects: Vec<String> = pure.states().map(|s| s.subject_id.clone()).collect();
    let stored = stores.snapshots.get_snapshots(&subjects).await.unwrap();
    for (id, snapshot) in subjects.iter().zip(stored) {
        let snapshot = snapshot.unwrap_or_else(|| panic!("{id} has no snapshot"));
        assert_eq!(Some(&snapshot.state), pure.state(id), "{id}");
    }
    for p in 0..stores.bus.partitions() {
        let end = *stores.bus.end(p).borrow();
        assert_eq!(stores.snapshots.committed_offset(p).await.unwrap(), end);
    }
}

/// Scores the bus with `Sequential` over embedded roles whose `target` writes fail
/// now and then, then checks nothing was lost or written twice.
async fn recovers(target: Write, failure: Failure) {
    let dir = tempfile::tempdir().unwrap();
    let real = tokio::task::block_in_place(|| Embedded::open(&EmbeddedOptions::new(dir.path())))
        .unwrap()
        .stores();
    let (events, poisoned) = fill_bus(&real).await;
    let faulty = Arc::new(Faulty {
        real: real.clone(),
        target,
        failure,
        calls: AtomicU32::new(0),
        failed: AtomicU32::new(0),
    });
    let mut stores = real.clone();
    stores.archive = faulty.clone();
    stores.series = faulty.clone();
    stores.snapshots = faulty.clone();
    stores.committer = Arc::new(Sequential(stores.clone()));
    score_all(stores).await;
    assert_eq!(
        faulty.failed.load(Ordering::SeqCst),
        FAILURES,
        "the {target:?} write failed as planned"
    );
    assert_exactly_once(&real, &events, poisoned).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_archive_write_is_retried_without_loss() {
    recovers(Write::Archive, Failure::Refused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_write_whose_reply_is_lost_is_not_archived_twice() {
    recovers(Write::Archive, Failure::WrittenThenFailed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dead_letter_write_after_the_archive_is_retried_without_loss() {
    recovers(Write::DeadLetters, Failure::Refused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_write_whose_reply_is_lost_parks_each_record_once() {
    recovers(Write::DeadLetters, Failure::WrittenThenFailed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_series_write_after_the_archive_is_retried_without_loss() {
    recovers(Write::Series, Failure::Refused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_write_whose_reply_is_lost_stores_each_point_and_change_once() {
    recovers(Write::Series, Failure::WrittenThenFailed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_snapshot_write_after_the_series_is_rescored_exactly_once() {
    recovers(Write::Snapshots, Failure::Refused).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_write_whose_reply_is_lost_resumes_from_the_new_offset() {
    recovers(Write::Snapshots, Failure::WrittenThenFailed).await;
}
