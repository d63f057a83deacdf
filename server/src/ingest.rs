//! Ingestion: validate each event, refuse recent duplicates, append the rest to the bus
//! durably.
//!
//! Duplicates are answered here from a bounded cache of recently accepted event ids
//! ([`RecentIds`], filled at start from the tail of each partition): a client retrying a
//! batch is told DUPLICATE for what already landed. The cache is a fast path, not the
//! authority: an older duplicate, or one that reaches another node, is caught by the
//! engine's per-subject window and archived unapplied.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use credence_proto::{partition_of, v1 as pb};
use credence_scorer::{Timestamp, event_digest};
use credence_storage::{BusRecord, StorageError, Stores};
use parking_lot::Mutex;
use prost::Message as _;
use rustc_hash::{FxHashMap, FxHashSet};
use tokio::sync::watch;

use crate::catalog::Catalog;
use crate::config::{IngestSection, PipelineSection};
use crate::convert;
use crate::error::{Error, quote};
use crate::health::{Component, Health};
use crate::metrics::Metrics;

/// Longest event id, subject id or event type accepted, in bytes (the contract's limit).
const MAX_ID_BYTES: usize = 128;

/// Per partition, the first bus offset the pipeline has not committed yet, and whether this
/// node owns the partition (the bus assigned it and has not revoked it).
///
/// Backpressure counts only owned partitions. A partition the bus gave to another node is
/// scored there; this node neither advances its offset nor learns it, so counting it would
/// make its lag grow with every event routed to it and block ingestion for good. What
/// another node lags is its own backpressure to apply; in a cluster, ingestion will read the
/// committed offsets from the store instead (issue 10).
pub struct Progress {
    committed: Vec<AtomicU64>,
    owned: Vec<AtomicBool>,
}

impl Progress {
    /// Progress of `partitions` partitions, all at 0 and owned by no one yet.
    pub fn new(partitions: u32) -> Self {
        Self {
            committed: (0..partitions).map(|_| AtomicU64::new(0)).collect(),
            owned: (0..partitions).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Records that `partition` is committed up to `next_offset`.
    pub fn set(&self, partition: u32, next_offset: u64) {
        if let Some(c) = self.committed.get(partition as usize) {
            c.store(next_offset, Ordering::Release);
        }
    }

    /// The committed offset of `partition`.
    pub fn get(&self, partition: u32) -> u64 {
        self.committed
            .get(partition as usize)
            .map_or(0, |c| c.load(Ordering::Acquire))
    }

    /// Records whether this node owns `partition` (from its assignment until its revoke).
    /// Until the new worker has claimed it, the offset last recorded stands: offsets only
    /// grow, so the lag is overestimated for that moment, never hidden.
    pub fn set_owned(&self, partition: u32, owned: bool) {
        if let Some(o) = self.owned.get(partition as usize) {
            o.store(owned, Ordering::Release);
        }
    }

    /// How far `partition` lags behind `end` (the bus's end): 0 when this node does not own it.
    pub fn lag(&self, partition: u32, end: u64) -> u64 {
        let owned = self
            .owned
            .get(partition as usize)
            .is_some_and(|o| o.load(Ordering::Acquire));
        if owned {
            end.saturating_sub(self.get(partition))
        } else {
            0
        }
    }
}

/// What became of one batch.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Accepted (durable) events.
    pub accepted: u32,
    /// Events whose id was accepted before.
    pub duplicates: u32,
    /// Invalid events.
    pub rejected: u32,
    /// One per event, in request order.
    pub results: Vec<pb::EventResult>,
}

/// The ingestion side of a node.
pub struct Ingest {
    stores: Stores,
    catalog: Arc<Catalog>,
    limits: IngestSection,
    pipeline: PipelineSection,
    min_time: Timestamp,
    dedup: Arc<Mutex<Dedup>>,
    progress: Arc<Progress>,
    ends: Vec<watch::Receiver<u64>>,
    health: Arc<Health>,
}

impl Ingest {
    /// Ingestion over `stores`; reads the bus once to learn every event id accepted so far.
    pub async fn open(
        stores: Stores,
        catalog: Arc<Catalog>,
        limits: IngestSection,
        pipeline: PipelineSection,
        progress: Arc<Progress>,
        health: Arc<Health>,
    ) -> anyhow::Result<Self> {
        let min_time = Timestamp::parse_rfc3339(&limits.min_time)
            .map_err(|e| anyhow::anyhow!("ingest.min_time: {e}"))?;
        let mut recent = RecentIds::new(limits.dedup_cache_events);
        let partitions = stores.bus.partitions();
        // The tail of each partition, about one generation in all: enough for the retries
        // the cache is for, and a start that does not grow with the bus.
        let per_partition = limits
            .dedup_cache_events
            .div_ceil(partitions.max(1) as usize) as u64;
        for p in 0..partitions {
            let end = *stores.bus.end(p).borrow();
            // Not below what the bus still holds (Kafka deletes old records by retention).
            let mut from = end
                .saturating_sub(per_partition)
                .max(stores.bus.start(p).await?);
            while from < end {
                let records = stores.bus.read(p, from, 65_536).await?;
                let Some(&(last, _)) = records.last() else {
                    break;
                };
                for (_, bytes) in &records {
                    // A record that does not decode is the pipeline's to park; it has no id
                    // a client could retry with.
                    if let Ok(id) = event_id_of(bytes) {
                        recent.insert(event_digest(&id));
                    }
                }
                from = last + 1;
            }
        }
        tracing::info!(
            events = recent.len(),
            "recent event ids of the bus indexed for duplicate answers"
        );
        let ends = (0..partitions).map(|p| stores.bus.end(p)).collect();
        Ok(Self {
            stores,
            catalog,
            limits,
            pipeline,
            min_time,
            dedup: Arc::new(Mutex::new(Dedup {
                recent,
                in_flight: FxHashMap::default(),
            })),
            progress,
            ends,
            health,
        })
    }

