//! The tokio runtime the blocking calls run on: one per process.
//!
//! A `fork()` (gunicorn, multiprocessing) copies the memory of the runtime but none of its
//! threads, so the copy would wait forever on work nobody runs. The runtime is therefore
//! keyed by process id: the first call in a new process builds a new one, and the parent's
//! copy is leaked (dropping it would wait for threads that do not exist in the child).
//! Connections made in the parent belong to the parent's runtime; a client carries the
//! process id it was made in and refuses to be used from another ([`check_process`]).

use std::sync::{Arc, Mutex, PoisonError};

use tokio::runtime::Runtime;

/// The runtime and the process it belongs to.
static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);

/// The runtime of this process, built on first use.
pub(crate) fn runtime() -> std::io::Result<Arc<Runtime>> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((owner, rt)) = slot.as_ref() {
        if *owner == pid {
            return Ok(Arc::clone(rt));
        }
    }
    if let Some((_, inherited)) = slot.take() {
        // The parent's runtime: its threads did not survive the fork.
        std::mem::forget(inherited);
    }
    let rt = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("credence-sdk")
            .enable_all()
            .build()?,
    );
    *slot = Some((pid, Arc::clone(&rt)));
    Ok(rt)
}

/// `Err` with a message for the user when `owner` is not this process.
pub(crate) fn check_process(owner: u32, what: &str) -> Result<(), String> {
    let pid = std::process::id();
    if owner == pid {
        Ok(())
    } else {
        Err(format!(
            "this {what} was made in process {owner} and cannot be used after fork() \
             (this is process {pid}): make a new one in this process"
        ))
    }
}
