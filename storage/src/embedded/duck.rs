//! The DuckDB side of the embedded backend: one database file, one writer connection.
//!
//! Every write runs on the writer connection (behind a mutex) and is committed before the
//! in-memory copy changes, so what a reader sees in memory is always on disk. Listings that
//! are not kept in memory (archive, series) read through a second connection, so they do
//! not wait on the pipeline's writes; analytics gets a fresh connection per query (see
//! `analytics.rs`). The role implementations live in one file per role beside this one.

use std::collections::BTreeSet;
use std::path::Path;

use credence_proto::v1 as pb;
use duckdb::{Config, Connection, Row, params_from_iter};
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;

use crate::documents::StoredSnapshot;
use crate::embedded::EmbeddedOptions;
use crate::embedded::graph::Adjacency;
use crate::embedded::lists::Entries;
use crate::embedded::rules::RuleMemory;
use crate::embedded::schema;
use crate::embedded::sql::Where;
use crate::error::{Result, StorageError};
use crate::page::{Page, Paged};

/// WAL size that triggers a checkpoint (see `Duck::open`).
const CHECKPOINT_THRESHOLD: &str = "256MB";

/// The DuckDB database of a data directory and the in-memory state kept beside it.
pub struct Duck {
    /// The one connection that writes, with the counters only writes touch.
    pub(super) writer: Mutex<Writer>,
    /// Reads of the tables that are not held in memory.
    pub(super) reader: Mutex<Connection>,
    /// The source of per-query analytics connections (`try_clone` needs a connection).
    pub(super) analytics: Mutex<Connection>,
    /// Profiles by subject.
    pub(super) profiles: RwLock<FxHashMap<String, pb::Profile>>,
    /// Snapshots by subject.
    pub(super) snapshots: RwLock<SnapshotMemory>,
    /// Committed offset per partition.
    pub(super) offsets: RwLock<FxHashMap<u32, u64>>,
    /// Rules and configs, every version.
    pub(super) rules: RwLock<RuleMemory>,
    /// List entries by subject and kind.
    pub(super) lists: RwLock<Entries>,
    /// The relation graph.
    pub(super) graph: RwLock<Adjacency>,
}

/// The writer connection and the counters it owns.
pub(super) struct Writer {
    pub(super) conn: Connection,
    /// Next surrogate key of a new snapshot row (see `snapshots.rs`).
    pub(super) next_sid: i64,
    /// Next sequence number of a score change: keeps the engine's order of changes.
    pub(super) next_change_seq: u64,
}

/// Every snapshot: a hash map for the commit path (a lookup per state), and the ids in order
/// for `list_subjects` (changed only when a subject is new). A `BTreeMap` alone cost about
/// 2µs per state per commit at 200,000 subjects (string compares and cache misses).
#[derive(Default)]
pub(super) struct SnapshotMemory {
    pub(super) by_id: FxHashMap<String, SnapshotEntry>,
    pub(super) order: BTreeSet<String>,
}

/// A snapshot as held in memory.
pub(super) struct SnapshotEntry {
    /// The partition it was committed under.
    pub(super) partition: u32,
    /// The snapshot.
    pub(super) snapshot: StoredSnapshot,
}

