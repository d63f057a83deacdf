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
use tokio::sync::{broadcast, watch};
use tokio_stream::wrappers::TcpListenerStream;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::health::Health;
use crate::ingest::{Ingest, Progress};
use crate::metrics::{self, RpcTimer};
use crate::pipeline::{self, Shared};
use crate::services::{GraphApi, IngestionApi, Node, QueryApi, ScoringApi};

/// Where a started node can be reached.
#[derive(Clone, Copy, Debug)]
pub struct Addresses {
    /// gRPC.
    pub grpc: SocketAddr,
    /// Prometheus metrics, when on.
    pub metrics: Option<SocketAddr>,
}

/// Runs a node until `stop` resolves: opens the data directory, seeds an empty store with
/// `seed`, starts the pipeline, serves gRPC, and calls `ready` once it accepts calls.
pub async fn run(
    config: Config,
    seed: &RuleFile,
    ready: impl FnOnce(Addresses),
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut options = EmbeddedOptions::new(&config.node.data_dir);
    options.partitions = config.pipeline.partitions;
    options.sync = config.pipeline.sync;
    options
        .memory_limit
        .clone_from(&config.analytics.memory_limit);
    let embedded = tokio::task::block_in_place(|| Embedded::open(&options)).with_context(|| {
        format!(
            "opening the data directory {}",
            config.node.data_dir.display()
        )
    })?;
    let stores = embedded.stores();
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
    let workers = pipeline::spawn(
        &Arc::new(Shared {
            stores: stores.clone(),
            catalog: Arc::clone(&catalog),
            progress,
            alerts: alerts.clone(),
            config: config.pipeline.clone(),
            graph: config.graph.clone(),
            health,
        }),
        &shutdown_rx,
    );

    let listener = tokio::net::TcpListener::bind(config.node.listen)
        .await
        .with_context(|| format!("binding the gRPC address {}", config.node.listen))?;
    let grpc = listener.local_addr()?;
    let metrics_addr = match config.metrics_addr()? {
        Some(addr) => Some(
            metrics::serve(addr)
                .await
                .with_context(|| format!("binding the metrics address {addr}"))?,
        ),
        None => None,
    };

    let max_message = config.ingest.max_message_bytes;
    let node = Arc::new(Node {
        stores,
        catalog,
        ingest,
        alerts,
        config,
    });
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(credence_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(credence_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let server = tonic::transport::Server::builder()
        .layer(RpcTimer)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(health_service)
        .add_service(
            IngestionServiceServer::new(IngestionApi(Arc::clone(&node)))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            ScoringServiceServer::new(ScoringApi(Arc::clone(&node)))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            QueryServiceServer::new(QueryApi(Arc::clone(&node)))
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(64 << 20),
        )
        .add_service(
            GraphServiceServer::new(GraphApi(Arc::clone(&node)))
                .max_decoding_message_size(max_message),
        )
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop);

    ready(Addresses {
        grpc,
        metrics: metrics_addr,
    });
    let served = server.await;
    tracing::info!("gRPC server stopped; letting the pipeline finish its batch");
    let _ = shutdown_tx.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    served.context("gRPC server")?;
    Ok(())
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
