//! `NativeProducer`: the Rust SDK's batching `Producer` for Python.
//!
//! Events arrive either as JSON (a list of event objects) or as an Arrow IPC stream (a
//! table); both are converted here, so the hot path has no Python per event. What is not
//! simply accepted (refused before sending, rejected by the node, failed after retries) is
//! kept as an outcome the caller reads with `take_outcomes`.

use std::sync::{Arc, Mutex, PoisonError};

use pyo3::prelude::*;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::RwLock;

use credence::{Client, Event, OutcomeKind, Producer};

use crate::bridge::{awaitable, block_on};
use crate::errors::{native, to_py};
use crate::events;
use crate::options::ProducerOptions;
use crate::runtime::check_process;

/// One event that was not simply accepted.
#[derive(Debug, Serialize)]
struct Problem {
    /// The event's id, when it has one.
    event_id: Option<String>,
    /// Its position in the `send` call that handed it over (refused before sending).
    index: Option<usize>,
    /// `invalid` (refused here), `rejected` (refused by the node), `failed` (not delivered),
    /// `duplicate` (stored before).
    kind: &'static str,
    /// Why.
    reason: String,
}

type Problems = Arc<Mutex<Vec<Problem>>>;

fn record(problems: &Problems, p: Problem) {
    problems
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(p);
}

/// A producer; `close` (or leaving its `with` block) waits for every acknowledgement.
#[pyclass(module = "credence._native", frozen)]
pub(crate) struct NativeProducer {
    inner: Arc<RwLock<Option<Producer>>>,
    problems: Problems,
    pid: u32,
}

/// The events of a JSON list; an element that is not an event is recorded and skipped.
fn parse_events(json: &str, problems: &Problems) -> PyResult<Vec<Event>> {
    let items: Vec<Value> = serde_json::from_str(json)
        .map_err(|e| native("input", format!("events: not a JSON list: {e}")))?;
    let mut events = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let event_id = item
            .get("event_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match serde_json::from_value::<Event>(item) {
            Ok(e) => events.push(e),
            Err(e) => record(
                problems,
                Problem {
                    event_id,
                    index: Some(index),
                    kind: "invalid",
                    reason: format!("events[{index}]: {e}"),
                },
            ),
        }
    }
    Ok(events)
}

async fn send_all(inner: Arc<RwLock<Option<Producer>>>, events: Vec<Event>) -> PyResult<usize> {
    let guard = inner.read().await;
    let producer = guard
        .as_ref()
        .ok_or_else(|| native("closed", "the producer is closed"))?;
    let n = events.len();
    producer.send_all(events).await.map_err(|e| to_py(&e))?;
    Ok(n)
}

async fn flush(inner: Arc<RwLock<Option<Producer>>>) -> PyResult<()> {
    let guard = inner.read().await;
    match guard.as_ref() {
        Some(p) => p.flush().await.map_err(|e| to_py(&e)),
        None => Ok(()),
    }
}

async fn close(inner: Arc<RwLock<Option<Producer>>>) -> PyResult<String> {
    let taken = inner.write().await.take();
    match taken {
        Some(p) => {
            let stats = p.close().await.map_err(|e| to_py(&e))?;
            Ok(stats_json(&stats))
        }
        None => Err(native("closed", "the producer is closed already")),
    }
}

fn stats_json(s: &credence::ProducerStats) -> String {
    serde_json::json!({
        "sent": s.sent, "accepted": s.accepted, "duplicates": s.duplicates,
        "rejected": s.rejected, "failed": s.failed, "retries": s.retries,
    })
    .to_string()
}

