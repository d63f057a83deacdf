//! Sending encoded batches with `PublishEvents` over several HTTP/2 connections, paced or
//! as fast as the server answers, and what came back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::{BufMut as _, Bytes};
use credence_proto::v1 as pb;
use tokio::sync::{Mutex, mpsc};
use tonic::Status;
use tonic::codec::{Codec, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

use crate::latency::Latencies;

/// One encoded `PublishEventsRequest` and the number of events in it.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The request, encoded.
    pub bytes: Bytes,
    /// Events in it.
    pub events: u32,
    /// What each event is meant to be, in order (empty: all valid and new).
    pub intents: Vec<crate::world::Intent>,
}

/// Phases of a run; a result counts for the phase its call started in.
pub const WARMUP: u8 = 0;
/// The measured phase.
pub const MEASURE: u8 = 1;
/// Sending has stopped.
pub const STOPPED: u8 = 2;

/// What the senders saw in one phase (the report carries it, without the raw latencies).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Tally {
    /// Events in the requests sent.
    pub sent: u64,
    /// Events the server accepted.
    pub accepted: u64,
    /// Events reported as duplicates.
    pub duplicates: u64,
    /// Events rejected one by one.
    pub rejected: u64,
    /// Events of requests that failed as a whole, by gRPC status code.
    pub failed: BTreeMap<String, u64>,
    /// The first message of each failing status code.
    pub failure_messages: BTreeMap<String, String>,
    /// The first few per-event rejection reasons.
    pub rejection_samples: Vec<String>,
    /// Events sent again on purpose (`--world`): the node must answer DUPLICATE.
    pub intended_duplicates: u64,
    /// Events sent malformed on purpose (`--world`): the node must answer REJECTED.
    pub intended_malformed: u64,
    /// Events whose answer was not the one their intent calls for (a valid event not
    /// accepted, a duplicate not refused, a malformed event not rejected).
    pub unexpected: u64,
    /// `PublishEvents` latencies, one per request that got an answer.
    #[serde(skip)]
    pub latencies: Latencies,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.sent += other.sent;
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.rejected += other.rejected;
        self.intended_duplicates += other.intended_duplicates;
        self.intended_malformed += other.intended_malformed;
        self.unexpected += other.unexpected;
        for (code, n) in other.failed {
            *self.failed.entry(code).or_default() += n;
        }
        for (code, msg) in other.failure_messages {
            self.failure_messages.entry(code).or_insert(msg);
        }
        for r in other.rejection_samples {
            if self.rejection_samples.len() < 5 {
                self.rejection_samples.push(r);
            }
        }
        self.latencies.merge(&other.latencies);
    }

    fn record(
        &mut self,
        batch: &Batch,
        started: Instant,
        result: Result<pb::PublishEventsResponse, Status>,
        live: &Live,
    ) {
        let events = batch.events;
        self.sent += u64::from(events);
        live.sent.fetch_add(u64::from(events), Ordering::Relaxed);
        match result {
            Ok(response) => {
                self.judge(&batch.intents, &response);
                self.latencies
                    .record_us(started.elapsed().as_micros() as u64);
                live.accepted
                    .fetch_add(u64::from(response.accepted), Ordering::Relaxed);
                live.refused.fetch_add(
                    u64::from(response.duplicates + response.rejected),
                    Ordering::Relaxed,
                );
                self.accepted += u64::from(response.accepted);
                self.duplicates += u64::from(response.duplicates);
                self.rejected += u64::from(response.rejected);
                if response.rejected > 0 && self.rejection_samples.len() < 5 {
                    let rejected = pb::EventOutcome::Rejected as i32;
                    if let Some(r) = response.results.iter().find(|r| r.outcome == rejected) {
                        self.rejection_samples
                            .push(format!("#{} {}: {}", r.index, r.event_id, r.reason));
                    }
                }
            }
            Err(status) => {
                live.failed.fetch_add(u64::from(events), Ordering::Relaxed);
                let code = format!("{:?}", status.code());
                *self.failed.entry(code.clone()).or_default() += u64::from(events);
                self.failure_messages
                    .entry(code)
                    .or_insert_with(|| status.message().to_owned());
            }
        }
    }
}

