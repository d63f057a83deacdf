//! The pipeline follows the bus's ownership stream: a revoke stops the partition's worker
//! after the commit it has in flight and only then answers `done`; the partition is no
//! longer scored, lagged or reported; a new assignment claims a newer epoch and scores the
//! rest exactly once.

use parking_lot::Mutex;
use tokio::sync::Notify;

use credence_storage::Bus;

use super::*;

/// The wrapped bus's rebalance stream, handed out as the test drives it.
pub(super) struct Driven {
    inner: Arc<dyn Bus>,
    stream: Mutex<Option<mpsc::Receiver<Rebalance>>>,
}

impl Driven {
    /// `stores` with their bus wrapped, and the sending end of its rebalance stream.
    pub(super) fn wrap(mut stores: Stores) -> (Stores, mpsc::Sender<Rebalance>) {
        let (tx, rx) = mpsc::channel(4);
        stores.bus = Arc::new(Self {
            inner: Arc::clone(&stores.bus),
            stream: Mutex::new(Some(rx)),
        });
        (stores, tx)
    }
}

#[tonic::async_trait]
impl Bus for Driven {
    fn partitions(&self) -> u32 {
        self.inner.partitions()
    }
    async fn append(
        &self,
        records: Vec<BusRecord>,
    ) -> credence_storage::Result<Vec<credence_storage::Result<u64>>> {
        self.inner.append(records).await
    }
    async fn read(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> credence_storage::Result<Vec<(u64, Vec<u8>)>> {
        self.inner.read(partition, from, max).await
    }
    fn end(&self, partition: u32) -> watch::Receiver<u64> {
        self.inner.end(partition)
    }
    fn rebalances(&self) -> credence_storage::Result<mpsc::Receiver<Rebalance>> {
        self.stream
            .lock()
            .take()
            .ok_or_else(|| StorageError::Conflict("the rebalances were taken".into()))
    }
    fn health(&self) -> watch::Receiver<credence_storage::BusHealth> {
        self.inner.health()
    }
}

/// One partition's batch as the store took it.
#[derive(Clone, Copy, Debug)]
struct Committed {
    partition: u32,
    epoch: u64,
    first_offset: u64,
    next_offset: u64,
}

/// The real committer, recording every batch it wrote. It can hold the next call that
/// carries a partition's batch until released, and refuse every call that carries one.
struct Recording {
    inner: Arc<dyn Committer>,
    committed: Mutex<Vec<Committed>>,
    /// Calls carrying a batch of partition 1.
    attempts_of_1: AtomicU32,
    /// The partition whose next commit waits for `release`.
    hold: Mutex<Option<u32>>,
    /// The batch held, once it is.
    held: Mutex<Option<Committed>>,
    holding: Notify,
    release: Notify,
    /// The partition whose commits all fail.
    failing: Option<u32>,
}

impl Recording {
    fn new(stores: &Stores, failing: Option<u32>) -> Arc<Self> {
        Arc::new(Self {
            inner: Arc::clone(&stores.committer),
            committed: Mutex::new(Vec::new()),
            attempts_of_1: AtomicU32::new(0),
            hold: Mutex::new(None),
            held: Mutex::new(None),
            holding: Notify::new(),
            release: Notify::new(),
            failing,
        })
    }

