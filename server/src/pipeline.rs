//! The scoring pipeline: one worker per bus partition this node owns, and one committer.
//!
//! The bus says which partitions those are (`Bus::rebalances`): a worker starts when its
//! partition is assigned and stops when it is revoked, after the commit it has in flight;
//! only then is the revoke answered, so the next owner starts after this one stopped writing.
//!
//! A worker reads a micro-batch of events from its partition, scores them in bus order with
//! the live engine against its cached subject states, and hands the result to the
//! committer, which writes every ready batch of every partition in one call: the archived
//! events, the score points and changes, and last the changed snapshots together with the
//! offset they reflect (one write per changed subject per micro-batch). The embedded backend
//! does all of it in one transaction; others write role by role in that order.
//!
//! On start (and after any failure) a worker claims its partition (a new epoch, and the
//! committed offset to start from), empties its state cache and scores again from there.
//! Rows a crash left past the committed offset are not deleted: archive and series rows are
//! keyed by bus position, so scoring them again writes nothing twice. Every commit carries
//! the epoch and the offset it starts at; a worker whose commit is fenced (another claimed
//! the partition) stops. States are read on demand: the subjects of a micro-batch that are
//! not in the worker's bounded cache come from one `get_snapshots` call.

use std::sync::Arc;
use std::time::Duration;

use credence_proto::v1 as pb;
use std::collections::BTreeMap;

use credence_scorer::{EventOutcome, Outcomes, SubjectContext, SubjectState, Timestamp};
use credence_storage::{
    ArchivedEvent, ChangedState, Claim, DeadLetter, ListEntry, PartitionCommit, Rebalance,
    ReceivedEvent, ScorePoint, StorageError, Stores, SubjectProfile,
};
use futures::FutureExt as _;
use prost::Message as _;
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::Instrument as _;

use crate::association::{self, Reach};
use crate::catalog::Catalog;
use crate::config::{GraphSection, PipelineSection};
use crate::convert;
use crate::health::{Component, Health};
use crate::ingest::Progress;
use crate::metrics::Metrics;

/// What every worker shares.
pub struct Shared {
    /// The stores.
    pub stores: Stores,
    /// The live rules and config.
    pub catalog: Arc<Catalog>,
    /// Committed offsets, for ingestion's backpressure.
    pub progress: Arc<Progress>,
    /// Alerts of committed batches, for `WatchAlerts`.
    pub alerts: broadcast::Sender<pb::Alert>,
    /// Pipeline settings.
    pub config: PipelineSection,
    /// Association settings.
    pub graph: GraphSection,
    /// Where the committer and the workers report whether they work.
    pub health: Arc<Health>,
}

/// Consecutive failures of the committer or of one worker past which health says
/// NOT_SERVING: a single failure is retried quietly, a loop is not.
const FAILURES_BEFORE_NOT_SERVING: u32 = 3;

/// Starts the committer and, as the bus hands out partitions (`Bus::rebalances`), a worker
/// per assigned partition; stops a partition's worker when the bus revokes it, and every
/// worker when `shutdown` turns true (the committer once they are gone). The handle ends
/// when all of them have stopped. Fails when the bus's rebalance stream cannot be had.
pub fn spawn(
    shared: &Arc<Shared>,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let rebalances = shared.stores.bus.rebalances().map_err(|e| {
        anyhow::anyhow!("taking the bus's partition assignments for the pipeline: {e}")
    })?;
    let queue = spawn_committer(shared);
    Ok(tokio::spawn(supervise(
        Arc::clone(shared),
        queue,
        rebalances,
        shutdown.clone(),
    )))
}

