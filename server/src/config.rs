//! Node configuration: defaults, then a TOML file, then `CREDENCE__SECTION__KEY` environment
//! variables, then command-line flags. `config/example.toml` documents every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

/// Prefix of configuration environment variables; `__` separates section and key.
pub const ENV_PREFIX: &str = "CREDENCE__";

/// The whole node configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the node listens and keeps its data.
    pub node: NodeSection,
    /// Limits on what clients may send.
    pub ingest: IngestSection,
    /// The scoring pipeline.
    pub pipeline: PipelineSection,
    /// How the pipeline writes to the stores.
    pub storage: StorageSection,
    /// `RunAnalytics` limits.
    pub analytics: AnalyticsSection,
    /// The social graph.
    pub graph: GraphSection,
    /// Logging.
    pub log: LogSection,
    /// Bearer tokens and roles (`crate::auth`).
    pub auth: crate::auth::AuthSection,
    /// TLS on the gRPC and metrics ports (`crate::tls`).
    pub tls: crate::tls::TlsSection,
}

/// `[node]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSection {
    /// gRPC address.
    pub listen: SocketAddr,
    /// Prometheus `/metrics` address; empty turns the endpoint off.
    pub metrics_listen: String,
    /// Dashboard address (the page and its JSON API, `crate::dashboard`); empty turns it off.
    /// `credence dev` serves it on 127.0.0.1:8080 when this is empty.
    pub dashboard_listen: String,
    /// Data directory of the embedded backend.
    pub data_dir: PathBuf,
    /// Rule file loaded when the store has no rules yet; empty: the built-in example set.
    pub rules_file: String,
    /// Most gRPC connections open at once; one past it is closed as soon as it is accepted.
    pub max_connections: usize,
    /// How long a new connection may stay silent before its first bytes.
    #[serde(with = "duration_text")]
    pub handshake_timeout: Duration,
    /// How long a connection may go without receiving a byte before it is closed (a client
    /// answering keepalive pings is not silent).
    #[serde(with = "duration_text")]
    pub idle_timeout: Duration,
    /// How often the server pings a connection over HTTP/2; "0s" turns the pings off.
    #[serde(with = "duration_text")]
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    #[serde(with = "duration_text")]
    pub keepalive_timeout: Duration,
}

impl Default for NodeSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            metrics_listen: "127.0.0.1:9464".into(),
            dashboard_listen: String::new(),
            data_dir: PathBuf::from("./.credence"),
            rules_file: String::new(),
            max_connections: 1_024,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            keepalive_interval: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(20),
        }
    }
}

/// `[ingest]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestSection {
    /// Largest gRPC message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Most events in one `PublishEvents` request or one `StreamEvents` message.
    pub max_batch_events: usize,
    /// Largest event payload, in bytes of its protobuf encoding.
    pub max_payload_bytes: usize,
    /// Deepest nesting of payload values (a flat payload is depth 1).
    pub max_payload_depth: usize,
    /// How far in the future (by the server clock) an `occurred_at` may be.
    #[serde(with = "duration_text")]
    pub max_future: Duration,
    /// Earliest `occurred_at` accepted, RFC 3339.
    pub min_time: String,
    /// Event ids of recently accepted events kept per generation for fast DUPLICATE answers
    /// (two generations: between this and twice as many ids are remembered, 16 bytes each).
    /// Older duplicates are caught by the engine's per-subject window, not here.
    pub dedup_cache_events: usize,
}

impl Default for IngestSection {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 << 20,
            max_batch_events: 10_000,
            max_payload_bytes: 64 << 10,
            max_payload_depth: 8,
            max_future: Duration::from_secs(3600),
            min_time: "1970-01-01T00:00:00Z".into(),
            dedup_cache_events: 2_000_000,
        }
    }
}