    /// Events accepted but not yet committed by the pipeline, over the partitions this node
    /// owns (see [`Progress`]).
    pub fn lag(&self) -> u64 {
        self.ends
            .iter()
            .enumerate()
            .map(|(p, end)| {
                #[allow(clippy::cast_possible_truncation, reason = "partition counts fit u32")]
                let p = p as u32;
                self.progress.lag(p, *end.borrow())
            })
            .sum()
    }

    /// Validates, deduplicates and appends a batch. `first_index` numbers the events (a
    /// stream counts over all its batches).
    pub async fn publish(
        &self,
        mut events: Vec<pb::Event>,
        first_index: u32,
    ) -> Result<BatchOutcome, Error> {
        if events.len() > self.limits.max_batch_events {
            return Err(Error::invalid(format!(
                "a batch holds at most {} events (ingest.max_batch_events); this one has {}: \
                 split it",
                self.limits.max_batch_events,
                events.len()
            )));
        }
        self.wait_for_pipeline().await?;
        let now = Timestamp::now();
        let latest = now.saturating_add(credence_scorer::Duration::from_nanos(
            i64::try_from(self.limits.max_future.as_nanos()).unwrap_or(i64::MAX),
        ));
        let mut verdicts: Vec<Result<(), String>> =
            events.iter().map(|e| self.check(e, latest)).collect();
        self.check_subjects_exist(&events, &mut verdicts).await?;

        let received_at = convert::timestamp_to_pb(now);
        let partitions = self.stores.bus.partitions();
        let mut kinds: Vec<Option<(pb::EventOutcome, String)>> = verdicts
            .into_iter()
            .map(|v| v.err().map(|reason| (pb::EventOutcome::Rejected, reason)))
            .collect();
        let (records, landing) = self
            .reserve(&mut events, &mut kinds, |event| {
                event.received_at = Some(received_at);
                BusRecord {
                    partition: partition_of(&event.subject_id, partitions),
                    payload: event.encode_to_vec(),
                }
            })
            .await;
        // The slot of each record's event, in record order: the events `reserve` left
        // undecided are the ones it made records of.
        let slots: Vec<usize> = kinds
            .iter()
            .enumerate()
            .filter_map(|(i, k)| k.is_none().then_some(i))
            .collect();
        let mut refused = Vec::new();
        if !records.is_empty() {
            // The append runs to its end in its own task, whatever becomes of this call. A
            // guard that released the reservations when this future is dropped would be
            // wrong half the time: once the bus has taken the records, dropping its future
            // does not take them back, so a cancelled call cannot know whether its events
            // landed. The task knows, and settles the reservations by the real outcome.
            let bus = Arc::clone(&self.stores.bus);
            let appended = tokio::spawn(async move {
                let mut landing = landing;
                let appended = bus.append(records).await;
                if let Ok(per_record) = &appended {
                    landing.landed = per_record.iter().map(Result::is_ok).collect();
                }
                drop(landing);
                appended
            })
            .await;
            match appended {
                Ok(Ok(per_record)) => {
                    self.health.working(Component::Bus).await;
                    refused = per_record;
                }
                Ok(Err(e)) => {
                    if matches!(e, StorageError::Unavailable(_) | StorageError::Backend(_)) {
                        self.health
                            .failing(Component::Bus, format!("appending failed: {e}"))
                            .await;
                    }
                    return Err(Error::from(e));
                }
                Err(e) => {
                    return Err(Error::internal(format!(
                        "appending a batch to the bus failed unexpectedly: {e}"
                    )));
                }
            }
        }
        let mut outcome = BatchOutcome {
            results: Vec::with_capacity(events.len()),
            ..BatchOutcome::default()
        };
        for (i, (event, kind)) in events.iter_mut().zip(kinds).enumerate() {
            #[allow(clippy::cast_possible_truncation, reason = "batches are far below u32")]
            let index = first_index + i as u32;
            let (outcome_kind, reason) =
                kind.unwrap_or((pb::EventOutcome::Accepted, String::new()));
            match outcome_kind {
                pb::EventOutcome::Accepted => outcome.accepted += 1,
                pb::EventOutcome::Duplicate => outcome.duplicates += 1,
                _ => outcome.rejected += 1,
            }
            outcome.results.push(pb::EventResult {
                index,
                event_id: std::mem::take(&mut event.event_id),
                outcome: outcome_kind.into(),
                reason,
            });
        }
        // The bus answers per record (Kafka does): an event whose record it refused was not
        // stored, its reservation was released, and its result says to retry it.
        mark_refused(&mut outcome, refused, &slots);
        let m = &Metrics::global().events_received;
        m.with_label_values(&["accepted"])
            .inc_by(u64::from(outcome.accepted));
        m.with_label_values(&["duplicate"])
            .inc_by(u64::from(outcome.duplicates));
        m.with_label_values(&["rejected"])
            .inc_by(u64::from(outcome.rejected));
        Ok(outcome)
    }

