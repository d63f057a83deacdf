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
                convert::received_event(e)
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
    // Only when some rule reads it: the association costs a graph walk (one for the batch).
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
        let (event, applied) = match convert::into_engine_event(event) {
            // Ingestion validated it; an event the engine cannot read is archived unapplied.
            Err(refused) => {
                let (event, e) = *refused;
                tracing::warn!(event_id = %event.event_id, error = %e, "unscorable event");
                (event, false)
            }
            Ok((domain, rest)) => {
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
                let applied = match state {
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
                };
                (convert::from_engine_event(domain, rest), applied)
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
    let associations = match association_baseline {
        Some(baseline) => {
            let reach = Reach {
                depth: shared.graph.association_depth,
                kinds: &[],
                attenuation: shared.graph.association_attenuation,
                baseline,
            };
            association::compute_each(stores, &ids, reach).await?
        }
        None => vec![None; ids.len()],
    };
    let mut out = FxHashMap::default();
    let each = ids.into_iter().zip(profiles).zip(lists).zip(associations);
    for (((id, profile), entries), association) in each {
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
    /// The round was refused for another partition's fence: the worker starts over from the
    /// committed offset; neither it nor the committer is at fault.
    Retry(String),
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

/// Commits the batches in one call, and answers per batch. A fenced call writes nothing.
/// Then only the workers that lost their partition are told so; the others of the round
/// score their batch again from the committed offset. Nothing is kept to retry the round
/// with: a copy of every batch for a case that happens only when a partition changes owner
/// cost a third of the node's throughput.
async fn commit_batches(
    shared: &Shared,
    batches: Vec<PartitionCommit>,
) -> Vec<Result<(), CommitFailure>> {
    let n = batches.len();
    let expected: Vec<(u32, Claim)> = batches
        .iter()
        .map(|b| (b.partition, b.expected()))
        .collect();
    match commit_guarded(shared, batches).await {
        Ok(()) => vec![Ok(()); n],
        Err(CommitFailure::Fenced(m)) if n > 1 => {
            let mut results = Vec::with_capacity(n);
            for (p, expected) in expected {
                let fenced = match shared.stores.snapshots.position(p).await {
                    Ok(stored) => credence_storage::check_fence(p, stored, expected).is_err(),
                    // Unknown: the worker starts over and finds out at its claim.
                    Err(_) => false,
                };
                results.push(Err(if fenced {
                    CommitFailure::Fenced(m.clone())
                } else {
                    CommitFailure::Retry(format!(
                        "the round was refused for another partition ({m}); scoring the \
                         batch again from the committed offset"
                    ))
                }));
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
        Err(CommitFailure::Failed { message, .. } | CommitFailure::Retry(message)) => {
            Err(anyhow::anyhow!("committing partition {p}: {message}"))
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod role_faults;