/// `[pipeline]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineSection {
    /// Bus partitions (fixed when a data directory is created).
    pub partitions: u32,
    /// Most events scored and committed together per partition.
    pub micro_batch_events: usize,
    /// Events accepted but not yet scored, past which ingestion waits.
    pub max_lag_events: u64,
    /// How long ingestion waits for the pipeline to catch up before RESOURCE_EXHAUSTED.
    #[serde(with = "duration_text")]
    pub backpressure_wait: Duration,
    /// Sync the bus before acknowledging events (off only for throwaway data).
    pub sync: bool,
    /// Subject states the pipeline keeps in memory on this node, shared out evenly among
    /// its partition workers; the least recently used are dropped past it (and read back
    /// from the snapshots when their subject has events again).
    pub state_cache_subjects: usize,
    /// How often the node checks the rule store for rule and config versions written
    /// elsewhere (by other nodes sharing it); its own writes are live at once.
    #[serde(with = "duration_text")]
    pub rules_refresh: Duration,
}

impl Default for PipelineSection {
    fn default() -> Self {
        Self {
            partitions: 4,
            micro_batch_events: 8_192,
            max_lag_events: 1_000_000,
            backpressure_wait: Duration::from_secs(2),
            sync: true,
            state_cache_subjects: 1_000_000,
            rules_refresh: Duration::from_millis(500),
        }
    }
}

/// `[storage]`: which backend serves each role. The bus may be Kafka, the document roles
/// (profiles, rules and configs, lists, audit) MongoDB and the graph Dgraph; every other role
/// is embedded (the DuckDB file in `node.data_dir`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// Which committer writes the pipeline's micro-batches.
    pub committer: CommitterKind,
    /// Which backend is the bus.
    pub bus: BusKind,
    /// `[storage.kafka]`: the Kafka bus, when `bus = "kafka"`.
    pub kafka: KafkaSection,
    /// Which backend holds profiles, rules and configs, lists and the audit trail.
    pub documents: DocumentsKind,
    /// `[storage.mongodb]`: the document roles on MongoDB, when `documents = "mongodb"`.
    pub mongodb: MongoSection,
    /// Which backend holds the social graph.
    pub graph: GraphKind,
    /// `[storage.dgraph]`: the graph on Dgraph, when `graph = "dgraph"`.
    pub dgraph: DgraphSection,
}

/// A value of a key that takes one of a few names: the choice named `value`, or an error
/// naming the key, the choices and (a prefix of) the value. The deserializer's own error
/// would not say where the value sat.
fn choose<T: Copy>(key: &str, value: &str, choices: &[(&str, T)]) -> Result<T, String> {
    if let Some((_, choice)) = choices.iter().find(|(name, _)| *name == value) {
        return Ok(*choice);
    }
    let names: Vec<String> = choices
        .iter()
        .map(|(name, _)| format!("{name:?}"))
        .collect();
    let shown: String = value.chars().take(32).collect();
    Err(format!(
        "{key} must be {}, not {shown:?}",
        names.join(" or ")
    ))
}

/// The names a `storage.*` choice takes in the config: `TryFrom<String>` refusing any other
/// name with an error naming the key, and `From<Kind> for String` back.
macro_rules! named_choices {
    ($kind:ident, $key:literal, [$(($name:literal, $variant:ident)),+ $(,)?]) => {
        impl $kind {
            const NAMES: &'static [(&'static str, Self)] = &[$(($name, Self::$variant)),+];
        }

        impl TryFrom<String> for $kind {
            type Error = String;

            fn try_from(value: String) -> Result<Self, String> {
                choose($key, &value, Self::NAMES)
            }
        }

        impl From<$kind> for String {
            fn from(kind: $kind) -> Self {
                $kind::NAMES
                    .iter()
                    .find(|(_, k)| *k == kind)
                    .map_or("", |(name, _)| name)
                    .to_owned()
            }
        }
    };
}

/// `storage.committer`: how a scored micro-batch reaches the stores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CommitterKind {
    /// Every ready batch in one transaction of the backend (the embedded backend's own).
    #[default]
    Transactional,
    /// Role by role through the role traits, fenced: archive, dead letters, series, then the
    /// snapshots with the offset. How cluster backends without cross-store transactions
    /// write; the embedded backend offers it so that path is tested.
    RoleByRole,
}

named_choices!(
    CommitterKind,
    "storage.committer",
    [
        ("transactional", Transactional),
        ("role_by_role", RoleByRole),
    ]
);