    /// Decides every event not yet decided in `kinds` (`None`: valid so far): DUPLICATE when
    /// its id was accepted recently or earlier in this batch, else reserved for this call,
    /// made into a record by `record` and left `None` (accepted if the append succeeds).
    /// An id that another call is appending right now is waited for, and then judged on
    /// that call's outcome: DUPLICATE if it landed, this call's to append if it failed.
    ///
    /// Nothing is reserved while any id must be waited for, so a call holding reservations
    /// never waits on another call (no two calls can wait on each other), and nothing is
    /// awaited between reserving and handing the reservations to the returned [`Landing`].
    async fn reserve(
        &self,
        events: &mut [pb::Event],
        kinds: &mut [Option<(pb::EventOutcome, String)>],
        mut record: impl FnMut(&mut pb::Event) -> BusRecord,
    ) -> (Vec<BusRecord>, Landing) {
        loop {
            let waits: Vec<watch::Receiver<Option<bool>>> = {
                let mut dedup = self.dedup.lock();
                let waits: Vec<_> = events
                    .iter()
                    .zip(kinds.iter())
                    .filter(|(_, kind)| kind.is_none())
                    .filter_map(|(e, _)| dedup.in_flight.get(&event_digest(&e.event_id)).cloned())
                    .collect();
                if waits.is_empty() {
                    let (tx, rx) = watch::channel(None);
                    let mut records = Vec::new();
                    let mut digests = Vec::new();
                    let mut in_batch = FxHashSet::default();
                    for (event, kind) in events.iter_mut().zip(kinds.iter_mut()) {
                        if kind.is_some() {
                            continue;
                        }
                        let digest = event_digest(&event.event_id);
                        if dedup.recent.contains(digest) || !in_batch.insert(digest) {
                            *kind = Some((
                                pb::EventOutcome::Duplicate,
                                format!(
                                    "event_id {:?} was accepted before",
                                    short(&event.event_id)
                                ),
                            ));
                        } else {
                            dedup.in_flight.insert(digest, rx.clone());
                            digests.push(digest);
                            records.push(record(event));
                        }
                    }
                    let landing = Landing {
                        dedup: Arc::clone(&self.dedup),
                        digests,
                        landed: Vec::new(),
                        outcome: tx,
                    };
                    return (records, landing);
                }
                waits
            };
            for mut wait in waits {
                // An error means the other call's landing is gone, which settles it too.
                let _ = wait.wait_for(Option::is_some).await;
            }
        }
    }