/// A running partition worker, and how to stop it.
struct Worker {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Follows the bus's assignments until shutdown (or until the bus stops handing them out,
/// when this node owns nothing any more), then stops every worker.
async fn supervise(
    shared: Arc<Shared>,
    queue: CommitQueue,
    mut rebalances: mpsc::Receiver<Rebalance>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut workers: BTreeMap<u32, Worker> = BTreeMap::new();
    while !*shutdown.borrow_and_update() {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            rebalance = rebalances.recv() => match rebalance {
                Some(Rebalance::Assigned(partitions)) => {
                    tracing::info!(?partitions, "partitions assigned");
                    for p in partitions {
                        if workers.get(&p).is_some_and(|w| !w.task.is_finished()) {
                            tracing::warn!(partition = p,
                                "partition assigned again without a revoke; its worker goes on");
                            continue;
                        }
                        workers.insert(p, start_worker(&shared, &queue, p));
                    }
                }
                Some(Rebalance::Revoked { partitions, done }) => {
                    tracing::info!(?partitions, "partitions revoked; stopping their workers");
                    let stopping = partitions.iter().filter_map(|p| workers.remove_entry(p));
                    stop_workers(&shared, stopping.collect()).await;
                    // The revoke waits for this: the next owner starts only now. Nobody
                    // waiting any more is fine.
                    let _ = done.send(());
                }
                None => {
                    tracing::warn!("the bus stopped assigning partitions; stopping every worker");
                    break;
                }
            },
        }
    }
    stop_workers(&shared, std::mem::take(&mut workers).into_iter().collect()).await;
}

/// Starts the worker of partition `p`, which this node now owns.
fn start_worker(shared: &Arc<Shared>, queue: &CommitQueue, p: u32) -> Worker {
    let (stop, stopped) = watch::channel(false);
    shared.progress.set_owned(p, true);
    let task = tokio::spawn(run_worker(Arc::clone(shared), queue.clone(), p, stopped));
    Worker { stop, task }
}

/// Tells the workers to stop and waits until all have. A worker finishes the commit it has
/// in flight (the committer may be writing it already) and starts no other micro-batch.
/// Their partitions are no longer this node's: their lag stops counting for backpressure,
/// their lag metric goes, and a worker that was failing no longer makes health fail.
async fn stop_workers(shared: &Shared, workers: Vec<(u32, Worker)>) {
    for (_, w) in &workers {
        // A worker that already ended (fenced) has dropped its receiver: nothing to tell.
        let _ = w.stop.send(true);
    }
    for (p, w) in workers {
        if let Err(e) = w.task.await {
            tracing::error!(partition = p, error = %e, "pipeline worker panicked");
        }
        shared.progress.set_owned(p, false);
        let _ = Metrics::global()
            .pipeline_lag
            .remove_label_values(&[p.to_string().as_str()]);
        shared.health.working(Component::Worker(p)).await;
    }
}