/// `storage.bus`: where events in flight live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum BusKind {
    /// Log files in the data directory (one node).
    #[default]
    Embedded,
    /// A Kafka topic (`[storage.kafka]`), shared by the nodes of a consumer group.
    Kafka,
}

named_choices!(
    BusKind,
    "storage.bus",
    [("embedded", Embedded), ("kafka", Kafka)]
);

/// `storage.documents`: where profiles, rules and configs, lists and the audit trail live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DocumentsKind {
    /// In the embedded DuckDB file of `node.data_dir`.
    #[default]
    Embedded,
    /// A MongoDB database (`[storage.mongodb]`), shared by every node.
    Mongodb,
}

named_choices!(
    DocumentsKind,
    "storage.documents",
    [("embedded", Embedded), ("mongodb", Mongodb)]
);

/// `storage.graph`: where the social graph lives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum GraphKind {
    /// The DuckDB file in the data directory, with the adjacency in memory (one node).
    #[default]
    Embedded,
    /// A Dgraph cluster (`[storage.dgraph]`), shared by every node.
    Dgraph,
}

named_choices!(
    GraphKind,
    "storage.graph",
    [("embedded", Embedded), ("dgraph", Dgraph)]
);

/// `[storage.kafka]`: the Kafka bus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSection {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The events topic; created at start when absent.
    pub topic: String,
    /// Partitions of the topic (the bus partitions); an existing topic must have as many.
    pub partitions: u32,
    /// Replication factor of a topic created at start.
    pub replication_factor: u16,
    /// Consumer group of the nodes scoring the topic.
    pub group_id: String,
    /// Kafka `client.id`.
    pub client_id: String,
    /// Static group membership id (`group.instance.id`); "" for dynamic membership.
    pub instance_id: String,
    /// How long the start waits for the brokers.
    #[serde(with = "duration_text")]
    pub connect_timeout: Duration,
    /// Group session timeout.
    #[serde(with = "duration_text")]
    pub session_timeout: Duration,
    /// Longest wait in a revoke for the pipeline to stop the partitions' workers.
    #[serde(with = "duration_text")]
    pub revoke_timeout: Duration,
    /// Longest wait for a record to be acknowledged before it is refused.
    #[serde(with = "duration_text")]
    pub delivery_timeout: Duration,
    /// Producer linger: how long records wait to fill a batch.
    #[serde(with = "duration_text")]
    pub linger: Duration,
    /// Producer batch size in bytes (per partition).
    pub batch_bytes: u32,
    /// Producer batch size in records.
    pub batch_records: u32,
    /// Read prefetch per partition, in KiB.
    pub fetch_queue_kbytes: u32,
    /// How often partition ends are asked from the brokers (other producers' records are
    /// seen within this).
    #[serde(with = "duration_text")]
    pub end_refresh: Duration,
}

impl Default for KafkaSection {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic: "credence.events".into(),
            partitions: 4,
            replication_factor: 1,
            group_id: "credence".into(),
            client_id: "credence".into(),
            instance_id: String::new(),
            connect_timeout: Duration::from_secs(10),
            session_timeout: Duration::from_secs(10),
            revoke_timeout: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(30),
            linger: Duration::from_millis(5),
            batch_bytes: 1 << 20,
            batch_records: 10_000,
            fetch_queue_kbytes: 16 << 10,
            end_refresh: Duration::from_millis(100),
        }
    }
}

impl KafkaSection {
    /// The Kafka bus's options.
    #[cfg(feature = "kafka")]
    pub fn options(&self) -> credence_storage::kafka::KafkaOptions {
        credence_storage::kafka::KafkaOptions {
            brokers: self.brokers.clone(),
            topic: self.topic.clone(),
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            group_id: self.group_id.clone(),
            client_id: self.client_id.clone(),
            instance_id: self.instance_id.clone(),
            connect_timeout: self.connect_timeout,
            session_timeout: self.session_timeout,
            revoke_timeout: self.revoke_timeout,
            delivery_timeout: self.delivery_timeout,
            linger: self.linger,
            batch_bytes: self.batch_bytes,
            batch_records: self.batch_records,
            fetch_queue_kbytes: self.fetch_queue_kbytes,
            end_refresh: self.end_refresh,
        }
    }

