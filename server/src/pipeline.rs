//! The scoring pipeline: one worker per bus partition, and one committer.
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
    ArchivedEvent, ChangedState, Claim, PartitionCommit, ScorePoint, StorageError, Stores,
};
use prost::Message as _;
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::association::{self, Reach};
use crate::catalog::Catalog;
use crate::config::{GraphSection, PipelineSection};
use crate::convert;
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
}

/// Starts the committer and one worker per partition; the workers stop when `shutdown`
/// turns true (the committer once they are gone).
pub fn spawn(
    shared: &Arc<Shared>,
    shutdown: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let queue = spawn_committer(shared);
    (0..shared.stores.bus.partitions())
        .map(|p| {
            let shared = Arc::clone(shared);
            let queue = queue.clone();
            let mut shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    match run_partition(&shared, &queue, p, &mut shutdown).await {
                        Ok(()) => return,
                        // Another worker owns the partition now: retrying would only fence
                        // it in turn.
                        Err(e) if e.downcast_ref::<Fenced>().is_some() => {
                            tracing::warn!(partition = p, error = %format!("{e:#}"),
                                "pipeline worker lost its partition; stopping");
                            return;
                        }
                        Err(e) => {
                            tracing::error!(partition = p, error = %format!("{e:#}"),
                                "pipeline worker failed; restarting from the last commit");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
            })
        })
        .collect()
}

/// Recovers a partition, then scores and commits until shutdown.
async fn run_partition(
    shared: &Shared,
    queue: &CommitQueue,
    p: u32,
    shutdown: &mut watch::Receiver<bool>,
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
        loop {
            let available = *end.borrow_and_update();
            #[allow(clippy::cast_possible_wrap, reason = "lags are far below i64::MAX")]
            lag.set(available.saturating_sub(next) as i64);
            if available > next {
                break;
            }
            tokio::select! {
                changed = end.changed() => changed?,
                _ = shutdown.changed() => return Ok(()),
            }
            if *shutdown.borrow() {
                return Ok(());
            }
        }
        let records = stores
            .bus
            .read(p, next, shared.config.micro_batch_events)
            .await?;
        let Some(&(last, _)) = records.last() else {
            continue;
        };
        let batch = score(shared, p, &mut states, records).await?;
        let fence = Claim {
            epoch: claim.epoch,
            next_offset: next,
        };
        commit(queue, p, fence, last + 1, batch, &states).await?;
        // Only committed states are dropped: what is evicted is in the snapshots.
        states.shrink();
        next = last + 1;
        shared.progress.set(p, next);
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
    events: &[(u64, pb::Event)],
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
    for (offset, bytes) in records {
        events.push((offset, pb::Event::decode(bytes.as_slice())?));
    }
    load_missing(shared, states, &events).await?;
    // Only when some rule reads it: the association costs a graph walk per subject.
    let baseline = live.uses_association.then(|| engine.config().baseline);
    let contexts = contexts(shared, &events, baseline).await?;
    let mut batch = Batch::default();
    let empty = SubjectContext::default();
    let mut out = Outcomes::default();
    for (offset, event) in events {
        if let Some(t) = &event.received_at {
            batch
                .received
                .push(convert::timestamp("received_at", t).unwrap_or_default());
        }
        let applied = match convert::event(&event) {
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
                        let outcome = engine.apply(state, &domain, ctx, &mut out);
                        // Ingestion refuses duplicates; the set would only grow.
                        state.applied_event_digests.clear();
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
    events: &[(u64, pb::Event)],
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
            profile: profile.as_ref().map(convert::profile_context),
            lists: entries.iter().filter_map(convert::list_entry).collect(),
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
    /// Anything else: the worker starts over from the committed offset.
    Failed(String),
}

impl From<StorageError> for CommitFailure {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Fenced(m) => Self::Fenced(m),
            other => Self::Failed(other.to_string()),
        }
    }
}

/// Sends a worker's batches to the committer.
#[derive(Clone)]
pub struct CommitQueue(mpsc::Sender<CommitRequest>);

/// Starts the committer: it takes every batch the workers have ready (at most one per
/// partition, as each worker waits for its answer) and writes them in one call, so the
/// stores pay one commit for all partitions instead of one per partition and role.
pub fn spawn_committer(shared: &Arc<Shared>) -> CommitQueue {
    let (tx, mut rx) = mpsc::channel::<CommitRequest>(256);
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let mut pending = Vec::new();
        while let Some(first) = rx.recv().await {
            pending.push(first);
            while let Ok(more) = rx.try_recv() {
                pending.push(more);
            }
            let requests: Vec<CommitRequest> = std::mem::take(&mut pending);
            commit_together(&shared, requests).await;
        }
    });
    CommitQueue(tx)
}

async fn commit_together(shared: &Shared, requests: Vec<CommitRequest>) {
    let metrics = Metrics::global();
    let started = std::time::Instant::now();
    let mut batches = Vec::with_capacity(requests.len());
    let mut rest = Vec::with_capacity(requests.len());
    for r in requests {
        batches.push(r.commit);
        rest.push((r.alerts, r.received, r.done));
    }
    let events: usize = batches.iter().map(|b| b.events.len()).sum();
    let results = commit_batches(shared, batches).await;
    if results.iter().all(Result::is_ok) {
        let took = started.elapsed();
        tracing::debug!(
            events,
            batches = rest.len(),
            ?took,
            "committed micro-batches"
        );
        metrics.commit_seconds.observe(took.as_secs_f64());
        metrics.events_scored.inc_by(events as u64);
        let done = Timestamp::now().nanos();
        for (alerts, received, _) in &rest {
            #[allow(clippy::cast_precision_loss, reason = "histogram observations")]
            {
                metrics.batch_size.observe(received.len() as f64);
                for r in received {
                    let seconds = (done - r.nanos()) as f64 / 1e9;
                    metrics.ingest_to_snapshot.observe(seconds.max(0.0));
                }
            }
            for alert in alerts {
                // No watcher is fine: alerts are also derivable from the score history.
                let _ = shared.alerts.send(convert::alert_to_pb(alert));
            }
        }
    }
    for ((_, _, done), result) in rest.into_iter().zip(results) {
        // A worker that went away restarts from the committed offset anyway.
        let _ = done.send(result);
    }
}

/// Commits the batches in one call, and answers per batch. A fenced call writes nothing;
/// as one partition's new owner must not stop the others, its batches are then committed
/// one by one, so each worker hears its own answer.
async fn commit_batches(
    shared: &Shared,
    batches: Vec<PartitionCommit>,
) -> Vec<Result<(), CommitFailure>> {
    let committer = &shared.stores.committer;
    let n = batches.len();
    let retry = (n > 1).then(|| batches.clone());
    match committer.commit(batches, Timestamp::now()).await {
        Ok(()) => vec![Ok(()); n],
        Err(StorageError::Fenced(_)) if retry.is_some() => {
            let mut results = Vec::with_capacity(n);
            for b in retry.into_iter().flatten() {
                results.push(
                    committer
                        .commit(vec![b], Timestamp::now())
                        .await
                        .map_err(CommitFailure::from),
                );
            }
            results
        }
        Err(e) => vec![Err(CommitFailure::from(e)); n],
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
        Err(CommitFailure::Failed(m)) => Err(anyhow::anyhow!("committing partition {p}: {m}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