impl Tally {
    /// Checks each answer against what its event was meant to be.
    fn judge(&mut self, intents: &[crate::world::Intent], response: &pb::PublishEventsResponse) {
        use crate::world::Intent;
        for (intent, result) in intents.iter().zip(&response.results) {
            let expected = match intent {
                Intent::Valid => pb::EventOutcome::Accepted,
                Intent::Duplicate => {
                    self.intended_duplicates += 1;
                    pb::EventOutcome::Duplicate
                }
                Intent::Malformed => {
                    self.intended_malformed += 1;
                    pb::EventOutcome::Rejected
                }
            };
            if result.outcome() != expected {
                self.unexpected += 1;
            }
        }
    }
}

/// The tallies of the warm-up and the measured phase.
#[derive(Clone, Debug, Default)]
pub struct Tallies {
    /// Warm-up.
    pub warmup: Tally,
    /// Measured phase.
    pub measure: Tally,
}

/// How the senders run.
#[derive(Clone, Debug)]
pub struct PublishConfig {
    /// gRPC endpoint.
    pub target: String,
    /// Connections.
    pub connections: usize,
    /// Requests in flight per connection.
    pub inflight: usize,
    /// Events per second over all connections; 0: no pacing.
    pub rate: u64,
    /// Events per batch (for the pacer).
    pub batch: usize,
    /// The bearer token put on every call.
    pub bearer: credence_proto::client::Bearer,
    /// TLS settings (a CA turns TLS on).
    pub tls: credence_proto::client::ClientTls,
    /// Events go straight to the node's Kafka topic through this producer instead of
    /// `PublishEvents` (`--kafka`).
    pub kafka: Option<Arc<credence::KafkaProducer>>,
}

/// Running totals of every phase, added to as answers come back: what the progress line
/// shows while the run goes on.
#[derive(Debug, Default)]
pub struct Live {
    sent: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

/// A reading of [`Live`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveCounts {
    /// Events in the requests answered (or failed) so far.
    pub sent: u64,
    /// Events accepted.
    pub accepted: u64,
    /// Events answered as duplicates or rejected.
    pub refused: u64,
    /// Events of requests that failed as a whole.
    pub failed: u64,
}

/// Shared control of running senders.
#[derive(Debug)]
pub struct Control {
    phase: AtomicU8,
    stop: AtomicBool,
    stopped: tokio::sync::watch::Sender<bool>,
    tickets: AtomicU64,
    live: Live,
}

impl Control {
    /// The running totals now.
    pub fn live(&self) -> LiveCounts {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LiveCounts {
            sent: read(&self.live.sent),
            accepted: read(&self.live.accepted),
            refused: read(&self.live.refused),
            failed: read(&self.live.failed),
        }
    }

    /// Turns true when the senders stop.
    pub fn stopped(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopped.subscribe()
    }

    /// Moves every sender to `phase`; calls started from now on count for it.
    pub fn set_phase(&self, phase: u8) {
        self.phase.store(phase, Ordering::SeqCst);
        if phase == STOPPED {
            self.stop.store(true, Ordering::SeqCst);
            self.stopped.send_replace(true);
        }
    }
}

/// Opens the connections (each `Endpoint::connect` is its own HTTP/2 connection).
pub async fn connect(config: &PublishConfig) -> anyhow::Result<Vec<Channel>> {
    let endpoint = credence_proto::client::endpoint(&config.target, &config.tls)
        .with_context(|| format!("bad --target {:?}", config.target))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .initial_stream_window_size(4 << 20)
        .initial_connection_window_size(16 << 20);
    let mut channels = Vec::with_capacity(config.connections);
    for _ in 0..config.connections {
        channels.push(
            endpoint
                .connect()
                .await
                .with_context(|| format!("connecting to {}", config.target))?,
        );
    }
    Ok(channels)
}

