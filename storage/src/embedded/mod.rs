//! The embedded backend: every storage role in one process, over one data directory.
//!
//! `DATA_DIR/bus/` holds the bus (one log file per partition, see [`FileBus`]);
//! `DATA_DIR/credence.duckdb` holds everything else as DuckDB tables. The roles that the
//! scoring pipeline reads per event (profiles, lists, snapshots, the graph) are also kept
//! in memory, loaded at open, so the hot path never waits on SQL; every write goes to DuckDB
//! before it returns, so a restart loses nothing acknowledged.

mod analytics;
mod archive;
mod audit;
mod bus;
mod columns;
mod commit;
mod convert;
mod dead_letters;
mod duck;
mod graph;
mod lists;
mod profiles;
mod rules;
mod schema;
mod series;
mod snapshots;
mod sql;
mod state_bytes;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use bus::FileBus;
pub use duck::Duck;

use crate::error::Result;
use crate::{Bus, Stores};

/// How to open an embedded backend.
#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// The data directory (created if missing).
    pub data_dir: PathBuf,
    /// Bus partitions; a data directory keeps the count it was created with.
    pub partitions: u32,
    /// Sync the bus to disk before acknowledging (turn off only for throwaway data).
    pub sync: bool,
    /// DuckDB memory limit, e.g. "2GB": analytics queries past it fail.
    pub memory_limit: String,
    /// DuckDB worker threads (0: DuckDB's default).
    pub threads: u32,
    /// Most node visits (relations followed) of one `FindPath` search before it is refused
    /// with a limit error.
    pub path_budget: usize,
}

impl EmbeddedOptions {
    /// Options for a data directory, with defaults for everything else.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            partitions: 4,
            sync: true,
            memory_limit: "2GB".into(),
            threads: 0,
            path_budget: 100_000,
        }
    }
}

/// The embedded backend. See the module docs.
pub struct Embedded {
    bus: Arc<FileBus>,
    duck: Arc<Duck>,
}

impl Embedded {
    /// Opens (or creates) the data directory.
    pub fn open(options: &EmbeddedOptions) -> Result<Self> {
        let bus = FileBus::open(
            &options.data_dir.join("bus"),
            options.partitions,
            options.sync,
        )?;
        let duck = Duck::open(&options.data_dir.join("credence.duckdb"), options)?;
        Ok(Self {
            bus: Arc::new(bus),
            duck: Arc::new(duck),
        })
    }

    /// The DuckDB file of a data directory.
    pub fn database_path(data_dir: &Path) -> PathBuf {
        data_dir.join("credence.duckdb")
    }

    /// Every role.
    pub fn stores(&self) -> Stores {
        duck_stores(&self.duck, self.bus.clone())
    }

    /// Every role but the bus over the data directory's DuckDB file, with `bus` as the bus
    /// (a cluster bus beside the embedded stores). No bus log files are opened or created.
    pub fn stores_with_bus(options: &EmbeddedOptions, bus: Arc<dyn Bus>) -> Result<Stores> {
        let duck = Duck::open(&Self::database_path(&options.data_dir), options)?;
        Ok(duck_stores(&Arc::new(duck), bus))
    }
}

/// `duck` for every role but the bus.
fn duck_stores(duck: &Arc<Duck>, bus: Arc<dyn Bus>) -> Stores {
    Stores {
        bus,
        profiles: duck.clone(),
        rules: duck.clone(),
        snapshots: duck.clone(),
        archive: duck.clone(),
        series: duck.clone(),
        graph: duck.clone(),
        lists: duck.clone(),
        analytics: duck.clone(),
        audit: duck.clone(),
        committer: duck.clone(),
    }
}
