//! The DuckDB side of the embedded backend: one database file, one writer connection.
//!
//! Every write runs on the writer connection (behind a mutex) and is committed before the
//! in-memory copy changes, so what a reader sees in memory is always on disk. Listings that
//! are not kept in memory (archive, series) read through a second connection, so they do
//! not wait on the pipeline's writes; analytics gets a fresh connection per query (see
//! `analytics.rs`). The role implementations live in one file per role beside this one.

use std::collections::BTreeSet;
use std::path::Path;

use duckdb::{Config, Connection, Row, params_from_iter};
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;

use crate::documents::{Claim, StoredSnapshot, SubjectProfile};
use crate::embedded::EmbeddedOptions;
use crate::embedded::analytics::Running;
use crate::embedded::graph::Adjacency;
use crate::embedded::lists::Entries;
use crate::embedded::rules::RuleMemory;
use crate::embedded::schema;
use crate::embedded::sql::Where;
use crate::error::{Result, StorageError};
use crate::page::{KeyKind, KeyPart, Page, Paged};

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
    pub(super) profiles: RwLock<FxHashMap<String, SubjectProfile>>,
    /// Snapshots by subject.
    pub(super) snapshots: RwLock<SnapshotMemory>,
    /// Epoch and committed offset per partition.
    pub(super) offsets: RwLock<FxHashMap<u32, Claim>>,
    /// The analytics queries running now, so a commit that needs their memory can stop them.
    pub(super) running: Running,
    /// Rules and configs, every version.
    pub(super) rules: RwLock<RuleMemory>,
    /// List entries by subject and kind.
    pub(super) lists: RwLock<Entries>,
    /// The relation graph.
    pub(super) graph: RwLock<Adjacency>,
    /// Most node visits of one `find_path` search.
    pub(super) path_budget: usize,
}

/// The writer connection and the counters it owns.
pub(super) struct Writer {
    pub(super) conn: Connection,
    /// Next surrogate key of a new snapshot row (see `snapshots.rs`).
    pub(super) next_sid: i64,
    /// Per table and partition, the first bus offset with no stored row.
    pub(super) high_water: HighWater,
}

/// Idempotent appends of the rows keyed by bus position: per table, per partition, one past
/// the highest stored offset. A row below it is already stored and skipped.
///
/// Why a high-water mark and not a key lookup: a keyed upsert (or an anti-join against the
/// stored keys) joins every commit against the whole table, which measured far slower than
/// appending (see `snapshots.rs`), and DuckDB's index maintenance doubled the cost again.
/// The mark is exact because each partition's rows are written in offset order, a whole
/// micro-batch per transaction: every offset below the mark was written by a committed
/// transaction, and none above it was. It costs one integer per partition and table,
/// loaded at open with one `max(offset) GROUP BY partition` query per table.
#[derive(Default)]
pub(super) struct HighWater {
    pub(super) events: FxHashMap<u32, u64>,
    pub(super) points: FxHashMap<u32, u64>,
    pub(super) changes: FxHashMap<u32, u64>,
}

impl HighWater {
    /// Loads the marks of the three tables.
    fn load(conn: &Connection) -> Result<Self> {
        let marks = |table: &str| -> Result<FxHashMap<u32, u64>> {
            let what = format!("loading the high-water marks of {table}");
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT bus_partition, max(bus_offset) + 1 FROM store.{table} \
                     WHERE bus_partition IS NOT NULL GROUP BY bus_partition"
                ))
                .ctx(&what)?;
            let rows = stmt
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .ctx(&what)?;
            rows.collect::<Result<_, _>>().ctx(&what)
        };
        Ok(Self {
            events: marks("events")?,
            points: marks("score_points")?,
            changes: marks("score_changes")?,
        })
    }

    /// Whether a row at (partition, offset) is not yet stored in the table of `marks`.
    pub(super) fn is_new(marks: &FxHashMap<u32, u64>, partition: u32, offset: u64) -> bool {
        marks.get(&partition).is_none_or(|next| offset >= *next)
    }

    /// Raises the marks past the rows just committed.
    pub(super) fn raise(marks: &mut FxHashMap<u32, u64>, rows: impl Iterator<Item = (u32, u64)>) {
        for (partition, offset) in rows {
            let next = marks.entry(partition).or_default();
            *next = (*next).max(offset + 1);
        }
    }
}