/// Runs the worker of partition `p` until `stop` turns true, starting it over after a
/// failure (from the committed offset), but not once it is told to stop nor once another
/// worker has claimed the partition.
async fn run_worker(
    shared: Arc<Shared>,
    queue: CommitQueue,
    p: u32,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        let mut progressed = false;
        match run_partition(&shared, &queue, p, &mut stop, &mut progressed).await {
            Ok(()) => return,
            // A worker failing over and over must still stop on shutdown or revoke.
            Err(_) if *stop.borrow() => return,
            // Another worker owns the partition now: retrying would only fence it in turn,
            // and its lag is the new owner's to count.
            Err(e) if e.downcast_ref::<Fenced>().is_some() => {
                tracing::warn!(partition = p, error = %format!("{e:#}"),
                    "pipeline worker lost its partition; stopping");
                shared.progress.set_owned(p, false);
                return;
            }
            Err(e) => {
                let error = format!("{e:#}");
                tracing::error!(partition = p, %error,
                    "pipeline worker failed; restarting from the last commit");
                failures = if progressed { 1 } else { failures + 1 };
                if failures >= FAILURES_BEFORE_NOT_SERVING {
                    shared
                        .health
                        .failing(
                            Component::Worker(p),
                            format!("failed {failures} times in a row: {error}"),
                        )
                        .await;
                }
                // A revoke must not wait out the pause, nor be followed by a new claim.
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// Recovers a partition, then scores and commits until `stop` turns true: the micro-batch in
/// flight is committed (or dropped before it reaches the committer), no other is started.
async fn run_partition(
    shared: &Shared,
    queue: &CommitQueue,
    p: u32,
    stop: &mut watch::Receiver<bool>,
    progressed: &mut bool,
) -> anyhow::Result<()> {
    let stores = &shared.stores;
    let claim = stores.snapshots.claim(p).await?;
    let mut next = claim.next_offset;
    tracing::info!(
        partition = p,
        epoch = claim.epoch,
        offset = next,
        "claimed partition"
    );
    let partitions = stores.bus.partitions().max(1) as usize;
    let mut states = StateCache::new((shared.config.state_cache_subjects / partitions).max(1));
    shared.progress.set(p, next);
    let mut end = stores.bus.end(p);
    let lag = Metrics::global()
        .pipeline_lag
        .with_label_values(&[p.to_string().as_str()]);
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        loop {
            let available = *end.borrow_and_update();
            #[allow(clippy::cast_possible_wrap, reason = "lags are far below i64::MAX")]
            lag.set(available.saturating_sub(next) as i64);
            if available > next {
                break;
            }
            tokio::select! {
                changed = end.changed() => changed?,
                _ = stop.changed() => return Ok(()),
            }
            if *stop.borrow() {
                return Ok(());
            }
        }
        let records = stores
            .bus
            .read(p, next, shared.config.micro_batch_events)
            .instrument(tracing::debug_span!("read", partition = p, from = next))
            .await?;
        let Some(&(last, _)) = records.last() else {
            continue;
        };
        let batch = score(shared, p, &mut states, records)
            .instrument(tracing::debug_span!(
                "score",
                partition = p,
                from = next,
                to = last
            ))
            .await?;
        // Told to stop while scoring: nothing of this batch is written yet, so dropping it
        // lets the partition go sooner; the next owner scores it from the committed offset.
        if *stop.borrow() {
            return Ok(());
        }
        let fence = Claim {
            epoch: claim.epoch,
            next_offset: next,
        };
        commit(queue, p, fence, last + 1, batch, &states)
            .instrument(tracing::debug_span!(
                "commit",
                partition = p,
                next_offset = last + 1
            ))
            .await?;
        // Only committed states are dropped: what is evicted is in the snapshots.
        states.shrink();
        next = last + 1;
        shared.progress.set(p, next);
        if !*progressed {
            *progressed = true;
            shared.health.working(Component::Worker(p)).await;
        }
    }
}

/// The writes of one scored micro-batch.
#[derive(Default)]
struct Batch {
    archived: Vec<ArchivedEvent>,
    points: Vec<ScorePoint>,
    changes: Vec<(u64, credence_scorer::ScoreChange)>,
    alerts: Vec<credence_scorer::Alert>,
    /// The changed subjects, each with the profile region its snapshot is listed under.
    changed: FxHashMap<String, String>,
    received: Vec<Timestamp>,
    dead_letters: Vec<DeadLetter>,
}

/// A worker's subject states: at most `capacity` between micro-batches, the least recently
/// used dropped first.
struct StateCache {
    capacity: usize,
    /// The states, each with the tick of its last use.
    states: FxHashMap<String, (SubjectState, u64)>,
    /// Subjects by the tick of their last use.
    by_use: BTreeMap<u64, String>,
    tick: u64,
}

impl StateCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            states: FxHashMap::default(),
            by_use: BTreeMap::new(),
            tick: 0,
        }
    }

    /// Marks a subject used now; whether its state is here.
    fn touch(&mut self, id: &str) -> bool {
        let Some((_, used)) = self.states.get_mut(id) else {
            return false;
        };
        self.tick += 1;
        if let Some(owner) = self.by_use.remove(used) {
            self.by_use.insert(self.tick, owner);
        }
        *used = self.tick;
        true
    }

    fn insert(&mut self, state: SubjectState) {
        self.tick += 1;
        let id = state.subject_id.clone();
        if let Some((_, used)) = self.states.insert(id.clone(), (state, self.tick)) {
            self.by_use.remove(&used);
        }
        self.by_use.insert(self.tick, id);
    }

    fn get(&self, id: &str) -> Option<&SubjectState> {
        self.states.get(id).map(|(s, _)| s)
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut SubjectState> {
        self.states.get_mut(id).map(|(s, _)| s)
    }

    /// Drops the least recently used states past the capacity.
    fn shrink(&mut self) {
        while self.states.len() > self.capacity {
            let Some((_, id)) = self.by_use.pop_first() else {
                break;
            };
            self.states.remove(&id);
        }
    }
}

