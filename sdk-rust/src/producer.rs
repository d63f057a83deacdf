//! [`Producer`]: publishing a continuous flow of events with batching, backpressure,
//! retries without duplicates and per-event outcomes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use credence_proto::v1 as pb;
use futures::StreamExt as _;
use prost::Message as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::client::RetryPolicy;
use crate::{Client, Error, Event, EventOutcome, EventResult, Result};

/// Which RPC carries the batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Transport {
    /// `StreamEvents`: a segment of batches per call (the default).
    Stream,
    /// `PublishEvents`: one call per batch, `in_flight` calls at once.
    Unary,
}

/// An event that was not simply accepted.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Outcome {
    /// The event's id.
    pub event_id: String,
    /// What happened.
    pub kind: OutcomeKind,
}

/// What happened to an event that was not simply accepted.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum OutcomeKind {
    /// Its id was stored before. `retried`: the producer sent it more than once (after a
    /// failure), so the copy stored may well be its own first one.
    Duplicate {
        /// Whether the producer sent it more than once.
        retried: bool,
    },
    /// The node refused it; the reason names the field.
    Rejected {
        /// Why.
        reason: String,
    },
    /// It could not be delivered: a non-retryable error, or retries ran out. It may have
    /// been stored all the same (the answer was lost); publishing it again is safe.
    Failed(Error),
}

/// Counts since the producer was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ProducerStats {
    /// Events handed to `send`.
    pub sent: u64,
    /// Events the node stored.
    pub accepted: u64,
    /// Events answered DUPLICATE.
    pub duplicates: u64,
    /// Events refused.
    pub rejected: u64,
    /// Events that could not be delivered.
    pub failed: u64,
    /// Segments sent again after a retryable failure.
    pub retries: u64,
}

impl ProducerStats {
    /// Events handed over and not yet acknowledged.
    pub fn pending(&self) -> u64 {
        self.sent
            .saturating_sub(self.accepted + self.duplicates + self.rejected + self.failed)
    }
}

type Callback = Arc<dyn Fn(Outcome) + Send + Sync>;

/// The most calls a producer keeps in flight (`flush` takes every slot at once, and a
/// semaphore hands out at most `u32::MAX` in one call).
const MAX_IN_FLIGHT: usize = 1_024;

/// Settings of a [`Producer`]; [`Client::producer`] makes one.
#[must_use]
pub struct ProducerBuilder {
    client: Client,
    config: Config,
    on_outcome: Option<Callback>,
}

#[derive(Clone, Debug)]
struct Config {
    batch_events: usize,
    batch_bytes: usize,
    linger: Duration,
    queue_events: usize,
    in_flight: usize,
    stream_batches: usize,
    retry: RetryPolicy,
    transport: Transport,
}

impl ProducerBuilder {
    /// Events per batch at most (default 1,000).
    pub fn batch_events(mut self, n: usize) -> Self {
        self.config.batch_events = n.max(1);
        self
    }

    /// Encoded bytes per batch at most (default 1 MiB; one larger event goes alone).
    pub fn batch_bytes(mut self, n: usize) -> Self {
        self.config.batch_bytes = n.max(1);
        self
    }

    /// How long a batch may wait for more events (default 5 ms).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.config.linger = linger;
        self
    }

    /// Events the queue holds before `send` waits (default 10,000).
    pub fn queue_events(mut self, n: usize) -> Self {
        self.config.queue_events = n.max(1);
        self
    }

    /// Calls in flight at once (default 4; 1 to 1,024).
    pub fn in_flight(mut self, n: usize) -> Self {
        self.config.in_flight = n.clamp(1, MAX_IN_FLIGHT);
        self
    }

    /// Batches per `StreamEvents` call at most (default 16). The node lists at most 1,000
    /// events that were not accepted per call; keep `stream_batches * batch_events` near
    /// that if many rejections are expected and each must be reported.
    pub fn stream_batches(mut self, n: usize) -> Self {
        self.config.stream_batches = n.max(1);
        self
    }

    /// How failed segments are retried (default: 10 attempts, 100 ms doubling to 5 s).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// `StreamEvents` (default) or `PublishEvents`.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.config.transport = transport;
        self
    }

    /// Called (on the producer's task: keep it short) for every event not simply accepted:
    /// duplicates, rejections, failures. Without it they are logged (`tracing`).
    pub fn on_outcome(mut self, f: impl Fn(Outcome) + Send + Sync + 'static) -> Self {
        self.on_outcome = Some(Arc::new(f));
        self
    }

    /// Starts the producer's task (needs a Tokio runtime).
    pub fn build(self) -> Producer {
        let (tx, rx) = mpsc::channel(self.config.queue_events);
        let shared = Arc::new(Shared {
            stats: Stats::default(),
            on_outcome: self.on_outcome,
        });
        let task = tokio::spawn(batcher(
            rx,
            self.client,
            Arc::new(self.config),
            Arc::clone(&shared),
        ));
        Producer {
            tx: Some(tx),
            task: Some(task),
            shared,
        }
    }
}