    /// Checks what types alone cannot (only when the bus is Kafka).
    fn validate(&self) -> anyhow::Result<()> {
        for (key, value) in [
            ("brokers", &self.brokers),
            ("topic", &self.topic),
            ("group_id", &self.group_id),
            ("client_id", &self.client_id),
        ] {
            if value.trim().is_empty() {
                bail!("storage.kafka.{key} must not be empty");
            }
        }
        if !(1..=256).contains(&self.partitions) {
            bail!(
                "storage.kafka.partitions must be 1..=256, not {}",
                self.partitions
            );
        }
        if self.replication_factor == 0 {
            bail!("storage.kafka.replication_factor must be at least 1");
        }
        for (key, value) in [
            ("connect_timeout", self.connect_timeout),
            ("session_timeout", self.session_timeout),
            ("revoke_timeout", self.revoke_timeout),
            ("delivery_timeout", self.delivery_timeout),
            ("end_refresh", self.end_refresh),
        ] {
            if value < Duration::from_millis(1) {
                bail!("storage.kafka.{key} must be at least 1ms");
            }
        }
        Ok(())
    }
}

/// `[storage.dgraph]`: the graph on Dgraph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DgraphSection {
    /// The alpha's gRPC address.
    pub url: String,
    /// Prefix of every predicate (`<prefix>.id`, `<prefix>.friend`, ...), so several
    /// platforms can share one Dgraph.
    pub prefix: String,
    /// Longest wait for one Dgraph call (also at start).
    #[serde(with = "duration_text")]
    pub timeout: Duration,
    /// Relations a `FindPath` search may follow before it is refused.
    pub path_budget: u32,
}

impl Default for DgraphSection {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:9080".into(),
            prefix: "credence".into(),
            timeout: Duration::from_secs(10),
            path_budget: 100_000,
        }
    }
}

impl DgraphSection {
    /// Checks what types alone cannot (only when the graph is on Dgraph).
    fn validate(&self) -> anyhow::Result<()> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            bail!(
                "storage.dgraph.url must be an http:// or https:// address, not {:?}",
                self.url
            );
        }
        if self.prefix.is_empty()
            || !self
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            bail!(
                "storage.dgraph.prefix must be letters, digits and '_', not {:?}",
                self.prefix
            );
        }
        if self.timeout < Duration::from_millis(1) {
            bail!("storage.dgraph.timeout must be at least 1ms");
        }
        if self.path_budget == 0 {
            bail!("storage.dgraph.path_budget must be at least 1");
        }
        Ok(())
    }
}

/// `[storage.mongodb]`: the document roles on MongoDB.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MongoSection {
    /// A `mongodb://` connection string (credentials may go in it).
    pub uri: String,
    /// The database of the collections, so several platforms can share one server.
    pub database: String,
    /// Longest wait for one MongoDB call (also at start).
    #[serde(with = "duration_text")]
    pub timeout: Duration,
}