    fn of(&self, partition: u32) -> Vec<Committed> {
        let committed = self.committed.lock();
        committed
            .iter()
            .filter(|c| c.partition == partition)
            .copied()
            .collect()
    }
}

fn committed(b: &PartitionCommit) -> Committed {
    Committed {
        partition: b.partition,
        epoch: b.epoch,
        first_offset: b.first_offset,
        next_offset: b.next_offset,
    }
}

#[tonic::async_trait]
impl Committer for Recording {
    async fn commit(
        &self,
        batches: Vec<PartitionCommit>,
        at: Timestamp,
    ) -> credence_storage::Result<()> {
        if batches.iter().any(|b| b.partition == 1) {
            self.attempts_of_1.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(p) = self
            .failing
            .filter(|p| batches.iter().any(|b| b.partition == *p))
        {
            return Err(StorageError::Unavailable(format!(
                "injected: partition {p} cannot be written"
            )));
        }
        let held = {
            let mut hold = self.hold.lock();
            let batch = hold.and_then(|p| batches.iter().find(|b| b.partition == p));
            batch.map(|b| {
                *hold = None;
                committed(b)
            })
        };
        if let Some(held) = held {
            *self.held.lock() = Some(held);
            self.holding.notify_one();
            self.release.notified().await;
        }
        let records: Vec<Committed> = batches.iter().map(committed).collect();
        self.inner.commit(batches, at).await?;
        self.committed.lock().extend(records);
        Ok(())
    }
}

/// A data directory of two partitions.
fn open_two() -> (tempfile::TempDir, Embedded) {
    let dir = tempfile::tempdir().unwrap();
    let mut options = EmbeddedOptions::new(dir.path());
    options.partitions = 2;
    options.sync = false;
    let embedded = tokio::task::block_in_place(|| Embedded::open(&options)).unwrap();
    (dir, embedded)
}

/// Bounds a wait that only a defect makes endless, so it fails instead of hanging.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .unwrap_or_else(|_| panic!("gave up waiting for {what}"))
}

impl Running {
    fn partition_caught_up(&self, p: u32) -> bool {
        self.shared.progress.get(p) >= *self.shared.stores.bus.end(p).borrow()
    }

    async fn revoke(&self, partitions: Vec<u32>) -> oneshot::Receiver<()> {
        let (done, answer) = oneshot::channel();
        self.rebalances
            .send(Rebalance::Revoked { partitions, done })
            .await
            .unwrap();
        answer
    }

