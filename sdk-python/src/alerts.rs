//! `AlertStream`: a `WatchAlerts` stream read one alert at a time, blocking (with a
//! timeout) or awaited.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use pyo3::prelude::*;
use tokio::sync::Mutex;

use credence::{Alert, Client, Result};

use crate::bridge::{awaitable, block_on};
use crate::errors::{native, to_py};

type Stream = Arc<Mutex<Option<BoxStream<'static, Result<Alert>>>>>;

/// An open alert stream.
#[pyclass(module = "credence._native", frozen)]
pub(crate) struct AlertStream {
    stream: Stream,
}

impl AlertStream {
    pub(crate) async fn open(
        client: &Client,
        subject_ids: Vec<String>,
        new_tiers: Vec<String>,
    ) -> Result<Self> {
        let ids: Vec<&str> = subject_ids.iter().map(String::as_str).collect();
        let tiers: Vec<&str> = new_tiers.iter().map(String::as_str).collect();
        let stream = client.watch_alerts(&ids, &tiers).await?;
        Ok(Self {
            stream: Arc::new(Mutex::new(Some(stream))),
        })
    }
}

/// What waiting for the next alert gave: `(ended, alert JSON)`; `(false, None)` is a
/// timeout.
type Next = (bool, Option<String>);

async fn next(stream: Stream, timeout: Option<Duration>) -> PyResult<Next> {
    let mut guard = stream.lock().await;
    let Some(s) = guard.as_mut() else {
        return Ok((true, None));
    };
    let item = match timeout {
        None => s.next().await,
        Some(t) => match tokio::time::timeout(t, s.next()).await {
            Ok(item) => item,
            Err(_) => return Ok((false, None)),
        },
    };
    match item {
        None => {
            *guard = None;
            Ok((true, None))
        }
        Some(Err(e)) => Err(to_py(&e)),
        Some(Ok(alert)) => serde_json::to_string(&alert)
            .map(|json| (false, Some(json)))
            .map_err(|e| native("protocol", format!("an alert does not serialise: {e}"))),
    }
}

fn timeout(seconds: Option<f64>) -> PyResult<Option<Duration>> {
    seconds
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                native(
                    "input",
                    format!("timeout: {s} is not a duration in seconds (finite, not negative)"),
                )
            })
        })
        .transpose()
}

#[pymethods]
impl AlertStream {
    /// The next alert, waiting at most `timeout` seconds (`None`: until one comes).
    #[pyo3(signature = (timeout=None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Next> {
        let t = self::timeout(timeout)?;
        block_on(py, next(Arc::clone(&self.stream), t))?
    }

    /// `next` as an awaitable.
    #[pyo3(signature = (timeout=None))]
    fn next_async<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let t = self::timeout(timeout)?;
        awaitable(py, next(Arc::clone(&self.stream), t))
    }

    /// Closes the stream (the server sees the call end).
    fn close(&self) {
        if let Ok(mut g) = self.stream.try_lock() {
            *g = None;
        }
    }
}
