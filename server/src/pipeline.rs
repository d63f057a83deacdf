//! The scoring pipeline: one worker per bus partition, and one committer.
//!
//! A worker reads a micro-batch of events from its partition, scores them in bus order with
//! the live engine against its in-memory subject states, and hands the result to the
//! committer, which writes every ready batch of every partition in one call: the archived
//! events, the score points and changes, and last the changed snapshots together with the
//! offset they reflect (one write per changed subject per micro-batch). The embedded backend
//! does all of it in one transaction; others write role by role in that order. On start (and
//! after any failure) a worker reloads the committed snapshots, drops archive and series
//! rows past the committed offset (a crash between role writes leaves some) and scores again
//! from there: every acknowledged event is reflected exactly once.

use std::sync::Arc;
use std::time::Duration;

use credence_proto::v1 as pb;
use credence_scorer::{EventOutcome, Outcomes, SubjectContext, SubjectState, Timestamp};
use credence_storage::{ArchivedEvent, PartitionCommit, ScorePoint, Stores};
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
    let mut next = stores.snapshots.committed_offset(p).await?;
    let dropped_events = stores.archive.truncate_events(p, next).await?;
    let dropped_points = stores.series.truncate_scores(p, next).await?;
    if dropped_events + dropped_points > 0 {
        tracing::info!(
            partition = p,
            offset = next,
            dropped_events,
            dropped_points,
            "dropped rows written after the last snapshot commit; scoring them again"
        );
    }
    let mut states: FxHashMap<String, SubjectState> = stores
        .snapshots
        .load_partition(p)
        .await?
        .into_iter()
        .map(|s| (s.subject_id.clone(), s))
        .collect();
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
        commit(queue, p, last + 1, batch, &states).await?;
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
    changed: FxHashSet<String>,
    received: Vec<Timestamp>,
}

/// Scores a micro-batch against the in-memory states.
async fn score(
    shared: &Shared,
    p: u32,
    states: &mut FxHashMap<String, SubjectState>,
    records: Vec<(u64, Vec<u8>)>,
) -> anyhow::Result<Batch> {
    let live = shared.catalog.live();
    let engine = &live.engine;
    let mut events = Vec::with_capacity(records.len());
    for (offset, bytes) in records {
        events.push((offset, pb::Event::decode(bytes.as_slice())?));
    }
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
                let state = match states.get_mut(&domain.subject_id) {
                    Some(state) => Some(state),
                    None => engine
                        .new_subject(&domain.subject_id, domain.occurred_at)
                        .map(|s| states.entry(domain.subject_id.clone()).or_insert(s)),
                };
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
                                region: ctx
                                    .profile
                                    .as_ref()
                                    .and_then(|pr| pr.region.clone())
                                    .unwrap_or_default(),
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
                            batch.changed.insert(domain.subject_id.clone());
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
    done: oneshot::Sender<Result<(), String>>,
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
    let result = shared
        .stores
        .committer
        .commit(batches, Timestamp::now())
        .await
        .map_err(|e| format!("{e}"));
    if result.is_ok() {
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
    for (_, _, done) in rest {
        // A worker that went away restarts from the committed offset anyway.
        let _ = done.send(result.clone());
    }
}

/// Hands a scored batch to the committer and waits until it is durable.
async fn commit(
    queue: &CommitQueue,
    p: u32,
    next_offset: u64,
    batch: Batch,
    states: &FxHashMap<String, SubjectState>,
) -> anyhow::Result<()> {
    let changed: Vec<SubjectState> = batch
        .changed
        .iter()
        .filter_map(|id| states.get(id).cloned())
        .collect();
    let (done, answer) = oneshot::channel();
    let request = CommitRequest {
        commit: PartitionCommit {
            partition: p,
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
    answer
        .await
        .map_err(|_| anyhow::anyhow!("the committer has stopped"))?
        .map_err(|e| anyhow::anyhow!("committing partition {p}: {e}"))
}