impl Duck {
    /// Opens or creates the database and its tables.
    pub fn open(path: &Path, options: &EmbeddedOptions) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StorageError::Backend(format!("creating {}: {e}", dir.display())))?;
        }
        let mut config = Config::default()
            // Analytics runs user SQL: no files, no network, no extension downloads.
            .enable_external_access(false)
            .and_then(|c| c.enable_autoload_extension(false))
            .and_then(|c| c.max_memory(&options.memory_limit))
            .ctx("configuring DuckDB")?;
        if options.threads > 0 {
            config = config
                .threads(i64::from(options.threads))
                .ctx("configuring DuckDB threads")?;
        }
        // DuckDB checkpoints inside the commit that fills the WAL past this, stalling the
        // pipeline for that commit; at the default 16MB that was every ~5 micro-batches, and
        // each checkpoint rewrote the snapshot row groups again. A larger WAL checkpoints
        // far less often (less total work) at the price of a longer replay after a crash.
        config = config
            .with("checkpoint_threshold", CHECKPOINT_THRESHOLD)
            .ctx("configuring checkpoints")?;
        // Locked last, so user SQL cannot turn external access back on or lift the limit.
        config = config
            .with("lock_configuration", "true")
            .ctx("locking DuckDB configuration")?;
        let conn = Connection::open_with_flags(path, config)
            .ctx(&format!("opening {}", path.display()))?;
        conn.execute_batch(schema::TABLES).ctx("creating tables")?;
        conn.execute_batch(schema::VIEWS).ctx("creating views")?;
        conn.execute_batch(schema::STAGING)
            .ctx("creating staging tables")?;
        let reader = conn.try_clone().ctx("opening the reader connection")?;
        let analytics = conn.try_clone().ctx("opening the analytics connection")?;

        let profiles = crate::embedded::profiles::load(&conn)?;
        let (snapshots, next_sid) = crate::embedded::snapshots::load(&conn)?;
        let offsets = crate::embedded::snapshots::load_offsets(&conn)?;
        let rules = crate::embedded::rules::load(&conn)?;
        let lists = crate::embedded::lists::load(&conn)?;
        let graph = crate::embedded::graph::load(&conn)?;
        let next_change_seq = crate::embedded::series::next_change_seq(&conn)?;
        Ok(Self {
            writer: Mutex::new(Writer {
                conn,
                next_sid,
                next_change_seq,
            }),
            reader: Mutex::new(reader),
            analytics: Mutex::new(analytics),
            profiles: RwLock::new(profiles),
            snapshots: RwLock::new(snapshots),
            offsets: RwLock::new(offsets),
            rules: RwLock::new(rules),
            lists: RwLock::new(lists),
            graph: RwLock::new(graph),
        })
    }

    /// Runs `f` with the writer, off the async worker (DuckDB calls block).
    pub(super) fn write<T>(&self, f: impl FnOnce(&mut Writer) -> Result<T>) -> Result<T> {
        blocking(|| f(&mut self.writer.lock()))
    }

    /// Runs `f` with the reader connection, off the async worker.
    pub(super) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        blocking(|| f(&self.reader.lock()))
    }

    /// Runs a paged listing on the reader connection, one item per row.
    pub(super) fn list<T>(
        &self,
        what: &str,
        sql: &str,
        filters: &Where,
        page: &Page,
        item: impl Fn(&Row<'_>) -> Result<T>,
    ) -> Result<Paged<T>> {
        let start = page.offset()?;
        let items = self.read(|conn| {
            let mut stmt = conn.prepare(sql).ctx(what)?;
            let mut rows = stmt
                .query(params_from_iter(
                    filters.params(&[page.limit() as i64 + 1, start as i64]),
                ))
                .ctx(what)?;
            let mut items = Vec::new();
            while let Some(row) = rows.next().ctx(what)? {
                items.push(item(row)?);
            }
            Ok(items)
        })?;
        page.paged(items)
    }
}

/// Runs blocking work. On a multi-thread runtime the worker hands its other tasks over
/// first; elsewhere (a current-thread runtime, plain threads) it simply runs.
pub(super) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Runs `f` in a transaction on `conn`: committed when it returns `Ok`, rolled back otherwise.
pub(super) fn in_transaction<T>(
    conn: &Connection,
    what: &str,
    f: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    conn.execute_batch("BEGIN TRANSACTION")
        .ctx(&format!("{what}: begin"))?;
    match f(conn) {
        Ok(value) => {
            if let Err(e) = conn.execute_batch("COMMIT") {
                // A failed commit leaves the transaction aborted; clear it for the next write.
                let _ = conn.execute_batch("ROLLBACK");
                return Err(backend(&format!("{what}: commit"), &e));
            }
            Ok(value)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// The Backend error of a DuckDB failure, with what was being done.
pub(super) fn backend(what: &str, e: &duckdb::Error) -> StorageError {
    StorageError::Backend(format!("DuckDB, {what}: {e}"))
}

/// Adds context to DuckDB results.
pub(super) trait Ctx<T> {
    /// Maps the error to [`StorageError::Backend`] naming what was being done.
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T> Ctx<T> for std::result::Result<T, duckdb::Error> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(|e| backend(what, &e))
    }
}

/// A JSON encoding failure (cannot happen for our types, but is not worth a panic).
pub(super) fn json_error(what: &str, e: &serde_json::Error) -> StorageError {
    StorageError::Backend(format!("JSON of {what}: {e}"))
}