impl Default for MongoSection {
    fn default() -> Self {
        Self {
            uri: "mongodb://127.0.0.1:27017/".into(),
            database: "credence".into(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl MongoSection {
    /// Checks what types alone cannot (only when the documents are on MongoDB).
    fn validate(&self) -> anyhow::Result<()> {
        if !(self.uri.starts_with("mongodb://") || self.uri.starts_with("mongodb+srv://")) {
            bail!("storage.mongodb.uri must be a mongodb:// or mongodb+srv:// connection string");
        }
        // MongoDB's rules for database names: no path, dot, space or quote characters.
        if self.database.is_empty()
            || self.database.len() > 63
            || self
                .database
                .chars()
                .any(|c| "/\\. \"$*<>:|?".contains(c) || c.is_control())
        {
            bail!(
                "storage.mongodb.database must be 1 to 63 characters without /\\. \"$*<>:|? or \
                 spaces, not {:?}",
                self.database
            );
        }
        if self.timeout < Duration::from_millis(1) {
            bail!("storage.mongodb.timeout must be at least 1ms");
        }
        Ok(())
    }
}

/// `[analytics]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyticsSection {
    /// Time limit when the request sets none.
    #[serde(with = "duration_text")]
    pub default_timeout: Duration,
    /// Largest time limit a request may ask for.
    #[serde(with = "duration_text")]
    pub max_timeout: Duration,
    /// Row limit when the request sets none.
    pub default_max_rows: u64,
    /// Largest row limit a request may ask for (the result is built in memory).
    pub max_rows_limit: u64,
    /// DuckDB memory limit, e.g. "2GB".
    pub memory_limit: String,
    /// Most bytes of Arrow IPC one result may carry; past it the result stream ends with
    /// RESOURCE_EXHAUSTED.
    pub max_result_bytes: u64,
    /// Most analytics queries running at once; another is refused with RESOURCE_EXHAUSTED.
    pub max_concurrent_queries: usize,
}

impl Default for AnalyticsSection {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(30),
            max_timeout: Duration::from_secs(300),
            default_max_rows: 100_000,
            max_rows_limit: 1_000_000,
            memory_limit: "2GB".into(),
            max_result_bytes: 256 << 20,
            max_concurrent_queries: 4,
        }
    }
}

/// `[graph]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GraphSection {
    /// Hops the association looks out to (1..=3) when a request does not say.
    pub association_depth: u32,
    /// Factor applied per hop beyond the first (0..=1).
    pub association_attenuation: f64,
}

impl Default for GraphSection {
    fn default() -> Self {
        Self {
            association_depth: 2,
            association_attenuation: 0.5,
        }
    }
}

/// `[log]`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// A `tracing` filter, e.g. "info" or "credence_server=debug,info"; `RUST_LOG` wins.
    pub filter: String,
    /// "text" or "json".
    pub format: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            format: "text".into(),
        }
    }
}

impl Config {
    /// Defaults, then the file (when given), then the environment variables `vars`.
    pub fn load(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let mut value = toml::Value::try_from(Config::default()).context("default config")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            let table: toml::Table = toml::from_str(&text)
                .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
            merge(&mut value, toml::Value::Table(table));
        }
        for (name, raw) in vars {
            let Some(path) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
            if !(2..=3).contains(&keys.len()) || keys.iter().any(String::is_empty) {
                bail!(
                    "{name}: expected {ENV_PREFIX}SECTION__KEY or {ENV_PREFIX}SECTION__TABLE__KEY, \
                     e.g. CREDENCE__NODE__LISTEN or CREDENCE__STORAGE__KAFKA__BROKERS"
                );
            }
            // The innermost key holds the value; each outer one a table around it.
            let patch = keys.iter().rev().fold(env_value(&raw), |inner, key| {
                let mut table = toml::Table::new();
                table.insert(key.clone(), inner);
                toml::Value::Table(table)
            });
            merge(&mut value, patch);
        }
        let config: Config = value
            .try_into()
            .context("invalid configuration (from the config file or CREDENCE__ variables)")?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        let p = &self.pipeline;
        if !(1..=256).contains(&p.partitions) {
            bail!("pipeline.partitions must be 1..=256, not {}", p.partitions);
        }
        if p.rules_refresh < Duration::from_millis(10) {
            bail!("pipeline.rules_refresh must be at least 10ms");
        }
        if p.micro_batch_events == 0 {
            bail!("pipeline.micro_batch_events must be at least 1");
        }
        if self.ingest.max_batch_events == 0 || self.ingest.max_payload_depth == 0 {
            bail!("ingest.max_batch_events and ingest.max_payload_depth must be at least 1");
        }
        if self.ingest.max_message_bytes < 1024 {
            bail!("ingest.max_message_bytes must be at least 1024");
        }
        credence_scorer::Timestamp::parse_rfc3339(&self.ingest.min_time)
            .map_err(|e| anyhow::anyhow!("ingest.min_time: {e}"))?;
        let g = &self.graph;
        if !(1..=3).contains(&g.association_depth) {
            bail!(
                "graph.association_depth must be 1..=3, not {}",
                g.association_depth
            );
        }
        if !(0.0..=1.0).contains(&g.association_attenuation) {
            bail!(
                "graph.association_attenuation must be in 0..=1, not {}",
                g.association_attenuation
            );
        }
        let a = &self.analytics;
        if a.default_max_rows == 0 || a.default_max_rows > a.max_rows_limit {
            bail!(
                "analytics.default_max_rows must be 1..=analytics.max_rows_limit ({}), not {}",
                a.max_rows_limit,
                a.default_max_rows
            );
        }
        let n = &self.node;
        if n.max_connections == 0
            || n.handshake_timeout.is_zero()
            || n.idle_timeout.is_zero()
            || n.keepalive_timeout.is_zero()
        {
            bail!(
                "node.max_connections, node.handshake_timeout, node.idle_timeout and \
                 node.keepalive_timeout must be above zero"
            );
        }
        if a.max_result_bytes < 1 << 20 || a.max_concurrent_queries == 0 {
            bail!(
                "analytics.max_result_bytes must be at least 1048576 and \
                 analytics.max_concurrent_queries at least 1"
            );
        }
        if self.storage.bus == BusKind::Kafka {
            self.storage.kafka.validate()?;
        }
        if self.storage.documents == DocumentsKind::Mongodb {
            self.storage.mongodb.validate()?;
        }
        if self.storage.graph == GraphKind::Dgraph {
            self.storage.dgraph.validate()?;
        }
        self.metrics_addr()?;
        self.dashboard_addr()?;
        self.tls.validate()?;
        if !matches!(self.log.format.as_str(), "text" | "json") {
            bail!(
                "log.format must be \"text\" or \"json\", not {:?}",
                self.log.format
            );
        }
        Ok(())
    }

    /// The metrics address, when the endpoint is on.
    pub fn metrics_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        optional_addr("node.metrics_listen", &self.node.metrics_listen)
    }

    /// The dashboard address, when the dashboard is on.
    pub fn dashboard_addr(&self) -> anyhow::Result<Option<SocketAddr>> {
        optional_addr("node.dashboard_listen", &self.node.dashboard_listen)
    }
}