/// Starts the senders in `phase` ([`WARMUP`] or [`MEASURE`]); they take batches from
/// `batches` until told to stop or the channel ends. Join the returned handle for the
/// tallies.
pub fn start(
    config: &PublishConfig,
    channels: Vec<Channel>,
    batches: mpsc::Receiver<Batch>,
    phase: u8,
) -> (Arc<Control>, tokio::task::JoinHandle<Tallies>) {
    let control = Arc::new(Control {
        phase: AtomicU8::new(phase),
        stop: AtomicBool::new(false),
        stopped: tokio::sync::watch::Sender::new(false),
        tickets: AtomicU64::new(0),
        live: Live::default(),
    });
    let batches = Arc::new(Mutex::new(batches));
    let interval = (config.rate > 0)
        .then(|| Duration::from_secs_f64(config.batch as f64 / config.rate as f64));
    let t0 = tokio::time::Instant::now();
    let mut workers = Vec::new();
    for channel in channels {
        for _ in 0..config.inflight {
            let worker = Worker {
                client: tonic::client::Grpc::new(channel.clone())
                    .max_decoding_message_size(64 << 20)
                    .max_encoding_message_size(usize::MAX),
                control: Arc::clone(&control),
                kafka: config.kafka.clone(),
                bearer: config.bearer.clone(),
                batches: Arc::clone(&batches),
                interval,
                t0,
            };
            workers.push(tokio::spawn(worker.run()));
        }
    }
    let handle = tokio::spawn(async move {
        let mut all = Tallies::default();
        for w in workers {
            if let Ok(t) = w.await {
                all.warmup.merge(t.warmup);
                all.measure.merge(t.measure);
            }
        }
        all
    });
    (control, handle)
}

struct Worker {
    client: tonic::client::Grpc<Channel>,
    control: Arc<Control>,
    kafka: Option<Arc<credence::KafkaProducer>>,
    bearer: credence_proto::client::Bearer,
    batches: Arc<Mutex<mpsc::Receiver<Batch>>>,
    interval: Option<Duration>,
    t0: tokio::time::Instant,
}

impl Worker {
    async fn run(mut self) -> Tallies {
        let mut tallies = Tallies::default();
        let path = PathAndQuery::from_static("/credence.v1.IngestionService/PublishEvents");
        while !self.control.stop.load(Ordering::SeqCst) {
            // Paced, a request's latency counts from when it was due, not from when it went
            // out: a stall that delays the sends behind it shows in their latencies too
            // (no coordinated omission).
            let mut intended = None;
            if let Some(interval) = self.interval {
                let ticket = self.control.tickets.fetch_add(1, Ordering::SeqCst);
                let due = self.t0 + interval.mul_f64(ticket as f64);
                let mut stopped = self.control.stopped.subscribe();
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    _ = stopped.wait_for(|s| *s) => break,
                }
                if self.control.stop.load(Ordering::SeqCst) {
                    break;
                }
                intended = Some(due.into_std());
            }
            let Some(batch) = self.batches.lock().await.recv().await else {
                break;
            };
            let phase = self.control.phase.load(Ordering::SeqCst);
            if phase == STOPPED {
                break;
            }
            let started = intended.unwrap_or_else(Instant::now);
            let tally = if phase == WARMUP {
                &mut tallies.warmup
            } else {
                &mut tallies.measure
            };
            if let Some(kafka) = &self.kafka {
                let result = send_to_kafka(kafka, &batch.bytes).await;
                // The node's verdicts are not seen on this path: nothing to judge intents by.
                let unjudged = Batch {
                    intents: Vec::new(),
                    ..batch
                };
                tally.record(&unjudged, started, result, &self.control.live);
                continue;
            }
            let mut request = tonic::Request::new(batch.bytes.clone());
            self.bearer.apply(&mut request);
            let result = match self.client.ready().await {
                Ok(()) => self
                    .client
                    .unary(request, path.clone(), RawCodec)
                    .await
                    .map(tonic::Response::into_inner),
                Err(e) => Err(Status::unavailable(format!("connection not ready: {e}"))),
            };
            tally.record(&batch, started, result, &self.control.live);
        }
        tallies
    }
}

