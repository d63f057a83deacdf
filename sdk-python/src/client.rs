//! `NativeClient`: one connection, every RPC by name (see [`crate::dispatch`]).

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use credence::Client;

use crate::alerts::AlertStream;
use crate::bridge::{awaitable, block_on};
use crate::dispatch::{self, Reply};
use crate::errors::{native, to_py};
use crate::options::{ClientOptions, ProducerOptions};
use crate::producer::NativeProducer;
use crate::runtime::{check_process, runtime};

/// What a call answered: JSON text, or an analytics result's Arrow IPC stream.
#[pyclass(module = "credence._native", frozen)]
pub(crate) struct Answer {
    reply: Reply,
}

#[pymethods]
impl Answer {
    /// The JSON document, unless this is an Arrow answer.
    #[getter]
    fn json(&self) -> Option<String> {
        match &self.reply {
            Reply::Json(v) => Some(v.to_string()),
            Reply::Arrow(..) => None,
        }
    }

    /// The Arrow IPC stream of an analytics answer.
    #[getter]
    fn arrow<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        match &self.reply {
            Reply::Arrow(bytes, _) => Some(PyBytes::new(py, bytes)),
            Reply::Json(_) => None,
        }
    }

    /// Rows of an analytics answer.
    #[getter]
    fn rows(&self) -> u64 {
        match &self.reply {
            Reply::Arrow(_, rows) => *rows,
            Reply::Json(_) => 0,
        }
    }
}

/// A connection to a node.
#[pyclass(module = "credence._native", frozen)]
pub(crate) struct NativeClient {
    client: Client,
    /// The process it was made in (see [`crate::runtime`]).
    pid: u32,
}

async fn connect(url: String, options: ClientOptions) -> Result<Client, credence::Error> {
    options.apply(Client::builder(&url))?.connect().await
}

impl NativeClient {
    fn checked(&self) -> PyResult<&Client> {
        check_process(self.pid, "client").map_err(|m| native("fork", m))?;
        Ok(&self.client)
    }
}

#[pymethods]
impl NativeClient {
    /// Connects (eagerly: a wrong address fails here) with `options` as JSON.
    #[staticmethod]
    fn connect(py: Python<'_>, url: String, options: &str) -> PyResult<Self> {
        let options = ClientOptions::parse(options).map_err(|e| to_py(&e))?;
        let client = block_on(py, connect(url, options))?.map_err(|e| to_py(&e))?;
        Ok(Self {
            client,
            pid: std::process::id(),
        })
    }

    /// `connect` as an awaitable.
    #[staticmethod]
    fn connect_async<'py>(
        py: Python<'py>,
        url: String,
        options: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let options = ClientOptions::parse(options).map_err(|e| to_py(&e))?;
        awaitable(py, async move {
            let client = connect(url, options).await.map_err(|e| to_py(&e))?;
            Ok(Self {
                client,
                pid: std::process::id(),
            })
        })
    }

    /// The address it was given.
    #[getter]
    fn url(&self) -> String {
        self.client.url().to_owned()
    }

    /// Calls `method` with `args` (a JSON object).
    fn call(&self, py: Python<'_>, method: &str, args: &str) -> PyResult<Answer> {
        let client = self.checked()?;
        let reply = block_on(py, dispatch::call(client, method, args))?.map_err(|e| to_py(&e))?;
        Ok(Answer { reply })
    }

    /// `call` as an awaitable.
    fn call_async<'py>(
        &self,
        py: Python<'py>,
        method: String,
        args: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.checked()?.clone();
        awaitable(py, async move {
            let reply = dispatch::call(&client, &method, &args)
                .await
                .map_err(|e| to_py(&e))?;
            Ok(Answer { reply })
        })
    }

    /// A producer with `options` as JSON; its background task runs on this process's
    /// runtime.
    fn producer(&self, options: &str) -> PyResult<NativeProducer> {
        let client = self.checked()?;
        let options = ProducerOptions::parse(options).map_err(|e| to_py(&e))?;
        let rt = runtime().map_err(|e| native("runtime", e.to_string()))?;
        let _inside = rt.enter();
        NativeProducer::build(client, options)
    }

    /// A producer for asyncio; its background task runs on the asyncio bridge's runtime.
    fn producer_async<'py>(&self, py: Python<'py>, options: &str) -> PyResult<Bound<'py, PyAny>> {
        let client = self.checked()?.clone();
        let options = ProducerOptions::parse(options).map_err(|e| to_py(&e))?;
        awaitable(py, async move { NativeProducer::build(&client, options) })
    }

    /// Opens a stream of alerts (subjects crossing a threshold or changing tier), filtered
    /// by subject and new tier when those lists are not empty.
    fn watch_alerts(
        &self,
        py: Python<'_>,
        subject_ids: Vec<String>,
        new_tiers: Vec<String>,
    ) -> PyResult<AlertStream> {
        let client = self.checked()?;
        let stream = block_on(py, AlertStream::open(client, subject_ids, new_tiers))?
            .map_err(|e| to_py(&e))?;
        Ok(stream)
    }

    /// `watch_alerts` as an awaitable.
    fn watch_alerts_async<'py>(
        &self,
        py: Python<'py>,
        subject_ids: Vec<String>,
        new_tiers: Vec<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let client = self.checked()?.clone();
        awaitable(py, async move {
            AlertStream::open(&client, subject_ids, new_tiers)
                .await
                .map_err(|e| to_py(&e))
        })
    }
}