/// An address setting where empty means off; an error names the key.
fn optional_addr(key: &str, value: &str) -> anyhow::Result<Option<SocketAddr>> {
    if value.is_empty() {
        return Ok(None);
    }
    value
        .parse()
        .map(Some)
        .with_context(|| format!("{key} {value:?}"))
}

/// An environment value as TOML when it reads as a TOML value, else as a string.
fn env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

/// Deep merge of tables; anything else in `patch` replaces.
fn merge(base: &mut toml::Value, patch: toml::Value) {
    match (base, patch) {
        (toml::Value::Table(base), toml::Value::Table(patch)) => {
            for (key, value) in patch {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

/// Durations as text: "30s", "5m", "1h 30m".
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a duration ({e})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_example_file_parses_and_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/example.toml");
        let config = Config::load(Some(&path), Vec::new()).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn layers_apply_in_order_file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[pipeline]\npartitions = 8\nbackpressure_wait = \"5s\"\n[node]\nlisten = \"127.0.0.1:7000\"\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&path),
            vars(&[
                ("CREDENCE__PIPELINE__PARTITIONS", "2"),
                ("CREDENCE__NODE__DATA_DIR", "/tmp/x y"),
                ("UNRELATED", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(config.pipeline.partitions, 2);
        assert_eq!(config.pipeline.backpressure_wait, Duration::from_secs(5));
        assert_eq!(config.node.listen.port(), 7000);
        assert_eq!(config.node.data_dir, PathBuf::from("/tmp/x y"));
    }

    #[test]
    fn mistakes_are_named() {
        let err = Config::load(None, vars(&[("CREDENCE__PIPELINE__PARTITONS", "2")])).unwrap_err();
        assert!(format!("{err:#}").contains("partitons"), "{err:#}");
        let err = Config::load(None, vars(&[("CREDENCE__PIPELINE", "2")])).unwrap_err();
        assert!(format!("{err:#}").contains("SECTION__KEY"), "{err:#}");
        let err = Config::load(None, vars(&[("CREDENCE__PIPELINE__PARTITIONS", "0")])).unwrap_err();
        assert!(
            format!("{err:#}").contains("pipeline.partitions"),
            "{err:#}"
        );
        let err =
            Config::load(None, vars(&[("CREDENCE__ANALYTICS__MAX_TIMEOUT", "soon")])).unwrap_err();
        assert!(format!("{err:#}").contains("not a duration"), "{err:#}");
    }

    #[test]
    fn the_committer_is_chosen_by_name_and_a_wrong_name_is_refused_naming_the_key() {
        assert_eq!(
            Config::default().storage.committer,
            CommitterKind::Transactional
        );
        let config = Config::load(
            None,
            vars(&[("CREDENCE__STORAGE__COMMITTER", "role_by_role")]),
        )
        .unwrap();
        assert_eq!(config.storage.committer, CommitterKind::RoleByRole);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[storage]\ncommitter = \"transactional\"\n").unwrap();
        let config = Config::load(Some(&path), Vec::new()).unwrap();
        assert_eq!(config.storage.committer, CommitterKind::Transactional);
        for wrong in ["sequential", "Role_By_Role", ""] {
            let err =
                Config::load(None, vars(&[("CREDENCE__STORAGE__COMMITTER", wrong)])).unwrap_err();
            let err = format!("{err:#}");
            assert!(
                err.contains("storage.committer must be \"transactional\" or \"role_by_role\""),
                "{err}"
            );
        }
        // A long value is quoted only in part.
        let long = "x".repeat(500);
        let err = Config::load(None, vars(&[("CREDENCE__STORAGE__COMMITTER", &long)])).unwrap_err();
        assert!(!format!("{err:#}").contains(&long), "{err:#}");
    }

    #[test]
    fn the_bus_is_chosen_by_name_and_kafka_mistakes_are_named() {
        assert_eq!(Config::default().storage.bus, BusKind::Embedded);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[storage]\nbus = \"kafka\"\n[storage.kafka]\nbrokers = \"k1:9092,k2:9092\"\n\
             partitions = 12\nlinger = \"20ms\"\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&path),
            vars(&[("CREDENCE__STORAGE__KAFKA__TOPIC", "events.v2")]),
        )
        .unwrap();
        assert_eq!(config.storage.bus, BusKind::Kafka);
        let kafka = &config.storage.kafka;
        assert_eq!(kafka.brokers, "k1:9092,k2:9092");
        assert_eq!(kafka.partitions, 12);
        assert_eq!(kafka.linger, Duration::from_millis(20));
        assert_eq!(kafka.topic, "events.v2");
        assert_eq!(kafka.group_id, "credence");

        let err = Config::load(None, vars(&[("CREDENCE__STORAGE__BUS", "redis")])).unwrap_err();
        assert!(
            format!("{err:#}").contains("storage.bus must be \"embedded\" or \"kafka\""),
            "{err:#}"
        );
        // An unknown key of the table is named.
        std::fs::write(&path, "[storage.kafka]\nbroker = \"k1:9092\"\n").unwrap();
        let err = Config::load(Some(&path), Vec::new()).unwrap_err();
        assert!(format!("{err:#}").contains("broker"), "{err:#}");
        for (key, value, named) in [
            ("BROKERS", "\"\"", "storage.kafka.brokers"),
            ("PARTITIONS", "0", "storage.kafka.partitions"),
            ("REVOKE_TIMEOUT", "\"0s\"", "storage.kafka.revoke_timeout"),
        ] {
            let err = Config::load(
                None,
                vars(&[
                    ("CREDENCE__STORAGE__BUS", "kafka"),
                    (&format!("CREDENCE__STORAGE__KAFKA__{key}"), value),
                ]),
            )
            .unwrap_err();
            assert!(format!("{err:#}").contains(named), "{named}: {err:#}");
        }
        // Four levels is a mistake, not a silent no-op.
        let err = Config::load(None, vars(&[("CREDENCE__A__B__C__D", "1")])).unwrap_err();
        assert!(
            format!("{err:#}").contains("SECTION__TABLE__KEY"),
            "{err:#}"
        );
    }

    #[test]
    fn the_graph_is_chosen_by_name_and_dgraph_mistakes_are_named() {
        assert_eq!(Config::default().storage.graph, GraphKind::Embedded);
        let config = Config::load(
            None,
            vars(&[
                ("CREDENCE__STORAGE__GRAPH", "dgraph"),
                ("CREDENCE__STORAGE__DGRAPH__URL", "http://10.0.0.7:9080"),
                ("CREDENCE__STORAGE__DGRAPH__TIMEOUT", "3s"),
            ]),
        )
        .unwrap();
        assert_eq!(config.storage.graph, GraphKind::Dgraph);
        assert_eq!(config.storage.dgraph.url, "http://10.0.0.7:9080");
        assert_eq!(config.storage.dgraph.timeout, Duration::from_secs(3));
        assert_eq!(config.storage.dgraph.prefix, "credence");

        let err = Config::load(None, vars(&[("CREDENCE__STORAGE__GRAPH", "neo4j")])).unwrap_err();
        assert!(
            format!("{err:#}").contains("storage.graph must be \"embedded\" or \"dgraph\""),
            "{err:#}"
        );
        for (key, value, named) in [
            ("URL", "127.0.0.1:9080", "storage.dgraph.url"),
            ("PREFIX", "a.b", "storage.dgraph.prefix"),
            ("TIMEOUT", "\"0s\"", "storage.dgraph.timeout"),
            ("PATH_BUDGET", "0", "storage.dgraph.path_budget"),
        ] {
            let err = Config::load(
                None,
                vars(&[
                    ("CREDENCE__STORAGE__GRAPH", "dgraph"),
                    (&format!("CREDENCE__STORAGE__DGRAPH__{key}"), value),
                ]),
            )
            .unwrap_err();
            assert!(format!("{err:#}").contains(named), "{named}: {err:#}");
        }
    }

    #[test]
    fn the_documents_are_chosen_by_name_and_mongodb_mistakes_are_named() {
        assert_eq!(Config::default().storage.documents, DocumentsKind::Embedded);
        let config = Config::load(
            None,
            vars(&[
                ("CREDENCE__STORAGE__DOCUMENTS", "mongodb"),
                (
                    "CREDENCE__STORAGE__MONGODB__URI",
                    "mongodb://10.0.0.7:27017/",
                ),
                ("CREDENCE__STORAGE__MONGODB__TIMEOUT", "3s"),
            ]),
        )
        .unwrap();
        assert_eq!(config.storage.documents, DocumentsKind::Mongodb);
        assert_eq!(config.storage.mongodb.uri, "mongodb://10.0.0.7:27017/");
        assert_eq!(config.storage.mongodb.timeout, Duration::from_secs(3));
        assert_eq!(config.storage.mongodb.database, "credence");

        let err =
            Config::load(None, vars(&[("CREDENCE__STORAGE__DOCUMENTS", "couch")])).unwrap_err();
        assert!(
            format!("{err:#}").contains("storage.documents must be \"embedded\" or \"mongodb\""),
            "{err:#}"
        );
        for (key, value, named) in [
            ("URI", "127.0.0.1:27017", "storage.mongodb.uri"),
            ("DATABASE", "a.b", "storage.mongodb.database"),
            ("TIMEOUT", "\"0s\"", "storage.mongodb.timeout"),
        ] {
            let err = Config::load(
                None,
                vars(&[
                    ("CREDENCE__STORAGE__DOCUMENTS", "mongodb"),
                    (&format!("CREDENCE__STORAGE__MONGODB__{key}"), value),
                ]),
            )
            .unwrap_err();
            assert!(format!("{err:#}").contains(named), "{named}: {err:#}");
        }
    }

    /// The config's defaults are the bus's: one place cannot drift from the other.
    #[cfg(feature = "kafka")]
    #[test]
    fn kafka_defaults_are_the_bus_defaults() {
        let section = KafkaSection::default();
        assert_eq!(
            section.options(),
            credence_storage::kafka::KafkaOptions::new(&section.brokers, &section.topic)
        );
    }
}
