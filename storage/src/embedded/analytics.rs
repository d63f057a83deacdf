//! Read-only SQL over the views, streamed as Arrow IPC.
//!
//! Writes are impossible by construction, not by inspecting the text:
//! - The query runs inside `BEGIN TRANSACTION READ ONLY`: DuckDB's transaction manager
//!   refuses every write of such a transaction (a table, a view, a sequence), whatever
//!   statement attempts it.
//! - The text reaches DuckDB only as the string argument of its `query()` table function,
//!   inside one statement this file writes. DuckDB's own parser then decides where the
//!   statements of the text end, and `query()` refuses anything but exactly one SELECT
//!   (a `COMMIT` that ended the read-only transaction would need a second statement). A
//!   client string cannot leave the literal: the only character that ends a standard SQL
//!   string is `'`, and each one is doubled.
//! - External access and extension autoloading are off and the configuration is locked
//!   (`Duck::open`), so files, the network and the limits are out of reach.
//!
//! Each query gets its own connection (cloned from the database, so it sees committed data
//! and never waits on the writer's mutex) and streams its result batch by batch through a
//! channel of one part: it waits while the client does not read, stops when the client goes
//! away, and is interrupted through the connection's handle when its time is up (delivery
//! included), or when a pipeline commit needs the memory it holds (analytics shares the
//! instance's memory limit with the writer, and scoring must not lose to a query).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use duckdb::{Connection, InterruptHandle};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;

use crate::analytics::{Analytics, AnalyticsPart, AnalyticsStream, QueryLimits, result_too_large};
use crate::embedded::duck::{Ctx, Duck, Failure, classify};
use crate::error::{Result, StorageError};

/// Largest part of a streamed result (the gRPC messages stay well below their limits).
const PART_BYTES: usize = 1 << 20;

/// How often an interrupt is repeated once the time is up: an interrupt that lands before
/// DuckDB starts the statement is not seen by it.
const INTERRUPT_AGAIN: Duration = Duration::from_millis(100);

/// What the client is told about the one statement analytics runs.
const ONE_SELECT: &str = "analytics runs exactly one read-only SELECT statement (SELECT, \
    WITH ... SELECT, FROM, VALUES, TABLE, DESCRIBE, SHOW, SUMMARIZE, PIVOT ... IN (...))";

/// Most characters of a DuckDB error message passed on: the message may quote the query.
const MAX_ERROR_CHARS: usize = 400;

#[async_trait]
impl Analytics for Duck {
    async fn stream_sql(
        &self,
        sql: &str,
        limits: QueryLimits,
        max_result_bytes: u64,
    ) -> Result<AnalyticsStream> {
        let wrapped = wrap(sql)?;
        let conn = self
            .analytics
            .lock()
            .try_clone()
            .ctx("opening an analytics connection")?;
        let interrupt = conn.interrupt_handle();
        let registered = self.running.register(Arc::clone(&interrupt));
        let (tx, rx) = mpsc::channel(1);
        let deadline = tokio::time::Instant::now() + limits.timeout;
        let timed_out = Arc::new(AtomicBool::new(false));
        let watchdog = AbortOnDrop(tokio::spawn({
            let timed_out = Arc::clone(&timed_out);
            async move {
                tokio::time::sleep_until(deadline).await;
                timed_out.store(true, Ordering::SeqCst);
                loop {
                    interrupt.interrupt();
                    tokio::time::sleep(INTERRUPT_AGAIN).await;
                }
            }
        }));
        let sink = Sink {
            tx,
            runtime: tokio::runtime::Handle::current(),
            deadline,
            max_result_bytes,
            sent_bytes: 0,
        };
        tokio::task::spawn_blocking(move || {
            let mut sink = sink;
            let result = run_rolled_back(&conn, &wrapped, limits.max_rows, &mut sink);
            // The memory goes with the connection; only then is the query unregistered.
            drop(conn);
            drop(watchdog);
            let result = result.map_err(|e| {
                if registered.preempted() {
                    StorageError::LimitExceeded(
                        "query stopped: this node needed the memory it held to commit scores \
                         (scoring comes first); retry later, or ask for less"
                            .into(),
                    )
                } else if timed_out.load(Ordering::SeqCst) {
                    StorageError::LimitExceeded(format!(
                        "query cancelled after {:.1}s (the analytics time limit, \
                         analytics.max_timeout at most); narrow it down, aggregate first, or \
                         read the result faster",
                        limits.timeout.as_secs_f64()
                    ))
                } else {
                    e
                }
            });
            drop(registered);
            if let Err(e) = result {
                sink.fail(e);
            }
        });
        Ok(AnalyticsStream::new(rx))
    }
}

/// Stops the task when dropped, even if the blocking work that owns it panics.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The one statement that runs: the client's text as the argument of `query()`.
fn wrap(sql: &str) -> Result<String> {
    if sql.contains('\0') {
        return Err(StorageError::Invalid(format!(
            "{ONE_SELECT}; the text holds a NUL character"
        )));
    }
    Ok(format!(
        "SELECT * FROM query('{}')",
        sql.replace('\'', "''")
    ))
}

