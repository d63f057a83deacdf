//! Read-only SQL over the views, answered as one Arrow IPC stream.
//!
//! Each query gets its own connection (cloned from the database, so it sees committed data
//! and never waits on the writer's mutex), runs inside a transaction that is always rolled
//! back, and is interrupted through the connection's handle when its time is up, or when a
//! pipeline commit needs the memory it holds (analytics shares the instance's memory limit
//! with the writer, and scoring must not lose to a query).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use duckdb::{Connection, InterruptHandle};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;

use crate::analytics::{Analytics, AnalyticsResult, QueryLimits};
use crate::embedded::duck::{Ctx, Duck, Failure, classify};
use crate::embedded::sql_guard::check_read_only;
use crate::error::{Result, StorageError};

#[async_trait]
impl Analytics for Duck {
    async fn run_sql(&self, sql: &str, limits: QueryLimits) -> Result<AnalyticsResult> {
        check_read_only(sql)?;
        let conn = self
            .analytics
            .lock()
            .try_clone()
            .ctx("opening an analytics connection")?;
        let interrupt = conn.interrupt_handle();
        let registered = self.running.register(Arc::clone(&interrupt));
        let sql = sql.to_owned();
        let mut task = tokio::task::spawn_blocking(move || {
            let result = run_rolled_back(&conn, &sql, limits.max_rows);
            // The memory goes with the connection; only then is the query unregistered.
            drop(conn);
            (result, registered.preempted())
        });
        let (joined, timed_out) =
            if let Ok(joined) = tokio::time::timeout(limits.timeout, &mut task).await {
                (joined, false)
            } else {
                interrupt.interrupt();
                (task.await, true)
            };
        let (result, preempted) =
            joined.map_err(|e| StorageError::Backend(format!("analytics query task: {e}")))?;
        match result {
            Err(_) if preempted => Err(StorageError::LimitExceeded(
                "query stopped: this node needed the memory it held to commit scores (scoring \
                 comes first); retry later, or ask for less"
                    .into(),
            )),
            Err(_) if timed_out => Err(StorageError::LimitExceeded(format!(
                "query cancelled after {:.1}s (the analytics time limit); narrow it down or \
                 aggregate first",
                limits.timeout.as_secs_f64()
            ))),
            other => other,
        }
    }
}

/// Runs the query in a transaction that is rolled back whatever happens.
fn run_rolled_back(conn: &Connection, sql: &str, max_rows: u64) -> Result<AnalyticsResult> {
    conn.execute_batch("BEGIN TRANSACTION")
        .ctx("starting the analytics transaction")?;
    let result = run(conn, sql, max_rows);
    // The connection is dropped right after, which also ends the transaction.
    let _ = conn.execute_batch("ROLLBACK");
    result
}

fn run(conn: &Connection, sql: &str, max_rows: u64) -> Result<AnalyticsResult> {
    let mut stmt = conn.prepare(sql).map_err(|e| query_error(&e))?;
    // Streaming: rows are fetched as they are encoded, so a cut at `max_rows` stops the work.
    drop(stmt.stream_arrow([]).map_err(|e| query_error(&e))?);
    let schema = stmt.schema();
    // The schema goes first, so it reaches the client even when no row follows.
    let mut writer = StreamWriter::try_new(Vec::new(), &schema).map_err(ipc_error)?;
    let mut rows = 0_u64;
    let mut truncated = false;
    while let Some(array) = stmt.step().map_err(|e| query_error(&e))? {
        let batch = RecordBatch::try_new(schema.clone(), array.columns().to_vec())
            .map_err(|e| StorageError::Backend(format!("analytics result batch: {e}")))?;
        if batch.num_rows() == 0 {
            continue;
        }
        let room = max_rows - rows;
        if room == 0 {
            truncated = true;
            break;
        }
        let batch = if batch.num_rows() as u64 > room {
            truncated = true;
            batch.slice(0, room as usize)
        } else {
            batch
        };
        rows += batch.num_rows() as u64;
        writer.write(&batch).map_err(ipc_error)?;
        if truncated {
            break;
        }
    }
    writer.finish().map_err(ipc_error)?;
    Ok(AnalyticsResult {
        ipc: writer.into_inner().map_err(ipc_error)?,
        rows,
        truncated,
    })
}

