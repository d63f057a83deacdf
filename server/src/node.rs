//! A running node: the stores, the catalog, ingestion, the pipeline and the gRPC server.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use credence_proto::v1::graph_service_server::GraphServiceServer;
use credence_proto::v1::ingestion_service_server::IngestionServiceServer;
use credence_proto::v1::query_service_server::QueryServiceServer;
use credence_proto::v1::scoring_service_server::ScoringServiceServer;
use credence_scorer::RuleFile;
use credence_storage::embedded::{Embedded, EmbeddedOptions};
use credence_storage::{BusHealth, Sequential, Stores};
use tokio::sync::{broadcast, watch};
use tonic::codec::CompressionEncoding::Gzip;

use crate::auth::Authorize;
use crate::catalog::Catalog;
use crate::config::{BusKind, CommitterKind, Config, DocumentsKind, GraphKind};
use crate::health::{Component, Health};
use crate::ingest::{Ingest, Progress};
use crate::listener::{self, ConnectionLimits};
use crate::metrics::{self, RpcTimer};
use crate::pipeline::{self, Shared};
use crate::services::{GraphApi, IngestionApi, Node, QueryApi, ScoringApi};

/// HTTP/2 flow-control window of one stream: what a client may send that the server has
/// not read yet. 64 KiB of one-event messages (about 100 bytes each) is about 650 small
/// DATA frames, some 100 KB of h2's framing budget.
const STREAM_WINDOW: u32 = 64 << 10;
/// HTTP/2 flow-control window of a connection, shared by its streams; h2's budget for
/// buffered small DATA frames is half of it (8 MiB), room for dozens of such streams.
const CONNECTION_WINDOW: u32 = 16 << 20;

/// Where a started node can be reached.
#[derive(Clone, Copy, Debug)]
pub struct Addresses {
    /// gRPC.
    pub grpc: SocketAddr,
    /// Prometheus metrics, when on.
    pub metrics: Option<SocketAddr>,
    /// The dashboard, when on.
    pub dashboard: Option<SocketAddr>,
    /// Whether both ports speak TLS.
    pub tls: bool,
}