/// A commit refused because another worker claimed the partition: the worker stops.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Fenced(String);

/// Reads into the cache the states of the batch's subjects that it lacks, in one call.
async fn load_missing(
    shared: &Shared,
    states: &mut StateCache,
    events: &[(u64, ReceivedEvent)],
) -> anyhow::Result<()> {
    let mut missing: Vec<String> = Vec::new();
    let mut seen = FxHashSet::default();
    for (_, e) in events {
        if seen.insert(e.subject_id.as_str()) && !states.touch(&e.subject_id) {
            missing.push(e.subject_id.clone());
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    for snapshot in shared
        .stores
        .snapshots
        .get_snapshots(&missing)
        .await?
        .into_iter()
        .flatten()
    {
        states.insert(snapshot.state);
    }
    Ok(())
}

/// Scores a micro-batch against the cached states.
async fn score(
    shared: &Shared,
    p: u32,
    states: &mut StateCache,
    records: Vec<(u64, Vec<u8>)>,
) -> anyhow::Result<Batch> {
    let live = shared.catalog.live();
    let engine = &live.engine;
    let mut events = Vec::with_capacity(records.len());
    let mut dead_letters = Vec::new();
    for (offset, bytes) in records {
        let decoded = pb::Event::decode(bytes.as_slice())
            .map_err(|e| format!("not an encoded event: {e}"))
            .and_then(|e| {
                convert::received_event(&e)
                    .map_err(|e| format!("an event whose times cannot be stored: {e}"))
            });
        match decoded {
            Ok(event) => events.push((offset, event)),
            // Ingestion only appends events it encoded and checked, so this is a record
            // written by something else (or damaged in a way the bus checksum missed).
            // Parked, it stays readable for a person; stopping here would stop the partition
            // for good.
            Err(reason) => {
                tracing::error!(partition = p, offset, error = %reason,
                    "an unreadable bus record is parked as a dead letter");
                dead_letters.push(DeadLetter {
                    partition: p,
                    offset,
                    reason,
                    payload: bytes,
                });
            }
        }
    }
    load_missing(shared, states, &events).await?;
    // Only when some rule reads it: the association costs a graph walk per subject.
    let baseline = live.uses_association.then(|| engine.config().baseline);
    let contexts = contexts(shared, &events, baseline).await?;
    let mut batch = Batch {
        dead_letters,
        ..Batch::default()
    };
    let empty = SubjectContext::default();
    let mut out = Outcomes::default();
    for (offset, event) in events {
        if let Some(t) = event.received_at {
            batch.received.push(t);
        }
        let applied = match convert::engine_event(&event) {
            // Ingestion validated it; an event the engine cannot read is archived unapplied.
            Err(e) => {
                tracing::warn!(event_id = %event.event_id, error = %e, "unscorable event");
                false
            }
            Ok(domain) => {
                let ctx = contexts.get(domain.subject_id.as_str()).unwrap_or(&empty);
                let unknown = states.get(&domain.subject_id).is_none();
                if let Some(new) = unknown
                    .then(|| engine.new_subject(&domain.subject_id, domain.occurred_at))
                    .flatten()
                {
                    states.insert(new);
                }
                let region = ctx
                    .profile
                    .as_ref()
                    .and_then(|pr| pr.region.clone())
                    .unwrap_or_default();
                let state = states.get_mut(&domain.subject_id);
                match state {
                    None => false,
                    Some(state) => {
                        out.clear();
                        // A duplicate (one another node accepted too) or an event older than
                        // the subject's dedup window is archived unapplied.
                        let outcome = engine.apply(state, &domain, ctx, &mut out);
                        let applied = matches!(outcome, EventOutcome::Applied { .. });
                        if applied {
                            batch.points.push(ScorePoint {
                                subject_id: domain.subject_id.clone(),
                                event_id: domain.event_id.clone(),
                                event_type: domain.event_type.clone(),
                                region: region.clone(),
                                at: domain.occurred_at,
                                score: state.score,
                                tier: state.tier.to_string(),
                                // As the contract defines it: the rules' deltas, not decay.
                                delta: out.changes.iter().map(|c| c.delta).sum(),
                                #[allow(
                                    clippy::cast_possible_truncation,
                                    reason = "rules per event"
                                )]
                                changes: out.changes.len() as u32,
                                partition: p,
                                offset,
                            });
                            batch.changed.insert(domain.subject_id.clone(), region);
                            batch
                                .changes
                                .extend(out.changes.drain(..).map(|c| (offset, c)));
                            batch.alerts.append(&mut out.alerts);
                        }
                        applied
                    }
                }
            }
        };
        batch.archived.push(ArchivedEvent {
            event,
            partition: p,
            offset,
            applied,
        });
    }
    Ok(batch)
}