/// Where the parts of a result go.
struct Sink {
    tx: mpsc::Sender<Result<AnalyticsPart>>,
    runtime: tokio::runtime::Handle,
    deadline: tokio::time::Instant,
    max_result_bytes: u64,
    sent_bytes: u64,
}

impl Sink {
    /// Sends `bytes` in parts, `rows` on the first; waits for the reader until the deadline.
    fn send(&mut self, bytes: &[u8], rows: u64, last: bool, truncated: bool) -> Result<()> {
        self.sent_bytes += bytes.len() as u64;
        if self.sent_bytes > self.max_result_bytes {
            return Err(result_too_large(self.max_result_bytes));
        }
        let mut chunks: Vec<&[u8]> = bytes.chunks(PART_BYTES).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let count = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let part = AnalyticsPart {
                ipc: chunk.to_vec(),
                rows: if i == 0 { rows } else { 0 },
                truncated: truncated && i + 1 == count,
                last: last && i + 1 == count,
            };
            let sent = self.runtime.block_on(tokio::time::timeout_at(
                self.deadline,
                self.tx.send(Ok(part)),
            ));
            match sent {
                Ok(Ok(())) => {}
                // The reader is gone (the client cancelled or disconnected): stop the work.
                Ok(Err(_)) => return Err(StorageError::Unavailable("the reader went away".into())),
                Err(_) => {
                    return Err(StorageError::LimitExceeded(
                        "query cancelled: the analytics time limit struck while the result \
                         waited for the client to read it"
                            .into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Ends the stream with `error`, if the reader is still there to take it.
    fn fail(self, error: StorageError) {
        // Past the deadline the reader may never read again; the stream then ends without
        // its last part, which the reader reports as an incomplete result.
        let _ = self.runtime.block_on(tokio::time::timeout(
            Duration::from_secs(1),
            self.tx.send(Err(error)),
        ));
    }
}

/// Runs the query in a read-only transaction, rolled back whatever happens.
fn run_rolled_back(conn: &Connection, sql: &str, max_rows: u64, sink: &mut Sink) -> Result<()> {
    conn.execute_batch("BEGIN TRANSACTION READ ONLY")
        .ctx("starting the analytics transaction")?;
    let result = run(conn, sql, max_rows, sink);
    // The connection is dropped right after, which also ends the transaction.
    let _ = conn.execute_batch("ROLLBACK");
    result
}

fn run(conn: &Connection, sql: &str, max_rows: u64, sink: &mut Sink) -> Result<()> {
    let mut stmt = conn.prepare(sql).map_err(|e| query_error(&e))?;
    // Streaming: DuckDB produces a chunk per `step`, so a cut stops the work.
    drop(stmt.stream_arrow([]).map_err(|e| query_error(&e))?);
    let schema = stmt.schema();
    // The schema goes first, so it reaches the client even when no row follows.
    let mut writer = StreamWriter::try_new(Vec::new(), &schema).map_err(ipc_error)?;
    sink.send(&std::mem::take(writer.get_mut()), 0, false, false)?;
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
        // Refused before it is encoded (a copy as large again) when it cannot fit anyway.
        let left = sink.max_result_bytes.saturating_sub(sink.sent_bytes);
        if batch.get_array_memory_size() as u64 > left.saturating_mul(2).max(PART_BYTES as u64) {
            return Err(result_too_large(sink.max_result_bytes));
        }
        rows += batch.num_rows() as u64;
        writer.write(&batch).map_err(ipc_error)?;
        let bytes = std::mem::take(writer.get_mut());
        sink.send(&bytes, batch.num_rows() as u64, false, false)?;
        if truncated {
            break;
        }
    }
    writer.finish().map_err(ipc_error)?;
    let end = writer.into_inner().map_err(ipc_error)?;
    sink.send(&end, 0, true, truncated)
}

/// The error of a failed query, by whose problem it is (see [`classify`]): the query's own
/// (a syntax error, a missing table, a value that does not convert, a permission refused,
/// a write the read-only transaction refused) is Invalid; out of memory and an interrupt
/// are limits; the rest (I/O, internal errors) is the backend's. DuckDB's query context
/// (`LINE 1: ...`) is left out: it shows the wrapping statement and may quote the query.
fn query_error(e: &duckdb::Error) -> StorageError {
    let text = e.to_string();
    let text = text.split("\n\nLINE ").next().unwrap_or_default();
    let text: String = text.chars().take(MAX_ERROR_CHARS).collect();
    // DuckDB's advice after the first line (SET threads, SET memory_limit) cannot be
    // followed here: the configuration is locked.
    let first = text.lines().next().unwrap_or_default();
    if text.contains("Expected a single SELECT statement") {
        return StorageError::Invalid(format!("{ONE_SELECT}: {first}"));
    }
    if text.contains("read-only mode") {
        return StorageError::Invalid(format!("{ONE_SELECT}; this one tried to write: {first}"));
    }
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

    fn open() -> (tempfile::TempDir, Duck) {
        let dir = tempfile::tempdir().unwrap();
        let mut options = EmbeddedOptions::new(dir.path());
        options.sync = false;
        options.memory_limit = "256MB".into();
        let duck = Duck::open(&dir.path().join("credence.duckdb"), &options).unwrap();
        (dir, duck)
    }

    fn limits() -> QueryLimits {
        QueryLimits {
            max_rows: 1_000_000,
            timeout: Duration::from_secs(60),
        }
    }

    async fn count(duck: &Duck, sql: &str) -> String {
        let result = duck.run_sql(sql, limits()).await.unwrap();
        let reader =
            arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(result.ipc), None)
                .unwrap();
        let batch = reader.into_iter().next().unwrap().unwrap();
        arrow::util::display::array_value_to_string(batch.column(0), 0).unwrap()
    }

    /// The hole: DuckDB ends a `--` comment at a carriage return, the old guard's lexer
    /// only at a line feed, so it took what followed for a comment while DuckDB ran it as
    /// further statements, a COMMIT ending the rolled-back transaction included. Now
    /// DuckDB's parser decides where statements end, and the transaction cannot write.
    #[tokio::test(flavor = "multi_thread")]
    async fn statements_hidden_behind_a_carriage_return_do_not_run() {
        let (_dir, duck) = open();
        duck.write(|w| {
            w.conn
                .execute_batch(
                    "INSERT INTO store.configs VALUES (1, 'kept', 0); \
                     CREATE SEQUENCE store.seq",
                )
                .ctx("seeding")
        })
        .unwrap();
        for sql in [
            "SELECT 1 --\r; COMMIT; DELETE FROM store.configs; SELECT 1",
            "SELECT 1 --\r; COMMIT; CREATE TABLE store.pwned AS SELECT 1; SELECT 1",
            "SELECT 1 --\rCOMMIT\n; DELETE FROM store.configs",
            "SELECT 1; DELETE FROM store.configs",
            "DELETE FROM store.configs",
            "CREATE TABLE store.pwned (x INTEGER)",
            "SELECT nextval('store.seq')",
            "WITH gone AS (DELETE FROM store.configs RETURNING *) SELECT * FROM gone",
            "SELECT * FROM query('DELETE FROM store.configs')",
            "SELECT 1'); DELETE FROM store.configs; SELECT ('",
            "SELECT 1\\'); DELETE FROM store.configs; SELECT ('",
        ] {
            let err = duck.run_sql(sql, limits()).await.expect_err(sql);
            assert!(matches!(err, StorageError::Invalid(_)), "{sql:?}: {err}");
        }
        assert_eq!(
            count(&duck, "SELECT count(*) FROM store.configs").await,
            "1"
        );
        assert_eq!(
            count(
                &duck,
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'pwned'"
            )
            .await,
            "0"
        );
        // Quotes and backslashes in the text stay what they are.
        assert_eq!(count(&duck, "SELECT 'it''s \\'").await, "it's \\");
    }

    /// A result is streamed and bounded by bytes: past the limit the stream ends with an
    /// error naming the limit, after at most the limit was sent.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_result_past_its_byte_limit_ends_with_an_error_naming_the_limit() {
        let (_dir, duck) = open();
        let mut stream = duck
            .stream_sql(
                "SELECT repeat('x', 1000) AS s FROM range(100000)",
                limits(),
                1 << 20,
            )
            .await
            .unwrap();
        let mut received = 0;
        let err = loop {
            match stream.next().await {
                Some(Ok(part)) => {
                    assert!(!part.last, "the whole result cannot fit");
                    received += part.ipc.len();
                }
                Some(Err(e)) => break e,
                None => panic!("the stream ended without an error"),
            }
        };
        assert!(received <= 1 << 20, "{received} bytes sent");
        assert!(
            matches!(&err, StorageError::LimitExceeded(m) if m.contains("analytics.max_result_bytes")),
            "{err}"
        );
        assert!(stream.next().await.is_none());
        // Within the limit the whole result arrives, ending with the last part.
        let whole = duck
            .stream_sql("SELECT * FROM range(5000)", limits(), 1 << 20)
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(whole.rows, 5000);
    }

    /// A client that does not read holds the query only until its time limit, and learns
    /// the result is incomplete.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_result_nobody_reads_is_cancelled_at_the_time_limit() {
        let (_dir, duck) = open();
        let mut stream = duck
            .stream_sql(
                "SELECT repeat('x', 1000) AS s FROM range(1000000)",
                QueryLimits {
                    max_rows: 1_000_000,
                    timeout: Duration::from_millis(300),
                },
                1 << 40,
            )
            .await
            .unwrap();
        // Not read until the query has given up.
        while !duck.running.0.queries.lock().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let err = loop {
            match stream.next().await {
                Some(Ok(part)) => assert!(!part.last),
                Some(Err(e)) => break e,
                None => panic!("ended without an error"),
            }
        };
        assert!(matches!(err, StorageError::LimitExceeded(_)), "{err}");
    }

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