/// Runs a node until `stop` resolves: opens the data directory, seeds an empty store with
/// `seed`, starts the pipeline, serves gRPC, and calls `ready` once it accepts calls.
pub async fn run(
    config: Config,
    seed: &RuleFile,
    ready: impl FnOnce(Addresses),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stores = open_stores(&config).await?;
    check_committed_offsets(&stores).await?;
    let catalog = Arc::new(Catalog::open(stores.clone(), seed).await?);
    let progress = Arc::new(Progress::new(stores.bus.partitions()));
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let health = Arc::new(Health::new(reporter).await);
    let ingest = Ingest::open(
        stores.clone(),
        Arc::clone(&catalog),
        config.ingest.clone(),
        config.pipeline.clone(),
        Arc::clone(&progress),
        Arc::clone(&health),
    )
    .await?;
    let (alerts, _) = broadcast::channel(4_096);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let pipeline = pipeline::spawn(
        &Arc::new(Shared {
            stores: stores.clone(),
            catalog: Arc::clone(&catalog),
            progress,
            alerts: alerts.clone(),
            config: config.pipeline.clone(),
            graph: config.graph.clone(),
            health: Arc::clone(&health),
        }),
        &shutdown_rx,
    )?;
    // Rules and configs other nodes sharing the rule store write become live here too.
    tokio::spawn(Arc::clone(&catalog).follow(config.pipeline.rules_refresh, shutdown_rx.clone()));

    let listener = tokio::net::TcpListener::bind(config.node.listen)
        .await
        .with_context(|| format!("binding the gRPC address {}", config.node.listen))?;
    let grpc = listener.local_addr()?;
    // The HTTP ports (metrics, dashboard) speak TLS when the gRPC port does.
    let http_tls = if config.tls.enabled() {
        Some(config.tls.rustls()?)
    } else {
        None
    };
    let metrics_addr = match config.metrics_addr()? {
        Some(addr) => Some(
            metrics::serve(addr, http_tls.clone())
                .await
                .with_context(|| format!("binding the metrics address {addr}"))?,
        ),
        None => None,
    };

    let bus_health = stores.bus.health();
    let max_message = config.ingest.max_message_bytes;
    let analytics_slots = Arc::new(tokio::sync::Semaphore::new(
        config.analytics.max_concurrent_queries,
    ));
    let (stopping_tx, stopping) = watch::channel(false);
    let stop = async move {
        stop.await;
        let _ = stopping_tx.send(true);
    };
    let node = Arc::new(Node {
        stores,
        catalog,
        ingest,
        alerts,
        config,
        analytics_slots,
        stopping,
    });
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(credence_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(credence_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    tokio::spawn(not_serving_when_the_bus_fails(
        bus_health,
        Arc::clone(&health),
    ));

    let node_settings = &node.config.node;
    let incoming = listener::incoming(
        listener,
        ConnectionLimits {
            max_connections: node_settings.max_connections,
            handshake_timeout: node_settings.handshake_timeout,
            idle_timeout: node_settings.idle_timeout,
        },
    );
    let keepalive =
        (!node_settings.keepalive_interval.is_zero()).then_some(node_settings.keepalive_interval);
    let tls = node.config.tls.grpc()?;
    let tls_on = tls.is_some();
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .context("TLS settings of the gRPC port")?;
    }
    let authenticator = crate::auth::authenticator(&node.config.auth)?;
    // One set of routes serves gRPC clients and, in process, the dashboard's JSON API.
    let routes = tonic::service::Routes::new(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(health_service)
        // The services take gzip-compressed requests and compress answers for clients that
        // ask (the SDKs' `gzip` option): producers on slow links send far fewer bytes.
        .add_service(
            IngestionServiceServer::new(IngestionApi(Arc::clone(&node)))
                .max_decoding_message_size(max_message)
                .accept_compressed(Gzip)
                .send_compressed(Gzip),
        )
        .add_service(
            ScoringServiceServer::new(ScoringApi(Arc::clone(&node)))
                .max_decoding_message_size(max_message)
                .accept_compressed(Gzip)
                .send_compressed(Gzip),
        )
        .add_service(
            QueryServiceServer::new(QueryApi(Arc::clone(&node)))
                .max_decoding_message_size(max_message)
                .accept_compressed(Gzip)
                .send_compressed(Gzip)
                .max_encoding_message_size(64 << 20),
        )
        .add_service(
            GraphServiceServer::new(GraphApi(Arc::clone(&node)))
                .max_decoding_message_size(max_message)
                .accept_compressed(Gzip)
                .send_compressed(Gzip),
        )
        .prepare();
    let dashboard_addr = match node.config.dashboard_addr()? {
        Some(addr) => {
            let grpc_stack = tower::Layer::layer(
                &Authorize(authenticator.clone()),
                tower::Layer::layer(&RpcTimer, routes.clone()),
            );
            let dashboard = crate::dashboard::Dashboard {
                gateway: crate::dashboard::Gateway::new(
                    crate::dashboard::boxed(grpc_stack),
                    max_message,
                )?,
                auth: authenticator.clone(),
                partitions: node.stores.bus.partitions(),
                started: std::time::Instant::now(),
                max_body: max_message,
            };
            Some(
                crate::dashboard::serve(addr, http_tls, dashboard)
                    .await
                    .with_context(|| format!("binding the dashboard address {addr}"))?,
            )
        }
        None => None,
    };
    let server = builder
        // h2 closes a connection whose buffered small DATA frames pass a budget of half the
        // connection window (`too_many_data_frames`), and hyper's defaults give a stream the
        // whole connection window (1 MiB each): a client streaming one-event messages
        // within its flow-control window could fill the budget twice over while the server
        // appended. A stream may now hold 64 KiB unread, against a budget of 8 MiB.
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .http2_keepalive_interval(keepalive)
        .http2_keepalive_timeout(Some(node_settings.keepalive_timeout))
        .layer(RpcTimer)
        // Every call but health and reflection needs a token with its role (auth::METHOD_ROLES).
        .layer(Authorize(authenticator))
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, stop);

    ready(Addresses {
        grpc,
        metrics: metrics_addr,
        dashboard: dashboard_addr,
        tls: tls_on,
    });
    let served = server.await;
    tracing::info!("gRPC server stopped; letting the pipeline finish its batch");
    let _ = shutdown_tx.send(true);
    let _ = pipeline.await;
    served.context("gRPC server")?;
    Ok(())
}

/// Opens the stores the config names: the embedded backend in `node.data_dir` for every
/// role, the bus on Kafka when `storage.bus = "kafka"`, the graph on Dgraph when
/// `storage.graph = "dgraph"`, written by the committer
/// `storage.committer` chooses.
async fn open_stores(config: &Config) -> anyhow::Result<Stores> {
    let mut options = EmbeddedOptions::new(&config.node.data_dir);
    options.partitions = config.pipeline.partitions;
    options.sync = config.pipeline.sync;
    options
        .memory_limit
        .clone_from(&config.analytics.memory_limit);
    let data_dir = || {
        format!(
            "opening the data directory {}",
            config.node.data_dir.display()
        )
    };
    let mut stores = match config.storage.bus {
        BusKind::Embedded => tokio::task::block_in_place(|| Embedded::open(&options))
            .with_context(data_dir)?
            .stores(),
        BusKind::Kafka => {
            let bus = open_kafka_bus(&config.storage.kafka).await?;
            tokio::task::block_in_place(|| Embedded::stores_with_bus(&options, bus))
                .with_context(data_dir)?
        }
    };
    tracing::info!(bus = %String::from(config.storage.bus), "bus");
    if config.storage.documents == DocumentsKind::Mongodb {
        open_mongo_documents(&config.storage.mongodb, &mut stores).await?;
    }
    tracing::info!(documents = %String::from(config.storage.documents), "documents");
    if config.storage.graph == GraphKind::Dgraph {
        stores.graph = open_dgraph_graph(&config.storage.dgraph).await?;
    }
    tracing::info!(graph = %String::from(config.storage.graph), "graph");
    if config.storage.committer == CommitterKind::RoleByRole {
        // The role traits written one by one, as the cluster backends do, so that path runs
        // (and is crash-tested) against real stores.
        stores.committer = Arc::new(Sequential(stores.clone()));
    }
    tracing::info!(committer = %String::from(config.storage.committer), "pipeline committer");
    Ok(stores)
}

/// The Kafka bus of `[storage.kafka]`; errors name the key at fault.
#[cfg(feature = "kafka")]
async fn open_kafka_bus(
    kafka: &crate::config::KafkaSection,
) -> anyhow::Result<Arc<dyn credence_storage::Bus>> {
    use credence_storage::StorageError;
    let bus = credence_storage::kafka::KafkaBus::open(kafka.options())
        .await
        .map_err(|e| match e {
            StorageError::Unavailable(_) => {
                anyhow::anyhow!("storage.kafka.brokers = {:?}: {e}", kafka.brokers)
            }
            StorageError::Invalid(_) => {
                anyhow::anyhow!("storage.kafka.partitions = {}: {e}", kafka.partitions)
            }
            other => anyhow::anyhow!("storage.kafka (topic {:?}): {other}", kafka.topic),
        })?;
    tracing::info!(brokers = %kafka.brokers, topic = %kafka.topic, group = %kafka.group_id,
        partitions = kafka.partitions, "bus on Kafka");
    Ok(Arc::new(bus))
}

#[cfg(not(feature = "kafka"))]
#[allow(
    clippy::unused_async,
    reason = "the same signature as with the feature"
)]
async fn open_kafka_bus(
    _kafka: &crate::config::KafkaSection,
) -> anyhow::Result<Arc<dyn credence_storage::Bus>> {
    anyhow::bail!(
        "storage.bus = \"kafka\", but this credence binary was built without its `kafka` \
         feature: build it with the default features"
    )
}