impl Client {
    /// A [`ProducerBuilder`] on this client's connection.
    ///
    /// ```no_run
    /// # async fn run(client: credence::Client) -> credence::Result<()> {
    /// use std::time::Duration;
    /// let producer = client
    ///     .producer()
    ///     .batch_events(500)
    ///     .linger(Duration::from_millis(10))
    ///     .on_outcome(|o| eprintln!("{}: {:?}", o.event_id, o.kind))
    ///     .build();
    /// for i in 0..10_000 {
    ///     let event = credence::Event::new(format!("e-{i}"), "subject-0001", "online", chrono::Utc::now())
    ///         .subtype("login");
    ///     producer.send(event).await?; // waits while the queue is full
    /// }
    /// let stats = producer.close().await?; // every event acknowledged
    /// println!("{} accepted", stats.accepted);
    /// # Ok(()) }
    /// ```
    pub fn producer(&self) -> ProducerBuilder {
        ProducerBuilder {
            client: self.clone(),
            config: Config {
                batch_events: 1_000,
                batch_bytes: 1 << 20,
                linger: Duration::from_millis(5),
                queue_events: 10_000,
                in_flight: 4,
                stream_batches: 16,
                retry: RetryPolicy {
                    max_attempts: 10,
                    ..RetryPolicy::default()
                },
                transport: Transport::Stream,
            },
            on_outcome: None,
        }
    }
}

/// Publishes events in batches in the background.
///
/// How it works: `send` puts an event on a bounded queue (a full queue makes `send` wait).
/// One task takes events off the queue into batches, closed by count, by encoded bytes or
/// when the linger time runs out. Batches go out over `StreamEvents` calls ("segments" of
/// up to `stream_batches` batches; a segment is closed early when the flow pauses, so its
/// events are acknowledged soon), at most `in_flight` segments at once; when all are busy,
/// batching waits, the queue fills and `send` waits: memory stays bounded. A segment that
/// fails with UNAVAILABLE or RESOURCE_EXHAUSTED (or loses its connection) is sent again whole, with the same event
/// ids, after a back-off: events that landed the first time come back DUPLICATE, so nothing
/// is stored twice. `flush` and `close` wait until every event handed over before them is
/// acknowledged (or has failed for good).
///
/// Build one with [`Client::producer`]. `send` waits while the queue is full; `flush`
/// waits for every event sent before it; `close` does the same and stops the task.
/// Dropping a producer without `close` logs a warning: its queued events are still sent
/// while the runtime lives, but nobody waits for them.
///
/// ```no_run
/// # async fn run(client: credence::Client, events: Vec<credence::Event>) -> credence::Result<()> {
/// let producer = client.producer().build();
/// producer.send_all(events).await?;
/// producer.flush().await?; // everything sent so far is acknowledged
/// assert_eq!(producer.stats().pending(), 0);
/// producer.close().await?;
/// # Ok(()) }
/// ```
pub struct Producer {
    tx: Option<mpsc::Sender<Command>>,
    task: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[allow(
    clippy::large_enum_variant,
    reason = "nearly every command is an event; boxing would allocate once per event"
)]
enum Command {
    Event(pb::Event),
    Flush(oneshot::Sender<()>),
}

struct Shared {
    stats: Stats,
    on_outcome: Option<Callback>,
}

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
}

impl Shared {
    fn report(&self, outcome: Outcome) {
        match &self.on_outcome {
            Some(f) => f(outcome),
            None => match &outcome.kind {
                OutcomeKind::Duplicate { .. } => {
                    tracing::debug!(event_id = %outcome.event_id, "duplicate event");
                }
                OutcomeKind::Rejected { reason } => {
                    tracing::warn!(event_id = %outcome.event_id, %reason, "event rejected");
                }
                OutcomeKind::Failed(e) => {
                    tracing::warn!(event_id = %outcome.event_id, error = %e, "event not delivered");
                }
            },
        }
    }
}