    async fn assign(&self, partitions: Vec<u32>) {
        self.rebalances
            .send(Rebalance::Assigned(partitions))
            .await
            .unwrap();
    }
}

async fn committed_offset(stores: &Stores, p: u32) -> u64 {
    stores.snapshots.committed_offset(p).await.unwrap()
}

/// Every subject's snapshot equals the engine run over its events alone, in bus order.
async fn assert_snapshots_equal_a_pure_engine_run(running: &Running, events: u32) {
    let live = running.shared.catalog.live();
    let empty = SubjectContext::default();
    let mut out = Outcomes::default();
    let mut expected: BTreeMap<String, SubjectState> = BTreeMap::new();
    for i in 0..events {
        let event = pb::Event::decode(record(i, 2).payload.as_slice()).unwrap();
        let event = convert::event(&event).unwrap();
        let state = match expected.entry(event.subject_id.clone()) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => v.insert(
                live.engine
                    .new_subject(&event.subject_id, event.occurred_at)
                    .unwrap(),
            ),
        };
        out.clear();
        live.engine.apply(state, &event, &empty, &mut out);
    }
    let ids: Vec<String> = expected.keys().cloned().collect();
    let stored = running.shared.stores.snapshots.get_snapshots(&ids).await;
    for (snapshot, (id, want)) in stored.unwrap().into_iter().zip(&expected) {
        let snapshot = snapshot.unwrap_or_else(|| panic!("{id} has no snapshot"));
        assert_eq!(&snapshot.state, want, "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_partition_stops_after_its_commit_and_a_new_assignment_scores_the_rest_once() {
    let (_dir, embedded) = open_two();
    let mut stores = embedded.stores();
    let on: Vec<u32> = (0..7).map(|i| record(i, 2).partition).collect();
    assert!(
        on.contains(&0) && on.contains(&1),
        "subjects on both partitions: {on:?}"
    );
    let recording = Recording::new(&stores, None);
    stores.committer = Arc::clone(&recording) as Arc<dyn Committer>;
    // Small batches, so a revoke finds more of the partition waiting than the batch in flight.
    let config = PipelineSection {
        micro_batch_events: 5,
        ..PipelineSection::default()
    };
    let running = launch(stores.clone(), config.clone()).await;
    let stores = running.shared.stores.clone();
    running.assign(vec![0, 1]).await;
    append(&stores, 0..100).await;
    running
        .wait_for("both partitions to catch up", |r| {
            r.partition_caught_up(0) && r.partition_caught_up(1)
        })
        .await;

    // Partition 1 is revoked while the committer holds one of its batches.
    *recording.hold.lock() = Some(1);
    append(&stores, 100..200).await;
    within(
        "a batch of partition 1 to be held",
        recording.holding.notified(),
    )
    .await;
    let held = recording.held.lock().unwrap();
    assert!(
        held.next_offset < *stores.bus.end(1).borrow(),
        "more waits: {held:?}"
    );
    let mut done = running.revoke(vec![1]).await;
    // Its worker is still waiting for that commit, so the revoke cannot be answered yet.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(done.try_recv(), Err(oneshot::error::TryRecvError::Empty));
    recording.release.notify_one();
    within("the revoke to be answered", done).await.unwrap();
    // The batch in flight was committed, and no other was started.
    let stopped_at = committed_offset(&stores, 1).await;
    assert_eq!(stopped_at, held.next_offset);
    let commits_of_1 = recording.of(1);

    // Events of partition 1 now wait for its next owner: nothing of them is scored, and
    // ingestion does not count them as this node's lag.
    append(&stores, 200..300).await;
    running
        .wait_for("partition 0 to catch up", |r| r.partition_caught_up(0))
        .await;
    assert_eq!(committed_offset(&stores, 1).await, stopped_at);
    assert_eq!(recording.of(1).len(), commits_of_1.len());
    assert_eq!(
        rows(&stores, "SELECT * FROM events WHERE bus_partition = 1").await,
        stopped_at
    );
    assert!(*stores.bus.end(1).borrow() > stopped_at);
    let ingest = crate::ingest::Ingest::open(
        stores.clone(),
        Arc::clone(&running.shared.catalog),
        crate::config::IngestSection::default(),
        config,
        Arc::clone(&running.shared.progress),
        Arc::clone(&running.shared.health),
    )
    .await
    .unwrap();
    assert_eq!(ingest.lag(), 0, "partition 1 is not this node's");
    assert_eq!(running.overall_health().await, ServingStatus::Serving);

    // Assigned again, partition 1 is claimed with a newer epoch and scored from where it
    // stopped: the batches of both owners tile its offsets from 0 to its end.
    running.assign(vec![1]).await;
    running
        .wait_for("partition 1 to catch up", |r| r.partition_caught_up(1))
        .await;
    let all = recording.of(1);
    let (before, after) = all.split_at(commits_of_1.len());
    let old_epoch = before.iter().map(|c| c.epoch).max().unwrap();
    assert!(
        !after.is_empty() && after.iter().all(|c| c.epoch > old_epoch),
        "{all:?}"
    );
    let mut next = 0;
    for c in &all {
        assert_eq!(c.first_offset, next, "{all:?}");
        next = c.next_offset;
    }
    assert_eq!(next, *stores.bus.end(1).borrow());
    assert_scored_exactly_once(&stores, 300).await;
    assert_snapshots_equal_a_pure_engine_run(&running, 300).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_worker_whose_partition_is_revoked_stops_restarting_and_clears_its_health() {
    let (_dir, embedded) = open_two();
    let mut stores = embedded.stores();
    let recording = Recording::new(&stores, Some(1));
    stores.committer = Arc::clone(&recording) as Arc<dyn Committer>;
    let running = launch(stores, PipelineSection::default()).await;
    let stores = running.shared.stores.clone();
    running.assign(vec![0, 1]).await;
    let only_1: Vec<BusRecord> = (0..50)
        .map(|i| record(i, 2))
        .filter(|r| r.partition == 1)
        .collect();
    stores.bus.append(only_1).await.unwrap();
    running
        .wait_for("partition 1's worker to be reported failing", |r| {
            r.shared.health.is_failing(Component::Worker(1))
        })
        .await;

    let done = running.revoke(vec![1]).await;
    within("the revoke to be answered", done).await.unwrap();
    let attempts = recording.attempts_of_1.load(Ordering::SeqCst);
    assert!(!running.shared.health.is_failing(Component::Worker(1)));

    // Partition 0 goes on (and its commits bring the committer back); partition 1's worker
    // does not start over, though its events wait.
    append(&stores, 50..100).await;
    running
        .wait_for(
            "partition 0 to catch up and the committer to recover",
            |r| r.partition_caught_up(0) && !r.shared.health.is_failing(Component::Committer),
        )
        .await;
    assert_eq!(recording.attempts_of_1.load(Ordering::SeqCst), attempts);
    assert_eq!(committed_offset(&stores, 1).await, 0);
    assert_eq!(running.overall_health().await, ServingStatus::Serving);
    running.stop().await;
}