/// The document roles on MongoDB of `[storage.mongodb]`; errors name the key at fault.
#[cfg(feature = "mongodb")]
async fn open_mongo_documents(
    mongodb: &crate::config::MongoSection,
    stores: &mut Stores,
) -> anyhow::Result<()> {
    use credence_storage::mongo::{MongoDocuments, MongoOptions};
    let mut options = MongoOptions::new(&mongodb.uri);
    options.database.clone_from(&mongodb.database);
    options.timeout = mongodb.timeout;
    let documents = MongoDocuments::open(options)
        .await
        .map_err(|e| anyhow::anyhow!("storage.mongodb.uri: {e}"))?;
    Arc::new(documents).install(stores);
    tracing::info!(database = %mongodb.database, "documents on MongoDB");
    Ok(())
}

#[cfg(not(feature = "mongodb"))]
#[allow(
    clippy::unused_async,
    reason = "the same signature as the one with the feature"
)]
async fn open_mongo_documents(
    _mongodb: &crate::config::MongoSection,
    _stores: &mut Stores,
) -> anyhow::Result<()> {
    anyhow::bail!(
        "storage.documents = \"mongodb\", but this credence binary was built without its \
         `mongodb` feature"
    )
}

/// The graph on Dgraph of `[storage.dgraph]`; errors name the key at fault.
#[cfg(feature = "dgraph")]
async fn open_dgraph_graph(
    dgraph: &crate::config::DgraphSection,
) -> anyhow::Result<Arc<dyn credence_storage::Graph>> {
    use credence_storage::dgraph::{DgraphGraph, DgraphOptions};
    let mut options = DgraphOptions::new(&dgraph.url);
    options.prefix.clone_from(&dgraph.prefix);
    options.timeout = dgraph.timeout;
    options.path_budget = dgraph.path_budget as usize;
    let graph = DgraphGraph::open(options)
        .await
        .map_err(|e| anyhow::anyhow!("storage.dgraph.url = {:?}: {e}", dgraph.url))?;
    tracing::info!(url = %dgraph.url, prefix = %dgraph.prefix, "graph on Dgraph");
    Ok(Arc::new(graph))
}

