//! Read-only SQL over views of all the data, streamed as Arrow IPC.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::error::{Result, StorageError};

/// Limits of one analytics query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// Most rows returned; the result is cut there (not an error).
    pub max_rows: u64,
    /// Wall time after which the query is cancelled with [`StorageError::LimitExceeded`].
    /// It covers the whole call, delivering the result included: a client that stops
    /// reading holds the query (and the batch waiting for it) at most this long.
    pub timeout: Duration,
}

/// Result bytes [`Analytics::run_sql`] collects at most (it holds the whole result).
pub const COLLECTED_RESULT_BYTES: u64 = 256 << 20;

/// One part of a streamed result: concatenating the parts, in order, gives one Arrow IPC
/// stream (schema, record batches, end-of-stream marker).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnalyticsPart {
    /// Arrow IPC stream bytes.
    pub ipc: Vec<u8>,
    /// Rows whose batch starts in this part.
    pub rows: u64,
    /// Whether rows were cut at `max_rows` (said on the last part).
    pub truncated: bool,
    /// The last part: the result is complete.
    pub last: bool,
}

/// A result arriving part by part. The query runs while the parts are read, and waits
/// (flow control) while the reader does not take them; dropping the stream stops the query.
/// An error after some parts ends the stream.
#[derive(Debug)]
pub struct AnalyticsStream {
    parts: mpsc::Receiver<Result<AnalyticsPart>>,
    /// Whether the last part or an error was handed out.
    ended: bool,
}

impl AnalyticsStream {
    /// A stream fed by the sender of `parts`.
    pub fn new(parts: mpsc::Receiver<Result<AnalyticsPart>>) -> Self {
        Self {
            parts,
            ended: false,
        }
    }

    /// The next part; `None` once the result is complete or an error was handed out. A
    /// stream whose sender stops before the last part ends with an error, never silently:
    /// a reader must not take a cut result for a whole one.
    pub async fn next(&mut self) -> Option<Result<AnalyticsPart>> {
        if self.ended {
            return None;
        }
        let item = self.parts.recv().await.unwrap_or_else(|| {
            Err(StorageError::LimitExceeded(
                "the result stopped before it was complete (the analytics time limit struck \
                 while it waited to be read)"
                    .into(),
            ))
        });
        self.ended = item.as_ref().map_or(true, |part| part.last);
        Some(item)
    }

    /// Every part, concatenated.
    pub async fn collect(mut self) -> Result<AnalyticsResult> {
        let mut result = AnalyticsResult::default();
        while let Some(part) = self.next().await {
            let part = part?;
            result.ipc.extend_from_slice(&part.ipc);
            result.rows += part.rows;
            result.truncated |= part.truncated;
        }
        Ok(result)
    }
}

/// A query's whole result as one Arrow IPC stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnalyticsResult {
    /// One complete Arrow IPC stream: the schema (always, even for no rows), the record
    /// batches, the end-of-stream marker.
    pub ipc: Vec<u8>,
    /// Rows in the stream.
    pub rows: u64,
    /// Whether rows were cut at `max_rows`.
    pub truncated: bool,
}

/// Read-only SQL. The views are at least `events`, `score_changes`, `score_points`,
/// `snapshots`, `profiles`, `relations`, `list_entries`, `rules`. Anything but one read-only
/// statement is refused ([`StorageError::Invalid`]); a query cannot write, read or write
/// files, or reach the network.
#[async_trait]
pub trait Analytics: Send + Sync {
    /// Starts one query and streams its result. Past `max_result_bytes` of Arrow IPC the
    /// stream ends with [`StorageError::LimitExceeded`].
    async fn stream_sql(
        &self,
        sql: &str,
        limits: QueryLimits,
        max_result_bytes: u64,
    ) -> Result<AnalyticsStream>;

    /// Runs one query and collects its result (at most [`COLLECTED_RESULT_BYTES`]).
    async fn run_sql(&self, sql: &str, limits: QueryLimits) -> Result<AnalyticsResult> {
        self.stream_sql(sql, limits, COLLECTED_RESULT_BYTES)
            .await?
            .collect()
            .await
    }
}

/// The error of a result that outgrew its byte limit, naming the limit.
pub fn result_too_large(max_result_bytes: u64) -> StorageError {
    StorageError::LimitExceeded(format!(
        "the result passed {max_result_bytes} bytes of Arrow IPC (analytics.max_result_bytes); \
         select fewer columns or rows, or aggregate in SQL"
    ))
}