    /// Backpressure: waits while the pipeline is too far behind, then gives up.
    async fn wait_for_pipeline(&self) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            let lag = self.lag();
            if lag <= self.pipeline.max_lag_events {
                return Ok(());
            }
            if started.elapsed() >= self.pipeline.backpressure_wait {
                return Err(Error::exhausted(format!(
                    "the scoring pipeline is {lag} events behind (pipeline.max_lag_events is \
                     {}); retry this batch after a short back-off",
                    self.pipeline.max_lag_events
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// One event's problem, if any, as a reason naming the field; `latest` is the latest
    /// `occurred_at` accepted (the server clock plus `ingest.max_future`).
    fn check(&self, e: &pb::Event, latest: Timestamp) -> Result<(), String> {
        check_event(e, &self.limits, self.min_time, latest)
    }

    /// With auto-create off, an event for a subject with neither profile nor score is
    /// rejected.
    async fn check_subjects_exist(
        &self,
        events: &[pb::Event],
        verdicts: &mut [Result<(), String>],
    ) -> Result<(), Error> {
        if self.catalog.live().engine.config().auto_create_subjects {
            return Ok(());
        }
        let ids: Vec<String> = events.iter().map(|e| e.subject_id.clone()).collect();
        let profiles = self
            .stores
            .profiles
            .get_profiles(&ids)
            .await
            .map_err(Error::from)?;
        let snapshots = self
            .stores
            .snapshots
            .get_snapshots(&ids)
            .await
            .map_err(Error::from)?;
        for (i, verdict) in verdicts.iter_mut().enumerate() {
            if verdict.is_ok() && profiles[i].is_none() && snapshots[i].is_none() {
                *verdict = Err(format!(
                    "subject_id: {} is not a known subject and auto_create_subjects is off \
                     in the scoring config; upsert its profile first",
                    quote(&ids[i])
                ));
            }
        }
        Ok(())
    }
}

/// One event's problem, if any, as a reason naming the field: the checks ingestion makes
/// before it appends an event (the subject's existence aside, which needs the stores).
/// `min_time` and `latest` bound `occurred_at` (`ingest.min_time`, and the server clock plus
/// `ingest.max_future`). Pure, so the fuzz targets can call it ([`crate::fuzzing`]).
pub(crate) fn check_event(
    e: &pb::Event,
    limits: &IngestSection,
    min_time: Timestamp,
    latest: Timestamp,
) -> Result<(), String> {
    // The same checks as `convert::event`, without building the domain event.
    for (field, text) in [
        ("event_id", &e.event_id),
        ("subject_id", &e.subject_id),
        ("event_type", &e.event_type),
    ] {
        if text.is_empty() {
            return Err(format!("{field}: is required"));
        }
        if text.len() > MAX_ID_BYTES {
            return Err(format!("{field}: longer than {MAX_ID_BYTES} bytes"));
        }
    }
    let occurred_at = e
        .occurred_at
        .as_ref()
        .ok_or_else(|| "occurred_at: is required".to_owned())
        .and_then(|t| convert::timestamp("occurred_at", t).map_err(|err| err.to_string()))?;
    if occurred_at < min_time {
        return Err(format!(
            "occurred_at: {occurred_at} is before the earliest time accepted ({min_time}, \
             ingest.min_time)"
        ));
    }
    if occurred_at > latest {
        return Err(format!(
            "occurred_at: {occurred_at} is more than {} ahead of the server clock \
             (ingest.max_future)",
            humantime::format_duration(limits.max_future)
        ));
    }
    if let Some(location) = &e.location {
        for (field, x) in [
            ("location.lat", location.lat),
            ("location.lon", location.lon),
        ] {
            if !x.is_finite() {
                return Err(format!("{field}: {} is not a finite number", float_name(x)));
            }
        }
    }
    if let Some(payload) = &e.payload {
        // Marked by the codec: this event's payload did not decode (nested past the
        // decoder's recursion limit, or not valid protobuf), the rest of it did.
        if let Some(reason) = credence_proto::codec::undecodable_payload(payload) {
            return Err(format!(
                "payload: {reason} (a payload may nest at most {} levels, \
                 ingest.max_payload_depth)",
                limits.max_payload_depth
            ));
        }
        let size = payload.encoded_len();
        if size > limits.max_payload_bytes {
            return Err(format!(
                "payload: {size} bytes is over the {}-byte limit (ingest.max_payload_bytes)",
                limits.max_payload_bytes
            ));
        }
        if let Some(problem) = non_finite("payload", payload) {
            return Err(problem);
        }
        let depth = struct_depth(payload);
        if depth > limits.max_payload_depth {
            return Err(format!(
                "payload: nested {depth} levels deep, over the limit of {} \
                 (ingest.max_payload_depth)",
                limits.max_payload_depth
            ));
        }
    }
    Ok(())
}

/// At most a short prefix of client text, for error messages.
fn short(text: &str) -> &str {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

/// Ids of recently accepted events: two generations of at most `per_generation` digests
/// each; when the current one is full it becomes the previous one and the oldest is
/// forgotten. Memory is bounded (16 bytes per id plus the table's overhead).
pub struct RecentIds {
    current: FxHashSet<u128>,
    previous: FxHashSet<u128>,
    per_generation: usize,
}

impl RecentIds {
    /// An empty cache of generations of `per_generation` ids.
    pub fn new(per_generation: usize) -> Self {
        Self {
            current: FxHashSet::default(),
            previous: FxHashSet::default(),
            per_generation: per_generation.max(1),
        }
    }

    /// Whether `digest` was accepted recently.
    pub fn contains(&self, digest: u128) -> bool {
        self.current.contains(&digest) || self.previous.contains(&digest)
    }

    /// Remembers `digest`.
    pub fn insert(&mut self, digest: u128) {
        if self.current.len() >= self.per_generation {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(digest);
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The duplicate state of a node: recent ids, and the ids of appends in flight with where
/// to learn when each ended (`Some(true)`: every record of that append landed).
struct Dedup {
    recent: RecentIds,
    in_flight: FxHashMap<u128, watch::Receiver<Option<bool>>>,
}

/// The reservations of one append, in record order. Dropped (when the append ends, or if
/// its task is torn down) it settles them: ids whose record landed become recent ids, the
/// others are free again, and the calls waiting on them look again.
struct Landing {
    dedup: Arc<Mutex<Dedup>>,
    digests: Vec<u128>,
    /// Per record, whether the bus stored it (empty: none was).
    landed: Vec<bool>,
    outcome: watch::Sender<Option<bool>>,
}

impl Drop for Landing {
    fn drop(&mut self) {
        {
            let mut dedup = self.dedup.lock();
            for (i, d) in self.digests.iter().enumerate() {
                dedup.in_flight.remove(d);
                if self.landed.get(i).copied().unwrap_or(false) {
                    dedup.recent.insert(*d);
                }
            }
        }
        let _ = self.outcome.send(Some(self.landed.iter().all(|&l| l)));
    }
}

/// Applies the bus's answer per record (`slots[r]` is the result index of record `r`'s event):
/// an event whose record the bus refused (Kafka answers per record) was not stored, and its
/// result says so; the others stand.
fn mark_refused(
    outcome: &mut BatchOutcome,
    appended: Vec<credence_storage::Result<u64>>,
    slots: &[usize],
) {
    for (result, &slot) in appended.into_iter().zip(slots) {
        if let Err(e) = result {
            let r = &mut outcome.results[slot];
            r.outcome = pb::EventOutcome::Rejected.into();
            r.reason = format!("not stored: {e}; retry this event");
            outcome.accepted -= 1;
            outcome.rejected += 1;
        }
    }
}

/// The `event_id` of an encoded event. Ingestion encodes it first (prost writes fields in
/// number order), so it is read from the front without decoding the payload; any other
/// layout falls back to a full decode.
fn event_id_of(bytes: &[u8]) -> Result<String, prost::DecodeError> {
    let mut rest = bytes;
    // Field 1, wire type 2 (length-delimited): tag byte 0x0A.
    if rest.first() == Some(&0x0A) {
        rest = &rest[1..];
        if let Ok(len) = prost::encoding::decode_varint(&mut rest) {
            if let Some(id) = usize::try_from(len).ok().and_then(|n| rest.get(..n)) {
                if let Ok(id) = std::str::from_utf8(id) {
                    return Ok(id.to_owned());
                }
            }
        }
    }
    pb::Event::decode(bytes).map(|e| e.event_id)
}

/// The first NaN or infinity in a payload, as a reason naming its path
/// (`payload.amount: NaN is not a finite number`). JSON has no such numbers: the archive
/// would keep `null` and a replay would score something else than the live engine did.
fn non_finite(path: &str, s: &prost_types::Struct) -> Option<String> {
    // Keys are client input: name at most a short prefix of each.
    let key = |k: &str| -> String {
        const MAX: usize = 32;
        match k.char_indices().nth(MAX) {
            Some((cut, _)) => format!("{}...", &k[..cut]),
            None => k.to_owned(),
        }
    };
    s.fields
        .iter()
        .find_map(|(k, v)| value_non_finite(&format!("{path}.{}", key(k)), v))
}

fn value_non_finite(path: &str, v: &prost_types::Value) -> Option<String> {
    use prost_types::value::Kind;
    match &v.kind {
        Some(Kind::NumberValue(x)) if !x.is_finite() => {
            Some(format!("{path}: {} is not a finite number", float_name(*x)))
        }
        Some(Kind::StructValue(s)) => non_finite(path, s),
        Some(Kind::ListValue(l)) => l
            .values
            .iter()
            .enumerate()
            .find_map(|(i, v)| value_non_finite(&format!("{path}[{i}]"), v)),
        _ => None,
    }
}

/// `NaN`, `Infinity` or `-Infinity`, as JSON-minded clients write them.
fn float_name(x: f64) -> &'static str {
    if x.is_nan() {
        "NaN"
    } else if x > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// Nesting depth of a payload: a flat struct is 1.
fn struct_depth(s: &prost_types::Struct) -> usize {
    1 + s.fields.values().map(value_depth).max().unwrap_or(0)
}

fn value_depth(v: &prost_types::Value) -> usize {
    use prost_types::value::Kind;
    match &v.kind {
        Some(Kind::StructValue(s)) => struct_depth(s),
        Some(Kind::ListValue(l)) => 1 + l.values.iter().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use credence_storage::Bus;
    use credence_storage::embedded::{Embedded, EmbeddedOptions};
    use tokio::sync::Semaphore;

    use super::*;

    /// The embedded bus behind a gate: each append says it has started, then waits for a
    /// permit, then fails or goes through as the script says (through when it is empty).
    /// Records below `start` are gone, as Kafka's retention deletes them.
    struct GatedBus {
        inner: Arc<dyn Bus>,
        started: Semaphore,
        gate: Semaphore,
        fail: Mutex<VecDeque<bool>>,
        start: u64,
    }

    #[tonic::async_trait]
    impl Bus for GatedBus {
        fn partitions(&self) -> u32 {
            self.inner.partitions()
        }
        async fn append(
            &self,
            records: Vec<BusRecord>,
        ) -> credence_storage::Result<Vec<credence_storage::Result<u64>>> {
            self.started.add_permits(1);
            self.gate.acquire().await.unwrap().forget();
            if self.fail.lock().pop_front().unwrap_or(false) {
                return Err(StorageError::Unavailable("the bus queue is full".into()));
            }
            self.inner.append(records).await
        }
        async fn read(
            &self,
            partition: u32,
            from: u64,
            max: usize,
        ) -> credence_storage::Result<Vec<(u64, Vec<u8>)>> {
            if from < self.start {
                return Err(StorageError::Backend(format!("offset {from} is gone")));
            }
            self.inner.read(partition, from, max).await
        }
        async fn start(&self, _partition: u32) -> credence_storage::Result<u64> {
            Ok(self.start)
        }
        fn end(&self, partition: u32) -> watch::Receiver<u64> {
            self.inner.end(partition)
        }
        fn rebalances(
            &self,
        ) -> credence_storage::Result<tokio::sync::mpsc::Receiver<credence_storage::Rebalance>>
        {
            self.inner.rebalances()
        }
        fn health(&self) -> watch::Receiver<credence_storage::BusHealth> {
            self.inner.health()
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        bus: Arc<GatedBus>,
        ingest: Arc<Ingest>,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let embedded = Embedded::open(&EmbeddedOptions::new(dir.path())).unwrap();
        let mut stores = embedded.stores();
        let bus = Arc::new(GatedBus {
            inner: Arc::clone(&stores.bus),
            started: Semaphore::new(0),
            gate: Semaphore::new(0),
            fail: Mutex::new(VecDeque::new()),
            start: 0,
        });
        stores.bus = bus.clone();
        let seed = credence_scorer::RuleFile::example().unwrap();
        let catalog = Arc::new(Catalog::open(stores.clone(), &seed).await.unwrap());
        let progress = Arc::new(Progress::new(stores.bus.partitions()));
        let ingest = Ingest::open(
            stores,
            catalog,
            IngestSection::default(),
            PipelineSection::default(),
            progress,
            Arc::new(Health::new(tonic_health::server::health_reporter().0).await),
        )
        .await
        .unwrap();
        Fixture {
            _dir: dir,
            bus,
            ingest: Arc::new(ingest),
        }
    }

    /// A bus whose oldest records were deleted (Kafka's retention): the start reads the
    /// tail for recent ids from where the bus starts now, not from below it, which would fail
    /// and keep the node from starting.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_recent_ids_are_read_from_where_the_bus_starts() {
        let dir = tempfile::tempdir().unwrap();
        let mut stores = Embedded::open(&EmbeddedOptions::new(dir.path()))
            .unwrap()
            .stores();
        let records = (0..5u8)
            .map(|i| BusRecord {
                partition: 0,
                payload: vec![i],
            })
            .collect();
        stores.bus.append(records).await.unwrap();
        stores.bus = Arc::new(GatedBus {
            inner: Arc::clone(&stores.bus),
            started: Semaphore::new(0),
            gate: Semaphore::new(0),
            fail: Mutex::new(VecDeque::new()),
            start: 3,
        });
        let seed = credence_scorer::RuleFile::example().unwrap();
        let catalog = Arc::new(Catalog::open(stores.clone(), &seed).await.unwrap());
        let opened = Ingest::open(
            stores.clone(),
            catalog,
            IngestSection::default(),
            PipelineSection::default(),
            Arc::new(Progress::new(stores.bus.partitions())),
            Arc::new(Health::new(tonic_health::server::health_reporter().0).await),
        )
        .await;
        assert!(opened.is_ok(), "{:?}", opened.err());
    }

    fn event(id: &str) -> pb::Event {
        pb::Event {
            event_id: id.into(),
            subject_id: "subject-1".into(),
            event_type: "payment".into(),
            occurred_at: Some(convert::timestamp_to_pb(Timestamp::now())),
            ..pb::Event::default()
        }
    }

    fn publish(
        ingest: &Arc<Ingest>,
        id: &str,
    ) -> tokio::task::JoinHandle<Result<BatchOutcome, Error>> {
        let ingest = Arc::clone(ingest);
        let events = vec![event(id)];
        tokio::spawn(async move { ingest.publish(events, 0).await })
    }

    /// Every record of the bus, as event ids.
    async fn bus_ids(f: &Fixture) -> Vec<String> {
        let mut ids = Vec::new();
        for p in 0..f.bus.partitions() {
            for (_, bytes) in f.bus.read(p, 0, usize::MAX).await.unwrap() {
                ids.push(event_id_of(&bytes).unwrap());
            }
        }
        ids
    }

    fn single(outcome: &BatchOutcome) -> pb::EventOutcome {
        assert_eq!(outcome.results.len(), 1);
        outcome.results[0].outcome()
    }

    /// Lets every other task on this current-thread runtime run until it waits.
    async fn settle() {
        for _ in 0..64 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_publish_cancelled_mid_append_loses_nothing() {
        for first_append_fails in [true, false] {
            let f = fixture().await;
            f.bus.fail.lock().push_back(first_append_fails);
            let cancelled = publish(&f.ingest, "e-1");
            // The client gives up while its batch waits in the full bus queue.
            f.bus.started.acquire().await.unwrap().forget();
            cancelled.abort();
            assert!(cancelled.await.unwrap_err().is_cancelled());

            let retry = publish(&f.ingest, "e-1");
            settle().await;
            // Now the queue moves: the first append ends, then the retry's if it has one.
            f.bus.gate.add_permits(2);
            let retried = single(&retry.await.unwrap().unwrap());
            let expected = if first_append_fails {
                pb::EventOutcome::Accepted
            } else {
                pb::EventOutcome::Duplicate
            };
            assert_eq!(
                retried, expected,
                "first append fails: {first_append_fails}"
            );
            assert_eq!(
                bus_ids(&f).await,
                ["e-1"],
                "the event is on the bus exactly once"
            );
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_second_publish_during_a_failing_append_appends_it_itself() {
        let f = fixture().await;
        f.bus.fail.lock().push_back(true);
        let first = publish(&f.ingest, "e-1");
        f.bus.started.acquire().await.unwrap().forget();
        // The same id arrives while the first append is in flight.
        let second = publish(&f.ingest, "e-1");
        settle().await;
        f.bus.gate.add_permits(1);
        let failed = first.await.unwrap().unwrap_err();
        assert_eq!(tonic::Status::from(failed).code(), tonic::Code::Unavailable);
        f.bus.gate.add_permits(1);
        assert_eq!(
            single(&second.await.unwrap().unwrap()),
            pb::EventOutcome::Accepted
        );
        assert_eq!(bus_ids(&f).await, ["e-1"]);
        // And from now on it is a duplicate.
        f.bus.gate.add_permits(1);
        let again = publish(&f.ingest, "e-1").await.unwrap().unwrap();
        assert_eq!(single(&again), pb::EventOutcome::Duplicate);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn non_finite_numbers_are_rejected_per_event() {
        use prost_types::value::Kind;
        let f = fixture().await;
        f.bus.gate.add_permits(1);
        let mut bad = event("e-nan");
        bad.payload = Some(prost_types::Struct {
            fields: [(
                "amount".to_owned(),
                prost_types::Value {
                    kind: Some(Kind::NumberValue(f64::NAN)),
                },
            )]
            .into(),
        });
        let mut far = event("e-inf");
        far.location = Some(pb::Location {
            region: "north".into(),
            lat: f64::INFINITY,
            ..pb::Location::default()
        });
        let outcome = f
            .ingest
            .publish(vec![bad, event("e-ok"), far], 0)
            .await
            .unwrap();
        let seen: Vec<(pb::EventOutcome, &str)> = outcome
            .results
            .iter()
            .map(|r| (r.outcome(), r.reason.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (
                    pb::EventOutcome::Rejected,
                    "payload.amount: NaN is not a finite number"
                ),
                (pb::EventOutcome::Accepted, ""),
                (
                    pb::EventOutcome::Rejected,
                    "location.lat: Infinity is not a finite number"
                ),
            ]
        );
        assert_eq!(bus_ids(&f).await, ["e-ok"]);
    }

    #[test]
    fn recent_ids_keep_between_one_and_two_generations() {
        let mut recent = RecentIds::new(3);
        for d in 0..7u128 {
            recent.insert(d);
        }
        // Generations {3,4,5} and {6}: the oldest are forgotten, memory stays bounded.
        assert!(!recent.contains(0) && !recent.contains(2));
        assert!((3..7).all(|d| recent.contains(d)));
        assert_eq!(recent.len(), 4);
    }

    #[test]
    fn event_ids_are_read_from_the_front_of_the_encoding() {
        let mut event = pb::Event {
            event_id: "e-\u{e9}-1".into(),
            subject_id: "s".into(),
            ..pb::Event::default()
        };
        assert_eq!(event_id_of(&event.encode_to_vec()).unwrap(), event.event_id);
        event.event_id = "x".repeat(300);
        assert_eq!(event_id_of(&event.encode_to_vec()).unwrap(), event.event_id);
        event.event_id.clear();
        assert_eq!(event_id_of(&event.encode_to_vec()).unwrap(), "");
    }

    #[test]
    fn a_record_the_bus_refuses_rejects_its_event_and_the_others_stand() {
        let accepted = |index| pb::EventResult {
            index,
            event_id: format!("e{index}"),
            outcome: pb::EventOutcome::Accepted.into(),
            reason: String::new(),
        };
        let mut outcome = BatchOutcome {
            accepted: 3,
            rejected: 1,
            results: vec![
                accepted(0),
                pb::EventResult {
                    outcome: pb::EventOutcome::Rejected.into(),
                    reason: "subject_id: is required".into(),
                    ..accepted(1)
                },
                accepted(2),
                accepted(3),
            ],
            ..BatchOutcome::default()
        };
        let appended = vec![
            Ok(7),
            Err(credence_storage::StorageError::Unavailable(
                "broker down".into(),
            )),
            Ok(8),
        ];
        mark_refused(&mut outcome, appended, &[0, 2, 3]);
        assert_eq!((outcome.accepted, outcome.rejected), (2, 2));
        let kinds: Vec<_> = outcome
            .results
            .iter()
            .map(pb::EventResult::outcome)
            .collect();
        let (stored, refused) = (pb::EventOutcome::Accepted, pb::EventOutcome::Rejected);
        assert_eq!(kinds, [stored, refused, refused, stored]);
        assert!(
            outcome.results[2].reason.contains("not stored")
                && outcome.results[2].reason.contains("broker down"),
            "{}",
            outcome.results[2].reason
        );
    }

    #[test]
    fn non_finite_numbers_are_named_by_path() {
        use prost_types::value::Kind;
        let number = |x: f64| prost_types::Value {
            kind: Some(Kind::NumberValue(x)),
        };
        let flat = |k: &str, x: f64| prost_types::Struct {
            fields: [(k.to_owned(), number(x))].into(),
        };
        assert_eq!(
            non_finite("payload", &flat("amount", f64::NAN)).as_deref(),
            Some("payload.amount: NaN is not a finite number")
        );
        assert_eq!(non_finite("payload", &flat("amount", 1e308)), None);
        let nested = prost_types::Struct {
            fields: [(
                "items".to_owned(),
                prost_types::Value {
                    kind: Some(Kind::ListValue(prost_types::ListValue {
                        values: vec![
                            number(1.0),
                            prost_types::Value {
                                kind: Some(Kind::StructValue(flat("x", f64::NEG_INFINITY))),
                            },
                        ],
                    })),
                },
            )]
            .into(),
        };
        assert_eq!(
            non_finite("payload", &nested).as_deref(),
            Some("payload.items[1].x: -Infinity is not a finite number")
        );
        let long = "k".repeat(500);
        let reason = non_finite("payload", &flat(&long, f64::INFINITY)).unwrap();
        assert!(reason.len() < 80, "{reason}");
    }

    #[test]
    fn payload_depth_counts_structs_and_lists() {
        use prost_types::value::Kind;
        let leaf = prost_types::Value {
            kind: Some(Kind::NumberValue(1.0)),
        };
        let flat = prost_types::Struct {
            fields: [("a".to_owned(), leaf.clone())].into(),
        };
        assert_eq!(struct_depth(&flat), 1);
        let nested = prost_types::Struct {
            fields: [(
                "b".to_owned(),
                prost_types::Value {
                    kind: Some(Kind::ListValue(prost_types::ListValue {
                        values: vec![prost_types::Value {
                            kind: Some(Kind::StructValue(flat)),
                        }],
                    })),
                },
            )]
            .into(),
        };
        assert_eq!(struct_depth(&nested), 3);
    }
}