/// The context of every subject of the batch: profile, list entries, and the association
/// when `association_baseline` is given (the config's baseline; only when a rule reads it).
async fn contexts(
    shared: &Shared,
    events: &[(u64, ReceivedEvent)],
    association_baseline: Option<f64>,
) -> anyhow::Result<FxHashMap<String, SubjectContext>> {
    let mut ids: Vec<String> = events.iter().map(|(_, e)| e.subject_id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let stores = &shared.stores;
    let profiles = stores.profiles.get_profiles(&ids).await?;
    let lists = stores.lists.entries_for(&ids).await?;
    let mut out = FxHashMap::default();
    for ((id, profile), entries) in ids.into_iter().zip(profiles).zip(lists) {
        let association = match association_baseline {
            Some(baseline) => {
                let reach = Reach {
                    depth: shared.graph.association_depth,
                    kinds: &[],
                    attenuation: shared.graph.association_attenuation,
                    baseline,
                };
                association::compute(stores, &id, reach).await?.0
            }
            None => None,
        };
        let ctx = SubjectContext {
            profile: profile.as_ref().map(SubjectProfile::for_rules),
            lists: entries.iter().map(ListEntry::for_rules).collect(),
            association,
        };
        out.insert(id, ctx);
    }
    Ok(out)
}

/// A scored micro-batch on its way to the committer, and where to say it is done.
struct CommitRequest {
    commit: PartitionCommit,
    alerts: Vec<credence_scorer::Alert>,
    received: Vec<Timestamp>,
    done: oneshot::Sender<Result<(), CommitFailure>>,
}

/// Why a commit failed, as the worker needs to know it.
#[derive(Clone, Debug)]
enum CommitFailure {
    /// The partition has a newer owner.
    Fenced(String),
    /// Anything else: the worker starts over from the committed offset. `panicked` says the
    /// committer itself broke (a defect), not the store.
    Failed { message: String, panicked: bool },
}

impl From<StorageError> for CommitFailure {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Fenced(m) => Self::Fenced(m),
            other => Self::Failed {
                message: other.to_string(),
                panicked: false,
            },
        }
    }
}

/// Sends a worker's batches to the committer.
#[derive(Clone)]
pub struct CommitQueue(mpsc::Sender<CommitRequest>);