#[cfg(not(feature = "dgraph"))]
#[allow(
    clippy::unused_async,
    reason = "the same signature as with the feature"
)]
async fn open_dgraph_graph(
    _dgraph: &crate::config::DgraphSection,
) -> anyhow::Result<Arc<dyn credence_storage::Graph>> {
    anyhow::bail!(
        "storage.graph = \"dgraph\", but this credence binary was built without its `dgraph` \
         feature: build it with the default features"
    )
}

/// Refuses to start when the pipeline's committed offset of a partition lies past the bus's
/// end: records it scored are gone from the bus, and new events would get offsets already
/// committed, which the pipeline would never score.
async fn check_committed_offsets(stores: &Stores) -> anyhow::Result<()> {
    for p in 0..stores.bus.partitions() {
        let committed = stores.snapshots.committed_offset(p).await?;
        let end = *stores.bus.end(p).borrow();
        if committed > end {
            anyhow::bail!(
                "bus partition {p} ends at offset {end}, but the pipeline committed it up to \
                 offset {committed}: records it scored are missing from the bus (a bus file \
                 cut, replaced, or restored from an older backup than the database). New \
                 events would get offsets already committed and never be scored, so the node \
                 does not start. Restore the bus and the database from the same backup, or \
                 start from an empty data directory"
            );
        }
    }
    Ok(())
}

/// Reports the bus failing once it stops taking events for good (it could not undo a failed
/// write); appends then fail UNAVAILABLE with the reason.
async fn not_serving_when_the_bus_fails(mut bus: watch::Receiver<BusHealth>, health: Arc<Health>) {
    loop {
        let state = bus.borrow_and_update().clone();
        if let BusHealth::Failed(reason) = state {
            tracing::error!(%reason, "the bus has failed for good");
            health
                .failing(Component::Bus, format!("the bus has stopped: {reason}"))
                .await;
            return;
        }
        if bus.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use credence_storage::{BusRecord, PartitionCommit};

    use super::*;

    fn open(dir: &std::path::Path) -> Embedded {
        let mut options = EmbeddedOptions::new(dir);
        options.partitions = 2;
        options.sync = false;
        options.memory_limit = "512MB".into();
        Embedded::open(&options).unwrap()
    }

    /// A bus file replaced by an empty one (what the bus's damage message offers) while the
    /// database had committed records of it: the node must not start.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_committed_offset_past_the_end_of_its_partition_refuses_the_start() {
        let dir = tempfile::tempdir().unwrap();
        {
            let stores = open(dir.path()).stores();
            let records = (0..3)
                .map(|i| BusRecord {
                    partition: 1,
                    payload: vec![i],
                })
                .collect();
            stores.bus.append(records).await.unwrap();
            stores
                .committer
                .commit(
                    vec![PartitionCommit {
                        partition: 1,
                        next_offset: 3,
                        ..PartitionCommit::default()
                    }],
                    credence_scorer::Timestamp::from_nanos(0),
                )
                .await
                .unwrap();
            check_committed_offsets(&stores).await.unwrap();
        }
        std::fs::write(dir.path().join("bus").join("p001.log"), b"").unwrap();
        let stores = open(dir.path()).stores();
        let err = check_committed_offsets(&stores)
            .await
            .unwrap_err()
            .to_string();
        for part in [
            "bus partition 1 ends at offset 0",
            "committed it up to offset 3",
            "Restore the bus and the database from the same backup",
        ] {
            assert!(err.contains(part), "{part:?} missing from {err}");
        }
    }

    /// A Kafka bus nobody answers at: the start fails within the connect timeout, naming the
    /// key and the address.
    #[cfg(feature = "kafka")]
    #[tokio::test(flavor = "multi_thread")]
    async fn an_unreachable_kafka_broker_is_named_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.node.data_dir = dir.path().to_path_buf();
        config.storage.bus = BusKind::Kafka;
        config.storage.kafka.brokers = "127.0.0.1:1".into();
        config.storage.kafka.connect_timeout = std::time::Duration::from_secs(1);
        let Err(err) = open_stores(&config).await else {
            panic!("a node started with no broker");
        };
        let err = format!("{err:#}");
        assert!(
            err.contains("storage.kafka.brokers = \"127.0.0.1:1\""),
            "{err}"
        );
        assert!(err.contains("cannot reach the Kafka brokers"), "{err}");
    }
}
