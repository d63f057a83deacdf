//! Running the SDK's futures for Python: blocking with the interpreter released (and
//! Ctrl-C still heard), or as an asyncio awaitable.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use pyo3::prelude::*;

use crate::errors::native;
use crate::runtime::runtime;

/// How often a blocking call looks for a pending signal (Ctrl-C in a notebook).
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// Runs `fut` to completion on this process's runtime without holding the interpreter.
/// A signal handler that raises (KeyboardInterrupt) abandons the call.
pub(crate) fn block_on<T, F>(py: Python<'_>, fut: F) -> PyResult<T>
where
    F: Future<Output = T> + Send,
    T: Send,
{
    let rt = runtime().map_err(|e| native("runtime", format!("cannot start the runtime: {e}")))?;
    py.detach(|| {
        rt.block_on(async {
            let mut fut = std::pin::pin!(fut);
            loop {
                tokio::select! {
                    out = &mut fut => return Ok(out),
                    () = tokio::time::sleep(SIGNAL_CHECK) => {
                        #[allow(clippy::redundant_closure_for_method_calls, reason = "the method is not general over the lifetime")]
                        Python::attach(|py| py.check_signals())?;
                    }
                }
            }
        })
    })
}

/// The process the asyncio bridge's runtime was started in.
static ASYNC_PID: OnceLock<u32> = OnceLock::new();

/// An asyncio awaitable of `fut`. The bridge's runtime (pyo3-async-runtimes') is started
/// once per interpreter and does not survive `fork()`: in a forked child it is refused
/// rather than left to hang.
pub(crate) fn awaitable<'py, T, F>(py: Python<'py>, fut: F) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = PyResult<T>> + Send + 'static,
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let pid = std::process::id();
    let owner = *ASYNC_PID.get_or_init(|| pid);
    if owner != pid {
        return Err(native(
            "fork",
            format!(
                "asyncio clients were used in process {owner} before this process ({pid}) was \
                 forked from it, and their runtime does not survive fork(): use the blocking \
                 credence.Client here, or start worker processes with the \"spawn\" method"
            ),
        ));
    }
    pyo3_async_runtimes::tokio::future_into_py(py, fut)
}