/// Starts the committer: it takes every batch the workers have ready (at most one per
/// partition, as each worker waits for its answer) and writes them in one call, so the
/// stores pay one commit for all partitions instead of one per partition and role.
///
/// A commit that panics is caught: its workers are told it failed (they restart from the
/// committed offsets), health says NOT_SERVING until a commit succeeds again, and the
/// committer goes on with the next batches. Should the task end any other way while
/// workers still send to it, health says so too.
pub fn spawn_committer(shared: &Arc<Shared>) -> CommitQueue {
    let (tx, mut rx) = mpsc::channel::<CommitRequest>(256);
    let task = tokio::spawn({
        let shared = Arc::clone(shared);
        async move {
            let mut failures = 0u32;
            let mut pending = Vec::new();
            while let Some(first) = rx.recv().await {
                pending.push(first);
                while let Ok(more) = rx.try_recv() {
                    pending.push(more);
                }
                let requests: Vec<CommitRequest> = std::mem::take(&mut pending);
                let committed = commit_together(&shared, requests)
                    .instrument(tracing::debug_span!("commit_together"))
                    .await;
                match committed {
                    Ok(()) => {
                        failures = 0;
                        shared.health.working(Component::Committer).await;
                    }
                    Err(reason) => {
                        failures += 1;
                        // A panic is a defect, not a passing fault: say so at once.
                        if failures >= FAILURES_BEFORE_NOT_SERVING || reason.panicked {
                            shared
                                .health
                                .failing(Component::Committer, reason.message)
                                .await;
                        }
                    }
                }
            }
        }
    });
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        // The loop above ends only when every worker has dropped its queue (shutdown).
        if let Err(e) = task.await {
            shared
                .health
                .failing(Component::Committer, format!("the committer stopped: {e}"))
                .await;
        }
    });
    CommitQueue(tx)
}

/// Why the committer (not a fenced worker) failed a round, for health.
struct CommitterFault {
    message: String,
    panicked: bool,
}

async fn commit_together(
    shared: &Shared,
    requests: Vec<CommitRequest>,
) -> Result<(), CommitterFault> {
    let metrics = Metrics::global();
    let started = std::time::Instant::now();
    let mut batches = Vec::with_capacity(requests.len());
    let mut rest = Vec::with_capacity(requests.len());
    for r in requests {
        // What is reported once the batch is durable: its size, dead letters and alerts.
        let counts = (r.commit.events.len(), r.commit.dead_letters.len());
        batches.push(r.commit);
        rest.push((counts, r.alerts, r.received, r.done));
    }
    let results = commit_batches(shared, batches).await;
    let failure = results.iter().find_map(|r| match r {
        Err(CommitFailure::Failed { message, panicked }) => Some(CommitterFault {
            message: message.clone(),
            panicked: *panicked,
        }),
        _ => None,
    });
    if let Some(fault) = &failure {
        tracing::error!(error = %fault.message, batches = rest.len(), "commit failed");
    }
    let took = started.elapsed();
    let done_at = Timestamp::now().nanos();
    let mut committed = 0;
    for (((events, dead_letters), alerts, received, done), result) in rest.into_iter().zip(results)
    {
        // Each batch that is durable is reported, whatever became of the others of its
        // round (a fenced partition's batch fails alone).
        if result.is_ok() {
            committed += events;
            metrics.events_scored.inc_by(events as u64);
            metrics.dead_letters.inc_by(dead_letters as u64);
            #[allow(clippy::cast_precision_loss, reason = "histogram observations")]
            {
                metrics.batch_size.observe(received.len() as f64);
                for r in &received {
                    let seconds = (done_at - r.nanos()) as f64 / 1e9;
                    metrics.ingest_to_snapshot.observe(seconds.max(0.0));
                }
            }
            for alert in &alerts {
                // No watcher is fine: alerts are also derivable from the score history.
                let _ = shared.alerts.send(convert::alert_to_pb(alert));
            }
        }
        // A worker that went away restarts from the committed offset anyway.
        let _ = done.send(result);
    }
    if failure.is_none() {
        metrics.commit_seconds.observe(took.as_secs_f64());
        tracing::debug!(events = committed, ?took, "committed micro-batches");
    }
    failure.map_or(Ok(()), Err)
}

/// Commits the batches in one call, and answers per batch. A fenced call writes nothing;
/// as one partition's new owner must not stop the others, its batches are then committed
/// one by one, so each worker hears its own answer.
async fn commit_batches(
    shared: &Shared,
    batches: Vec<PartitionCommit>,
) -> Vec<Result<(), CommitFailure>> {
    let n = batches.len();
    let retry = (n > 1).then(|| batches.clone());
    match commit_guarded(shared, batches).await {
        Ok(()) => vec![Ok(()); n],
        Err(CommitFailure::Fenced(_)) if retry.is_some() => {
            let mut results = Vec::with_capacity(n);
            for b in retry.into_iter().flatten() {
                results.push(commit_guarded(shared, vec![b]).await);
            }
            results
        }
        Err(e) => vec![Err(e); n],
    }
}