/// Every snapshot: a hash map for the commit path (a lookup per state), and the ids in order
/// for `list_subjects` (changed only when a subject is new). A `BTreeMap` alone cost about
/// 2µs per state per commit at 200,000 subjects (string compares and cache misses).
#[derive(Default)]
pub(super) struct SnapshotMemory {
    pub(super) by_id: FxHashMap<String, StoredSnapshot>,
    pub(super) order: BTreeSet<String>,
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
        schema::migrate(&conn)?;
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
        let high_water = HighWater::load(&conn)?;
        Ok(Self {
            writer: Mutex::new(Writer {
                conn,
                next_sid,
                high_water,
            }),
            reader: Mutex::new(reader),
            analytics: Mutex::new(analytics),
            profiles: RwLock::new(profiles),
            snapshots: RwLock::new(snapshots),
            offsets: RwLock::new(offsets),
            running: Running::default(),
            rules: RwLock::new(rules),
            lists: RwLock::new(lists),
            graph: RwLock::new(graph),
            path_budget: options.path_budget,
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

    /// Runs a keyset-paged listing on the reader connection, one item per row: `select`
    /// (up to its WHERE clause; `leading` are the values of any placeholders in it), the
    /// `filters`, and "after the token's key" over `keys` (sort expressions and their
    /// types), ordered by the keys, `limit + 1` rows; `key` gives an item's sort key back.
    pub(super) fn list<T>(
        &self,
        listing: &Listing<'_>,
        mut filters: Where,
        page: &Page,
        item: impl Fn(&Row<'_>) -> Result<T>,
        key: impl Fn(&T) -> Vec<KeyPart>,
    ) -> Result<Paged<T>> {
        let kinds: Vec<KeyKind> = listing.keys.iter().map(|(_, k)| *k).collect();
        let columns: Vec<&str> = listing.keys.iter().map(|(c, _)| *c).collect();
        if let Some(after) = page.after(listing.name, &kinds)? {
            filters.after(&columns, after);
        }
        let sql = format!(
            "{}{} ORDER BY {} LIMIT {}",
            listing.select,
            filters.sql(),
            columns.join(", "),
            page.limit() + 1
        );
        let what = listing.what;
        let items = self.read(|conn| {
            let mut stmt = conn.prepare(&sql).ctx(what)?;
            let mut rows = stmt
                .query(params_from_iter(filters.params(&listing.leading)))
                .ctx(what)?;
            let mut items = Vec::new();
            while let Some(row) = rows.next().ctx(what)? {
                items.push(item(row)?);
            }
            Ok(items)
        })?;
        Ok(page.paged(listing.name, items, key))
    }
}

/// A listing the reader pages through (see [`Duck::list`]).
pub(super) struct Listing<'a> {
    /// Its name in page tokens.
    pub(super) name: &'static str,
    /// What it does, for errors.
    pub(super) what: &'static str,
    /// `SELECT ... FROM ...`, without WHERE.
    pub(super) select: String,
    /// Values of placeholders in `select`.
    pub(super) leading: Vec<duckdb::types::Value>,
    /// The sort key: expressions and types.
    pub(super) keys: &'a [(&'static str, KeyKind)],
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

/// The error of a DuckDB failure of our own statements, with what was being done: out of
/// memory is a limit (the committer retries it after stopping analytics queries), anything
/// else a backend failure.
pub(super) fn backend(what: &str, e: &duckdb::Error) -> StorageError {
    if classify(e) == Failure::OutOfMemory {
        StorageError::LimitExceeded(format!("DuckDB ran out of memory, {what}: {e}"))
    } else {
        StorageError::Backend(format!("DuckDB, {what}: {e}"))
    }
}

/// Whose problem a DuckDB error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Failure {
    /// The statement itself is wrong: it does not parse, names something that does not
    /// exist, converts a value that does not fit, or asks for what is not permitted.
    Statement,
    /// The memory limit was reached.
    OutOfMemory,
    /// The statement was interrupted (a time limit, or a commit that needed the memory).
    Interrupted,
    /// Anything else: I/O, corruption, internal errors, a failed transaction.
    Backend,
}

/// Classifies a DuckDB error by its exception type, the words before the first `:` of its
/// message ("Parser Error: ...", "Out of Memory Error: ..."): the C API reports every
/// failure with the same state code, so the message is all there is.
pub(super) fn classify(e: &duckdb::Error) -> Failure {
    let duckdb::Error::DuckDBFailure(_, Some(message)) = e else {
        // Our own conversions of results: not the statement's fault.
        return Failure::Backend;
    };
    let kind = message.split(':').next().unwrap_or_default().trim();
    match kind {
        "Parser Error"
        | "Binder Error"
        | "Catalog Error"
        | "Conversion Error"
        | "Invalid Input Error"
        | "Invalid Error"
        | "Out of Range Error"
        | "Syntax Error"
        | "Not implemented Error"
        | "Permission Error"
        | "Dependency Error"
        | "Constraint Error"
        | "Mismatch Type Error"
        | "Type Error"
        | "Parameter Not Allowed Error"
        | "Parameter Not Resolved Error"
        | "Missing Extension Error"
        | "Sequence Error"
        | "Expression Error"
        | "Decimal Error"
        | "Division By Zero Error" => Failure::Statement,
        "Out of Memory Error" => Failure::OutOfMemory,
        "INTERRUPT Error" | "Interrupt Error" => Failure::Interrupted,
        _ => Failure::Backend,
    }
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
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

    use super::*;

    fn failure(conn: &Connection, sql: &str) -> Failure {
        let e = conn
            .prepare(sql)
            .and_then(|mut s| s.query([]).map(|_| ()))
            .expect_err(sql);
        classify(&e)
    }

    #[test]
    fn duckdb_errors_are_classified_by_whose_problem_they_are() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("SET memory_limit = '16MB'; SET threads = 1")
            .unwrap();
        assert_eq!(failure(&conn, "SELEC 1"), Failure::Statement);
        assert_eq!(failure(&conn, "SELECT * FROM nowhere"), Failure::Statement);
        assert_eq!(
            failure(&conn, "SELECT nope FROM range(1)"),
            Failure::Statement
        );
        assert_eq!(failure(&conn, "SELECT 'x'::INTEGER"), Failure::Statement);
        assert_eq!(
            failure(&conn, "SELECT list(range) FROM range(100000000)"),
            Failure::OutOfMemory
        );
        // Our own conversions are never the statement's fault.
        assert_eq!(
            classify(&duckdb::Error::QueryReturnedNoRows),
            Failure::Backend
        );
        let oom = duckdb::Error::DuckDBFailure(
            duckdb::ffi::Error::new(1),
            Some("Out of Memory Error: failed to allocate".into()),
        );
        assert!(matches!(
            backend("committing", &oom),
            StorageError::LimitExceeded(_)
        ));
    }
}