/// Sends one encoded `PublishEventsRequest`'s events to the Kafka topic, answered as the
/// node would answer them if every acknowledged event were accepted: Kafka's refusals count
/// as rejected, with their reason.
async fn send_to_kafka(
    kafka: &credence::KafkaProducer,
    request: &Bytes,
) -> Result<pb::PublishEventsResponse, Status> {
    use prost::Message as _;
    let request = pb::PublishEventsRequest::decode(request.clone()).map_err(|e| {
        Status::internal(format!("a batch the generator made does not decode: {e}"))
    })?;
    let mut response = pb::PublishEventsResponse::default();
    for (i, outcome) in kafka
        .send_proto(request.events)
        .await
        .into_iter()
        .enumerate()
    {
        match outcome {
            Ok(_) => response.accepted += 1,
            Err(e) => {
                response.rejected += 1;
                response.results.push(pb::EventResult {
                    index: i as u32,
                    outcome: pb::EventOutcome::Rejected as i32,
                    reason: e.to_string(),
                    ..Default::default()
                });
            }
        }
    }
    Ok(response)
}

/// Publishes `world`'s people and relations (before its events), a thousand per request.
pub async fn publish_world(
    world: &crate::world::World,
    channel: &Channel,
    bearer: &credence_proto::client::Bearer,
) -> anyhow::Result<()> {
    use credence_proto::v1::graph_service_client::GraphServiceClient;
    use credence_proto::v1::ingestion_service_client::IngestionServiceClient;
    const PER_REQUEST: usize = 1_000;
    let mut ingestion = IngestionServiceClient::new(channel.clone());
    for profiles in world.profiles().chunks(PER_REQUEST) {
        let mut request = tonic::Request::new(pb::UpsertProfilesRequest {
            profiles: profiles.to_vec(),
        });
        bearer.apply(&mut request);
        ingestion
            .upsert_profiles(request)
            .await
            .context("publishing the world's profiles")?;
    }
    let mut graph = GraphServiceClient::new(channel.clone());
    for relations in world.relations().chunks(PER_REQUEST) {
        let mut request = tonic::Request::new(pb::PutRelationsRequest {
            relations: relations.to_vec(),
        });
        bearer.apply(&mut request);
        graph
            .put_relations(request)
            .await
            .context("publishing the world's relations (needs the admin role)")?;
    }
    Ok(())
}

/// Sends pre-encoded request bytes as they are; decodes the response with prost.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = pb::PublishEventsResponse;
    type Encoder = RawEncoder;
    type Decoder = tonic_prost::ProstDecoder<pb::PublishEventsResponse>;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::new(tonic::codec::BufferSettings::default())
    }
}

/// The encoder of [`RawCodec`]: copies the bytes.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::Intent;

    #[test]
    fn answers_are_judged_against_what_each_event_was_meant_to_be() {
        let outcome = |o: pb::EventOutcome| pb::EventResult {
            outcome: o as i32,
            ..pb::EventResult::default()
        };
        let response = pb::PublishEventsResponse {
            results: vec![
                outcome(pb::EventOutcome::Accepted),
                outcome(pb::EventOutcome::Duplicate),
                outcome(pb::EventOutcome::Rejected),
                // A duplicate the node accepted: counted as unexpected.
                outcome(pb::EventOutcome::Accepted),
            ],
            ..pb::PublishEventsResponse::default()
        };
        let mut tally = Tally::default();
        let intents = [
            Intent::Valid,
            Intent::Duplicate,
            Intent::Malformed,
            Intent::Duplicate,
        ];
        tally.judge(&intents, &response);
        assert_eq!(
            (
                tally.intended_duplicates,
                tally.intended_malformed,
                tally.unexpected
            ),
            (2, 1, 1)
        );
    }
}
