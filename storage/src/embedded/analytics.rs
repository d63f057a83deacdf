//! Read-only SQL over the views, answered as one Arrow IPC stream.
//!
//! Each query gets its own connection (cloned from the database, so it sees committed data
//! and never waits on the writer's mutex), runs inside a transaction that is always rolled
//! back, and is interrupted through the connection's handle when its time is up.

use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use duckdb::Connection;

use crate::analytics::{Analytics, AnalyticsResult, QueryLimits};
use crate::embedded::duck::{Ctx, Duck};
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
        let sql = sql.to_owned();
        let mut task =
            tokio::task::spawn_blocking(move || run_rolled_back(&conn, &sql, limits.max_rows));
        let (joined, timed_out) =
            if let Ok(joined) = tokio::time::timeout(limits.timeout, &mut task).await {
                (joined, false)
            } else {
                interrupt.interrupt();
                (task.await, true)
            };
        let result =
            joined.map_err(|e| StorageError::Backend(format!("analytics query task: {e}")))?;
        match result {
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

/// The error of a refused or failed query: out of memory is a limit, the rest is the
/// query's own fault (a syntax error, a missing table, a permission refused).
fn query_error(e: &duckdb::Error) -> StorageError {
    let text = e.to_string();
    if text.contains("Out of Memory") {
        // DuckDB's advice after the first line (SET threads, SET memory_limit) cannot be
        // followed here: the configuration is locked.
        let first = text.lines().next().unwrap_or_default();
        StorageError::LimitExceeded(format!(
            "query ran out of memory (analytics.memory_limit); ask for less, or aggregate \
             before collecting: {first}"
        ))
    } else {
        StorageError::Invalid(format!("query failed: {text}"))
    }
}

#[allow(clippy::needless_pass_by_value, reason = "used as map_err(ipc_error)")]
fn ipc_error(e: arrow::error::ArrowError) -> StorageError {
    StorageError::Backend(format!("encoding Arrow IPC: {e}"))
}
