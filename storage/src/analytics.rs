//! Read-only SQL over views of all the data.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;

/// Limits of one analytics query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// Most rows returned; the result is cut there (not an error).
    pub max_rows: u64,
    /// Wall time after which the query is cancelled with [`crate::StorageError::LimitExceeded`].
    pub timeout: Duration,
}

/// A query's result as one Arrow IPC stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnalyticsResult {
    /// One complete Arrow IPC stream: the schema (always, even for no rows), the record
    /// batches, the end-of-stream marker. The server cuts it into parts for the wire.
    pub ipc: Vec<u8>,
    /// Rows in the stream.
    pub rows: u64,
    /// Whether rows were cut at `max_rows`.
    pub truncated: bool,
}

/// Read-only SQL. The views are at least `events`, `score_changes`, `score_points`,
/// `snapshots`, `profiles`, `relations`, `list_entries`, `rules`. Anything but one read-only
/// statement is refused ([`crate::StorageError::Invalid`]); a query cannot read or write
/// files or reach the network.
#[async_trait]
pub trait Analytics: Send + Sync {
    /// Runs one query.
    async fn run_sql(&self, sql: &str, limits: QueryLimits) -> Result<AnalyticsResult>;
}
