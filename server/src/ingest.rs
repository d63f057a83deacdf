//! Ingestion: validate each event, refuse duplicates, append the rest to the bus durably.
//!
//! Duplicates are refused here, on the full event id, against every event ever accepted
//! (the set of id digests is rebuilt from the bus at start). The scoring pipeline therefore
//! never sees an event twice, and the live engine state need not keep a digest per event.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use credence_proto::{partition_of, v1 as pb};
use credence_scorer::{Timestamp, event_digest};
use credence_storage::{BusRecord, Stores};
use parking_lot::Mutex;
use prost::Message as _;
use rustc_hash::FxHashSet;
use tokio::sync::watch;
use tonic::Status;

use crate::catalog::Catalog;
use crate::config::{IngestSection, PipelineSection};
use crate::convert;
use crate::metrics::Metrics;
use crate::status;

/// Longest event id, subject id or event type accepted, in bytes (the contract's limit).
const MAX_ID_BYTES: usize = 128;

/// Per partition, the first bus offset the pipeline has not committed yet.
pub struct Progress {
    committed: Vec<AtomicU64>,
}

impl Progress {
    /// Progress of `partitions` partitions, all at 0.
    pub fn new(partitions: u32) -> Self {
        Self {
            committed: (0..partitions).map(|_| AtomicU64::new(0)).collect(),
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
    seen: Mutex<FxHashSet<u128>>,
    progress: Arc<Progress>,
    ends: Vec<watch::Receiver<u64>>,
}

impl Ingest {
    /// Ingestion over `stores`; reads the bus once to learn every event id accepted so far.
    pub async fn open(
        stores: Stores,
        catalog: Arc<Catalog>,
        limits: IngestSection,
        pipeline: PipelineSection,
        progress: Arc<Progress>,
    ) -> anyhow::Result<Self> {
        let min_time = Timestamp::parse_rfc3339(&limits.min_time)
            .map_err(|e| anyhow::anyhow!("ingest.min_time: {e}"))?;
        let mut seen = FxHashSet::default();
        let partitions = stores.bus.partitions();
        for p in 0..partitions {
            let mut from = 0;
            loop {
                let records = stores.bus.read(p, from, 65_536).await?;
                let Some(&(last, _)) = records.last() else {
                    break;
                };
                for (_, bytes) in &records {
                    seen.insert(event_digest(&event_id_of(bytes)?));
                }
                from = last + 1;
            }
        }
        tracing::info!(
            events = seen.len(),
            "event ids of the bus indexed for duplicate checks"
        );
        let ends = (0..partitions).map(|p| stores.bus.end(p)).collect();
        Ok(Self {
            stores,
            catalog,
            limits,
            pipeline,
            min_time,
            seen: Mutex::new(seen),
            progress,
            ends,
        })
    }

    /// Events accepted but not yet committed by the pipeline.
    pub fn lag(&self) -> u64 {
        self.ends
            .iter()
            .enumerate()
            .map(|(p, end)| {
                #[allow(clippy::cast_possible_truncation, reason = "partition counts fit u32")]
                let p = p as u32;
                end.borrow().saturating_sub(self.progress.get(p))
            })
            .sum()
    }

    /// Validates, deduplicates and appends a batch. `first_index` numbers the events (a
    /// stream counts over all its batches).
    pub async fn publish(
        &self,
        mut events: Vec<pb::Event>,
        first_index: u32,
    ) -> Result<BatchOutcome, Status> {
        if events.len() > self.limits.max_batch_events {
            return Err(Status::invalid_argument(format!(
                "a batch holds at most {} events (ingest.max_batch_events); this one has {}: \
                 split it",
                self.limits.max_batch_events,
                events.len()
            )));
        }
        self.wait_for_pipeline().await?;
        let latest = Timestamp::now().saturating_add(credence_scorer::Duration::from_nanos(
            i64::try_from(self.limits.max_future.as_nanos()).unwrap_or(i64::MAX),
        ));
        let mut verdicts: Vec<Result<(), String>> =
            events.iter().map(|e| self.check(e, latest)).collect();
        self.check_subjects_exist(&events, &mut verdicts).await?;

        let now = Timestamp::now();
        let received_at = convert::timestamp_to_pb(now);
        let partitions = self.stores.bus.partitions();
        let mut outcome = BatchOutcome {
            results: Vec::with_capacity(events.len()),
            ..BatchOutcome::default()
        };
        let mut records = Vec::with_capacity(events.len());
        let mut digests = Vec::with_capacity(events.len());
        // Per record, the index of its event's result.
        let mut slots = Vec::with_capacity(events.len());
        {
            let mut seen = self.seen.lock();
            for (i, (event, verdict)) in events.iter_mut().zip(verdicts).enumerate() {
                #[allow(clippy::cast_possible_truncation, reason = "batches are far below u32")]
                let index = first_index + i as u32;
                let (outcome_kind, reason) = if let Err(reason) = verdict {
                    (pb::EventOutcome::Rejected, reason)
                } else {
                    let digest = event_digest(&event.event_id);
                    if seen.insert(digest) {
                        digests.push(digest);
                        slots.push(i);
                        event.received_at = Some(received_at);
                        records.push(BusRecord {
                            partition: partition_of(&event.subject_id, partitions),
                            payload: event.encode_to_vec(),
                        });
                        (pb::EventOutcome::Accepted, String::new())
                    } else {
                        (
                            pb::EventOutcome::Duplicate,
                            format!("event_id {:?} was accepted before", event.event_id),
                        )
                    }
                };
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
        }
        let appended = match self.stores.bus.append(records).await {
            Ok(appended) => appended,
            Err(e) => {
                // Nothing of this batch was acknowledged: forget its ids so a retry is accepted.
                let mut seen = self.seen.lock();
                for d in &digests {
                    seen.remove(d);
                }
                return Err(status::storage(e));
            }
        };
        for refused in settle(&mut outcome, appended, &slots) {
            // Not stored: forget its id so a retry is accepted.
            self.seen.lock().remove(&digests[refused]);
        }
        let m = &Metrics::global().events_received;
        m.with_label_values(&["accepted"])
            .inc_by(u64::from(outcome.accepted));
        m.with_label_values(&["duplicate"])
            .inc_by(u64::from(outcome.duplicates));
        m.with_label_values(&["rejected"])
            .inc_by(u64::from(outcome.rejected));
        Ok(outcome)
    }

    /// Backpressure: waits while the pipeline is too far behind, then gives up.
    async fn wait_for_pipeline(&self) -> Result<(), Status> {
        let started = Instant::now();
        loop {
            let lag = self.lag();
            if lag <= self.pipeline.max_lag_events {
                return Ok(());
            }
            if started.elapsed() >= self.pipeline.backpressure_wait {
                return Err(Status::resource_exhausted(format!(
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
        if occurred_at < self.min_time {
            return Err(format!(
                "occurred_at: {occurred_at} is before the earliest time accepted ({}, \
                 ingest.min_time)",
                self.min_time
            ));
        }
        if occurred_at > latest {
            return Err(format!(
                "occurred_at: {occurred_at} is more than {} ahead of the server clock \
                 (ingest.max_future)",
                humantime::format_duration(self.limits.max_future)
            ));
        }
        if let Some(payload) = &e.payload {
            let size = payload.encoded_len();
            if size > self.limits.max_payload_bytes {
                return Err(format!(
                    "payload: {size} bytes is over the {}-byte limit (ingest.max_payload_bytes)",
                    self.limits.max_payload_bytes
                ));
            }
            let depth = struct_depth(payload);
            if depth > self.limits.max_payload_depth {
                return Err(format!(
                    "payload: nested {depth} levels deep, over the limit of {} \
                     (ingest.max_payload_depth)",
                    self.limits.max_payload_depth
                ));
            }
        }
        Ok(())
    }

    /// With auto-create off, an event for a subject with neither profile nor score is
    /// rejected.
    async fn check_subjects_exist(
        &self,
        events: &[pb::Event],
        verdicts: &mut [Result<(), String>],
    ) -> Result<(), Status> {
        if self.catalog.live().engine.config().auto_create_subjects {
            return Ok(());
        }
        let ids: Vec<String> = events.iter().map(|e| e.subject_id.clone()).collect();
        let profiles = self
            .stores
            .profiles
            .get_profiles(&ids)
            .await
            .map_err(status::storage)?;
        let snapshots = self
            .stores
            .snapshots
            .get_snapshots(&ids)
            .await
            .map_err(status::storage)?;
        for (i, verdict) in verdicts.iter_mut().enumerate() {
            if verdict.is_ok() && profiles[i].is_none() && snapshots[i].is_none() {
                *verdict = Err(format!(
                    "subject_id: {:?} is not a known subject and auto_create_subjects is off \
                     in the scoring config; upsert its profile first",
                    ids[i]
                ));
            }
        }
        Ok(())
    }
}

/// Applies the bus's answer per record (`slots[r]` is the result index of record `r`'s event):
/// an event whose record the bus refused (Kafka answers per record) was not stored, and its
/// result says so; the others stand. Returns the indexes of the refused records.
fn settle(
    outcome: &mut BatchOutcome,
    appended: Vec<credence_storage::Result<u64>>,
    slots: &[usize],
) -> Vec<usize> {
    let mut refused = Vec::new();
    for (record, (result, &slot)) in appended.into_iter().zip(slots).enumerate() {
        if let Err(e) = result {
            let r = &mut outcome.results[slot];
            r.outcome = pb::EventOutcome::Rejected.into();
            r.reason = format!("not stored: {e}; retry this event");
            outcome.accepted -= 1;
            outcome.rejected += 1;
            refused.push(record);
        }
    }
    refused
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
    use super::*;

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
        assert_eq!(settle(&mut outcome, appended, &[0, 2, 3]), [1]);
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