/// The error of a failed query, by whose problem it is (see [`classify`]): the query's own
/// (a syntax error, a missing table, a value that does not convert, a permission refused)
/// is Invalid; out of memory and an interrupt are limits; the rest (I/O, internal errors)
/// is the backend's.
fn query_error(e: &duckdb::Error) -> StorageError {
    let text = e.to_string();
    // DuckDB's advice after the first line (SET threads, SET memory_limit) cannot be
    // followed here: the configuration is locked.
    let first = text.lines().next().unwrap_or_default();
    match classify(e) {
        Failure::Statement => StorageError::Invalid(format!("query failed: {text}")),
        Failure::OutOfMemory => StorageError::LimitExceeded(format!(
            "query ran out of memory (analytics.memory_limit); ask for less, or aggregate \
             before collecting: {first}"
        )),
        Failure::Interrupted => StorageError::LimitExceeded(format!("query interrupted: {first}")),
        Failure::Backend => StorageError::Backend(format!("analytics query failed: {text}")),
    }
}

/// The analytics queries running now, each with its interrupt handle and a flag saying it
/// was stopped for a commit. Cloning shares the registry.
#[derive(Clone, Default)]
pub(crate) struct Running(Arc<RunningInner>);

#[derive(Default)]
struct RunningInner {
    next: AtomicU64,
    queries: Mutex<FxHashMap<u64, Query>>,
}

/// A running query's interrupt handle, and the flag saying a commit stopped it.
type Query = (Arc<InterruptHandle>, Arc<AtomicBool>);

/// One registered query, unregistered on drop: the blocking task holds it until its
/// connection is gone, so a commit waiting for the memory waits exactly that long.
pub(crate) struct Registered {
    running: Running,
    id: u64,
    preempted: Arc<AtomicBool>,
}

impl Running {
    fn register(&self, interrupt: Arc<InterruptHandle>) -> Registered {
        let id = self.0.next.fetch_add(1, Ordering::Relaxed);
        let preempted = Arc::new(AtomicBool::new(false));
        self.0
            .queries
            .lock()
            .insert(id, (interrupt, Arc::clone(&preempted)));
        Registered {
            running: self.clone(),
            id,
            preempted,
        }
    }

    /// Interrupts every running query, marking it stopped for a commit, and waits (at most
    /// `patience`) until they have let go of their connections; how many there were.
    pub(crate) fn preempt_all(&self, patience: Duration) -> usize {
        let ids: Vec<u64> = {
            let queries = self.0.queries.lock();
            for (interrupt, preempted) in queries.values() {
                preempted.store(true, Ordering::SeqCst);
                interrupt.interrupt();
            }
            queries.keys().copied().collect()
        };
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline && self.0.queries.lock().keys().any(|id| ids.contains(id)) {
            std::thread::sleep(Duration::from_millis(5));
        }
        ids.len()
    }
}

impl Registered {
    /// Whether a commit stopped the query.
    fn preempted(&self) -> bool {
        self.preempted.load(Ordering::SeqCst)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.running.0.queries.lock().remove(&self.id);
    }
}

#[allow(clippy::needless_pass_by_value, reason = "used as map_err(ipc_error)")]
fn ipc_error(e: arrow::error::ArrowError) -> StorageError {
    StorageError::Backend(format!("encoding Arrow IPC: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

    use super::*;
    use crate::embedded::EmbeddedOptions;

    /// A query running when a commit needs the memory is stopped and says that scoring
    /// needed it (the commit's side: `commit.rs` calls `preempt_all` on out of memory).
    #[tokio::test(flavor = "multi_thread")]
    async fn a_query_stopped_for_a_commit_says_scoring_needed_the_memory() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = EmbeddedOptions::new(dir.path());
        options.sync = false;
        let duck = Arc::new(Duck::open(&dir.path().join("credence.duckdb"), &options).unwrap());
        let query = tokio::spawn({
            let duck = Arc::clone(&duck);
            async move {
                let limits = QueryLimits {
                    max_rows: 10,
                    timeout: Duration::from_secs(300),
                };
                // Runs for minutes unless stopped.
                duck.run_sql(
                    "SELECT count(*) FROM range(100000000) a, range(100000) b \
                     WHERE a.range + b.range < 0",
                    limits,
                )
                .await
            }
        });
        // Preempt until it ends: an interrupt that lands before the statement starts is
        // not seen by DuckDB, so one attempt alone could miss (the commit retries too).
        while !query.is_finished() {
            if duck.running.0.queries.lock().is_empty() {
                tokio::task::yield_now().await;
                continue;
            }
            let running = duck.running.clone();
            tokio::task::spawn_blocking(move || running.preempt_all(Duration::from_millis(500)))
                .await
                .unwrap();
        }
        let err = query.await.unwrap().expect_err("the query was stopped");
        assert!(
            matches!(&err, StorageError::LimitExceeded(m) if m.contains("needed the memory")),
            "{err}"
        );
        assert!(duck.running.0.queries.lock().is_empty(), "unregistered");
    }
}