/// One committer call, with a panic caught and reported as a failure of the committer: the
/// workers start over from the committed offsets instead of waiting forever.
async fn commit_guarded(
    shared: &Shared,
    batches: Vec<PartitionCommit>,
) -> Result<(), CommitFailure> {
    let commit = shared.stores.committer.commit(batches, Timestamp::now());
    match std::panic::AssertUnwindSafe(commit).catch_unwind().await {
        Ok(result) => result.map_err(CommitFailure::from),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(CommitFailure::Failed {
                message: format!("the committer panicked: {what}"),
                panicked: true,
            })
        }
    }
}

/// Hands a scored batch to the committer and waits until it is durable.
async fn commit(
    queue: &CommitQueue,
    p: u32,
    fence: Claim,
    next_offset: u64,
    batch: Batch,
    states: &StateCache,
) -> anyhow::Result<()> {
    let changed: Vec<ChangedState> = batch
        .changed
        .into_iter()
        .filter_map(|(id, region)| {
            states.get(&id).map(|state| ChangedState {
                state: state.clone(),
                region,
            })
        })
        .collect();
    let (done, answer) = oneshot::channel();
    let request = CommitRequest {
        commit: PartitionCommit {
            partition: p,
            epoch: fence.epoch,
            first_offset: fence.next_offset,
            next_offset,
            events: batch.archived,
            points: batch.points,
            changes: batch.changes,
            states: changed,
            dead_letters: batch.dead_letters,
        },
        alerts: batch.alerts,
        received: batch.received,
        done,
    };
    queue
        .0
        .send(request)
        .await
        .map_err(|_| anyhow::anyhow!("the committer has stopped"))?;
    match answer
        .await
        .map_err(|_| anyhow::anyhow!("the committer has stopped"))?
    {
        Ok(()) => Ok(()),
        Err(CommitFailure::Fenced(m)) => Err(Fenced(m).into()),
        Err(CommitFailure::Failed { message, .. }) => {
            Err(anyhow::anyhow!("committing partition {p}: {message}"))
        }
    }
}

#[cfg(test)]
mod tests {
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
        let at =
            convert::timestamp_to_pb(Timestamp::from_unix_seconds(1_700_000_000 + i64::from(i)));
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
            tokio::task::block_in_place(|| Embedded::open(&EmbeddedOptions::new(dir.path())))
                .unwrap();
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
            rows(&stores, &format!(
                "SELECT * FROM dead_letters WHERE bus_partition = {poisoned} AND payload_bytes = 3 \
                 AND reason LIKE 'not an encoded event%'"
            ))
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
}

/// Faults between the role writes of the role-by-role committer ([`credence_storage::Sequential`])
/// over the real embedded stores: the k-th write of one role (archive, dead letters, series,
/// snapshots with the offset) fails, refused before writing or after writing (a lost reply),
/// and the pipeline recovers from the committed offsets with every event scored exactly once.
#[cfg(test)]
mod role_faults {
    use std::sync::atomic::{AtomicU32, Ordering};

    use credence_scorer::{Outcomes, RuleFile, ScoreChange, Scorer};
    use credence_storage::embedded::{Embedded, EmbeddedOptions};
    use credence_storage::{
        AggregateQuery, Archive, BusRecord, EventFilter, Page, Paged, QueryLimits, Result,
        Sequential, Series, Snapshots, StoredSnapshot, SubjectFilter, TimeRange,
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
        async fn list_events(
            &self,
            filter: &EventFilter,
            page: &Page,
        ) -> Result<Paged<ArchivedEvent>> {
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
        async fn get_snapshots(
            &self,
            subject_ids: &[String],
        ) -> Result<Vec<Option<StoredSnapshot>>> {
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
        let real =
            tokio::task::block_in_place(|| Embedded::open(&EmbeddedOptions::new(dir.path())))
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
}