impl NativeProducer {
    /// Builds a producer on `client`; must run inside the runtime that will host its task.
    pub(crate) fn build(client: &Client, options: ProducerOptions) -> PyResult<Self> {
        let problems: Problems = Arc::default();
        let sink = Arc::clone(&problems);
        let builder = options
            .apply(client.producer())
            .map_err(|e| to_py(&e))?
            .on_outcome(move |o| {
                let (kind, reason) = match o.kind {
                    OutcomeKind::Duplicate { retried } => (
                        "duplicate",
                        if retried {
                            "stored before (sent again after a failure: likely its own copy)"
                                .to_owned()
                        } else {
                            "stored before".to_owned()
                        },
                    ),
                    OutcomeKind::Rejected { reason } => ("rejected", reason),
                    OutcomeKind::Failed(e) => ("failed", e.to_string()),
                };
                record(
                    &sink,
                    Problem {
                        event_id: Some(o.event_id),
                        index: None,
                        kind,
                        reason,
                    },
                );
            });
        Ok(Self {
            inner: Arc::new(RwLock::new(Some(builder.build()))),
            problems,
            pid: std::process::id(),
        })
    }

    fn checked(&self) -> PyResult<Arc<RwLock<Option<Producer>>>> {
        check_process(self.pid, "producer").map_err(|m| native("fork", m))?;
        Ok(Arc::clone(&self.inner))
    }

    fn table(&self, ipc: &[u8]) -> PyResult<Vec<Event>> {
        let (events, refused) = events::from_ipc(ipc).map_err(|e| to_py(&e))?;
        for (row, reason) in refused {
            record(
                &self.problems,
                Problem {
                    event_id: None,
                    index: Some(row),
                    kind: "invalid",
                    reason,
                },
            );
        }
        Ok(events)
    }
}

#[pymethods]
impl NativeProducer {
    /// Queues the events of a JSON list, waiting while the queue is full; returns how many
    /// were queued (the others are outcomes of kind `invalid`).
    fn send(&self, py: Python<'_>, events: &str) -> PyResult<usize> {
        let inner = self.checked()?;
        let events = parse_events(events, &self.problems)?;
        block_on(py, send_all(inner, events))?
    }

    /// `send` as an awaitable.
    fn send_async<'py>(&self, py: Python<'py>, events: &str) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.checked()?;
        let events = parse_events(events, &self.problems)?;
        awaitable(py, send_all(inner, events))
    }

    /// Queues the rows of an Arrow IPC stream as events (see [`crate::events`]).
    fn send_table(&self, py: Python<'_>, ipc: &[u8]) -> PyResult<usize> {
        let inner = self.checked()?;
        let events = py.detach(|| self.table(ipc))?;
        block_on(py, send_all(inner, events))?
    }

    /// `send_table` as an awaitable.
    fn send_table_async<'py>(&self, py: Python<'py>, ipc: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.checked()?;
        let events = self.table(ipc)?;
        awaitable(py, send_all(inner, events))
    }

    /// Waits until everything queued so far is acknowledged.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let inner = self.checked()?;
        block_on(py, flush(inner))?
    }

    /// `flush` as an awaitable.
    fn flush_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.checked()?;
        awaitable(py, flush(inner))
    }

    /// Flushes and stops; returns the final counts as JSON.
    fn close(&self, py: Python<'_>) -> PyResult<String> {
        let inner = self.checked()?;
        block_on(py, close(inner))?
    }

    /// `close` as an awaitable.
    fn close_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let inner = self.checked()?;
        awaitable(py, close(inner))
    }

    /// Whether `close` has run.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.try_read().is_ok_and(|g| g.is_none())
    }

    /// The counts so far, as JSON (`None` once closed: `close` returned the last ones).
    fn stats(&self) -> Option<String> {
        self.inner
            .try_read()
            .ok()
            .and_then(|g| g.as_ref().map(|p| stats_json(&p.stats())))
    }

    /// The outcomes recorded since the last call, as a JSON list, oldest first.
    fn take_outcomes(&self) -> String {
        let taken =
            std::mem::take(&mut *self.problems.lock().unwrap_or_else(PoisonError::into_inner));
        serde_json::to_string(&taken).unwrap_or_else(|_| "[]".to_owned())
    }
}