impl Producer {
    /// Queues one event; waits while the queue is full.
    pub async fn send(&self, event: Event) -> Result<()> {
        self.enqueue(event.to_proto()).await
    }

    /// Queues events in order; waits while the queue is full.
    pub async fn send_all(&self, events: impl IntoIterator<Item = Event>) -> Result<()> {
        for event in events {
            self.send(event).await?;
        }
        Ok(())
    }

    /// Queues a generated event as it is.
    pub async fn send_proto(&self, event: pb::Event) -> Result<()> {
        self.enqueue(event).await
    }

    async fn enqueue(&self, event: pb::Event) -> Result<()> {
        let tx = self.sender()?;
        tx.send(Command::Event(event))
            .await
            .map_err(|_| Error::Closed("its task stopped".into()))?;
        self.shared.stats.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn sender(&self) -> Result<&mpsc::Sender<Command>> {
        self.tx
            .as_ref()
            .ok_or_else(|| Error::Closed("close() was called".into()))
    }

    /// Sends what is batched now and waits until every event queued before this call is
    /// acknowledged (or reported failed).
    pub async fn flush(&self) -> Result<()> {
        let (done, wait) = oneshot::channel();
        self.sender()?
            .send(Command::Flush(done))
            .await
            .map_err(|_| Error::Closed("its task stopped".into()))?;
        wait.await
            .map_err(|_| Error::Closed("its task stopped during flush".into()))
    }

    /// Flushes, stops the task and returns the final counts.
    pub async fn close(mut self) -> Result<ProducerStats> {
        drop(self.tx.take());
        if let Some(task) = self.task.take() {
            task.await
                .map_err(|e| Error::Closed(format!("its task failed: {e}")))?;
        }
        Ok(self.stats())
    }

    /// The counts so far.
    pub fn stats(&self) -> ProducerStats {
        let s = &self.shared.stats;
        ProducerStats {
            sent: s.sent.load(Ordering::Relaxed),
            accepted: s.accepted.load(Ordering::Relaxed),
            duplicates: s.duplicates.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if self.tx.is_some() {
            let pending = self.stats().pending();
            tracing::warn!(
                pending,
                "credence::Producer dropped without close(): {pending} events not yet \
                 acknowledged are sent in the background but nobody waits for them; call \
                 `producer.close().await` before dropping it"
            );
        }
    }
}

/// The `StreamEvents` call (or `PublishEvents` calls) batches are going out on.
struct Segment {
    tx: mpsc::UnboundedSender<Vec<pb::Event>>,
    batches: usize,
}

/// Forms batches from the queue and hands them to segments.
async fn batcher(
    mut rx: mpsc::Receiver<Command>,
    client: Client,
    config: Arc<Config>,
    shared: Arc<Shared>,
) {
    let permits = Arc::new(Semaphore::new(config.in_flight));
    let mut batcher = Batcher {
        batch: Vec::with_capacity(config.batch_events),
        bytes: 0,
        segment: None,
        client,
        config: Arc::clone(&config),
        shared,
        permits: Arc::clone(&permits),
    };
    // When the open batch must go out, and when the open segment is closed if no batch
    // came since: a pause in the flow gets everything acknowledged within a linger or two.
    let mut batch_due: Option<Instant> = None;
    let mut segment_due: Option<Instant> = None;
    loop {
        let due = match (batch_due, segment_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let command = match due {
            Some(due) => tokio::select! {
                command = rx.recv() => command,
                () = tokio::time::sleep_until(due) => {
                    let now = Instant::now();
                    if batch_due.is_some_and(|d| d <= now) {
                        batcher.dispatch().await;
                        batch_due = None;
                        segment_due = Some(now + config.linger);
                    }
                    if segment_due.is_some_and(|d| d <= now) {
                        batcher.segment = None;
                        segment_due = None;
                    }
                    continue;
                }
            },
            None => rx.recv().await,
        };
        match command {
            Some(Command::Event(event)) => {
                let size = event.encoded_len();
                if !batcher.batch.is_empty() && batcher.bytes + size > config.batch_bytes {
                    batcher.dispatch().await;
                    segment_due = Some(Instant::now() + config.linger);
                }
                batcher.bytes += size;
                batcher.batch.push(event);
                batch_due.get_or_insert_with(|| Instant::now() + config.linger);
                if batcher.batch.len() >= config.batch_events {
                    batcher.dispatch().await;
                    batch_due = None;
                    segment_due = Some(Instant::now() + config.linger);
                }
            }
            Some(Command::Flush(done)) => {
                batcher.drain().await;
                (batch_due, segment_due) = (None, None);
                let _ = done.send(());
            }
            None => {
                batcher.drain().await;
                return;
            }
        }
    }
}

struct Batcher {
    batch: Vec<pb::Event>,
    bytes: usize,
    segment: Option<Segment>,
    client: Client,
    config: Arc<Config>,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
}

impl Batcher {
    /// Hands the open batch to the open segment, opening one (and waiting for a free slot)
    /// when there is none.
    async fn dispatch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(
            &mut self.batch,
            Vec::with_capacity(self.config.batch_events),
        );
        self.bytes = 0;
        let mut batch = batch;
        loop {
            let mut segment = match self.segment.take() {
                Some(s) => s,
                None => match self.open_segment().await {
                    Some(s) => s,
                    None => return,
                },
            };
            match segment.tx.send(batch) {
                Ok(()) => {
                    segment.batches += 1;
                    let full = match self.config.transport {
                        Transport::Stream => segment.batches >= self.config.stream_batches,
                        Transport::Unary => true,
                    };
                    if !full {
                        self.segment = Some(segment);
                    }
                    return;
                }
                // The segment's call failed and it takes no more batches (it is retrying what
                // it has): this batch goes to a new one, which waits for a free slot.
                Err(refused) => batch = refused.0,
            }
        }
    }

    /// Starts a segment's task; waits for a free slot first. Waiting here is the
    /// backpressure: the queue fills while every slot is busy.
    async fn open_segment(&self) -> Option<Segment> {
        // The semaphore is never closed, so this only fails in theory.
        let permit = Arc::clone(&self.permits).acquire_owned().await.ok()?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run_segment(
            self.client.clone(),
            Arc::clone(&self.config),
            Arc::clone(&self.shared),
            permit,
            rx,
        ));
        Some(Segment { tx, batches: 0 })
    }

    /// Sends everything, closes the segment and waits until every segment has finished.
    async fn drain(&mut self) {
        self.dispatch().await;
        self.segment = None;
        // `in_flight` is at most MAX_IN_FLIGHT, so it fits.
        let all = u32::try_from(self.config.in_flight).unwrap_or(u32::MAX);
        // Every segment holds a slot until its events are acknowledged or failed.
        if let Ok(permits) = self.permits.acquire_many(all).await {
            drop(permits);
        }
    }
}

/// Sends one segment's batches, retrying the whole on a retryable failure, and reports
/// what happened to its events. Holds `_permit` until done.
async fn run_segment(
    client: Client,
    config: Arc<Config>,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
    mut rx: mpsc::UnboundedReceiver<Vec<pb::Event>>,
) {
    let mut kept: Vec<Vec<pb::Event>> = Vec::new();
    let mut attempt = 1;
    let mut result = match config.transport {
        Transport::Stream => first_stream(&client, &mut rx, &mut kept).await,
        Transport::Unary => {
            while let Some(batch) = rx.recv().await {
                kept.push(batch);
            }
            send_again(&client, config.transport, &kept, attempt).await
        }
    };
    loop {
        match result {
            Ok(answer) => {
                settle(&shared, answer, attempt > 1);
                return;
            }
            Err(e) if e.is_retryable() && attempt < config.retry.max_attempts => {
                let asked = match &e {
                    Error::ResourceExhausted { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let wait = config.retry.backoff(attempt, asked);
                tracing::debug!(error = %e, ?wait, attempt, "producer: sending the segment again");
                shared.stats.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(wait).await;
                attempt += 1;
                result = send_again(&client, config.transport, &kept, attempt).await;
            }
            Err(e) => {
                let e = e.with_attempts(attempt);
                let events = kept.iter().map(Vec::len).sum::<usize>() as u64;
                shared.stats.failed.fetch_add(events, Ordering::Relaxed);
                for event in kept.iter().flatten() {
                    shared.report(Outcome {
                        event_id: event.event_id.clone(),
                        kind: OutcomeKind::Failed(e.clone()),
                    });
                }
                return;
            }
        }
    }
}

/// What the node answered for a segment: counts and the events not accepted.
struct Answer {
    accepted: u64,
    duplicates: u64,
    rejected: u64,
    not_accepted: Vec<pb::EventResult>,
}

/// The first attempt of a `StreamEvents` segment: batches go out as they come, and are
/// kept for a retry. Reads `rx` to its end even when the call fails early.
async fn first_stream(
    client: &Client,
    rx: &mut mpsc::UnboundedReceiver<Vec<pb::Event>>,
    kept: &mut Vec<Vec<pb::Event>>,
) -> Result<Answer> {
    let (tx, outgoing) = mpsc::unbounded_channel::<Vec<pb::Event>>();
    let requests =
        UnboundedReceiverStream::new(outgoing).map(|events| pb::StreamEventsRequest { events });
    let mut ingestion = client.ingestion();
    let call = ingestion.stream_events(client.request(requests, false));
    tokio::pin!(call);
    let mut tx = Some(tx);
    let mut answer = None;
    loop {
        tokio::select! {
            batch = rx.recv() => match batch {
                Some(batch) => {
                    if let Some(sender) = &tx
                        && sender.send(batch.clone()).is_err()
                    {
                        tx = None;
                    }
                    kept.push(batch);
                }
                None => break,
            },
            done = &mut call, if answer.is_none() => {
                // The call ended before its request stream did: it failed. Take no more
                // batches (the batcher sends them to another segment), keep those already
                // handed over for the retry.
                answer = Some(done);
                tx = None;
                rx.close();
            }
        }
    }
    // Closing the request stream tells the node the segment is complete.
    drop(tx);
    let done = match answer {
        Some(done) => done,
        None => call.await,
    };
    done.map(|r| stream_answer(r.into_inner()))
        .map_err(|s| Error::from_status(&s, 1))
}

fn stream_answer(r: pb::StreamEventsResponse) -> Answer {
    Answer {
        accepted: r.accepted,
        duplicates: r.duplicates,
        rejected: r.rejected,
        not_accepted: r.not_accepted,
    }
}

/// A whole segment again (or a unary batch).
async fn send_again(
    client: &Client,
    transport: Transport,
    kept: &[Vec<pb::Event>],
    attempt: u32,
) -> Result<Answer> {
    let mut ingestion = client.ingestion();
    let answer = match transport {
        Transport::Stream => {
            let requests: Vec<pb::StreamEventsRequest> = kept
                .iter()
                .map(|events| pb::StreamEventsRequest {
                    events: events.clone(),
                })
                .collect();
            ingestion
                .stream_events(client.request(futures::stream::iter(requests), true))
                .await
                .map(|r| stream_answer(r.into_inner()))
        }
        Transport::Unary => {
            let events = kept.concat();
            ingestion
                .publish_events(client.request(pb::PublishEventsRequest { events }, true))
                .await
                .map(|r| {
                    let r = r.into_inner();
                    Answer {
                        accepted: u64::from(r.accepted),
                        duplicates: u64::from(r.duplicates),
                        rejected: u64::from(r.rejected),
                        not_accepted: r
                            .results
                            .into_iter()
                            .filter(|e| e.outcome != i32::from(pb::EventOutcome::Accepted))
                            .collect(),
                    }
                })
        }
    };
    answer.map_err(|s| Error::from_status(&s, attempt))
}

/// Counts a segment's answer and reports the events not accepted.
fn settle(shared: &Shared, answer: Answer, retried: bool) {
    let s = &shared.stats;
    s.accepted.fetch_add(answer.accepted, Ordering::Relaxed);
    s.duplicates.fetch_add(answer.duplicates, Ordering::Relaxed);
    s.rejected.fetch_add(answer.rejected, Ordering::Relaxed);
    let listed = answer.not_accepted.len() as u64;
    let unlisted = (answer.duplicates + answer.rejected).saturating_sub(listed);
    if unlisted > 0 {
        tracing::warn!(
            unlisted,
            "the node listed only {listed} of the events it did not accept in one call; \
             lower stream_batches or batch_events to see every one"
        );
    }
    for result in answer.not_accepted {
        let kind = match EventResult::from_proto(result.clone()).map(|r| r.outcome) {
            Ok(EventOutcome::Duplicate) => OutcomeKind::Duplicate { retried },
            Ok(EventOutcome::Accepted) => continue,
            _ => OutcomeKind::Rejected {
                reason: if result.reason.is_empty() {
                    format!("outcome {}", result.outcome)
                } else {
                    result.reason
                },
            },
        };
        shared.report(Outcome {
            event_id: result.event_id,
            kind,
        });
    }
}
