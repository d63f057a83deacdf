//! Prometheus metrics, and the `/metrics` endpoint that serves them.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Every metric of a node.
pub struct Metrics {
    registry: Registry,
    /// Events received by ingestion, by outcome (accepted, duplicate, rejected).
    pub events_received: IntCounterVec,
    /// Events the pipeline scored and committed.
    pub events_scored: IntCounter,
    /// Accepted events not yet committed by the pipeline, per partition.
    pub pipeline_lag: IntGaugeVec,
    /// Events per committed micro-batch.
    pub batch_size: Histogram,
    /// From the ingest acknowledgement to the snapshot commit that reflects the event.
    pub ingest_to_snapshot: Histogram,
    /// Time to commit one micro-batch to the stores.
    pub commit_seconds: Histogram,
    /// gRPC call durations by method.
    pub rpc_duration: HistogramVec,
}

impl Metrics {
    /// The process-wide metrics.
    pub fn global() -> &'static Metrics {
        static METRICS: OnceLock<Metrics> = OnceLock::new();
        METRICS.get_or_init(Metrics::new)
    }

    #[allow(clippy::expect_used, reason = "fixed, valid metric definitions")]
    fn new() -> Self {
        let registry = Registry::new();
        let latency = vec![
            0.000_5, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
            5.0, 10.0,
        ];
        let events_received = IntCounterVec::new(
            Opts::new(
                "credence_events_received_total",
                "Events received by ingestion",
            ),
            &["outcome"],
        )
        .expect("metric");
        let events_scored = IntCounter::new(
            "credence_events_scored_total",
            "Events scored and committed",
        )
        .expect("metric");
        let pipeline_lag = IntGaugeVec::new(
            Opts::new(
                "credence_pipeline_lag_events",
                "Accepted events not yet committed by the pipeline",
            ),
            &["partition"],
        )
        .expect("metric");
        let batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "credence_batch_size_events",
                "Events per committed micro-batch",
            )
            .buckets(prometheus::exponential_buckets(1.0, 2.0, 16).expect("buckets")),
        )
        .expect("metric");
        let ingest_to_snapshot = Histogram::with_opts(
            HistogramOpts::new(
                "credence_ingest_to_snapshot_seconds",
                "From the ingest acknowledgement to the snapshot commit reflecting the event",
            )
            .buckets(latency.clone()),
        )
        .expect("metric");
        let commit_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "credence_commit_seconds",
                "Time to commit one micro-batch to the stores",
            )
            .buckets(latency.clone()),
        )
        .expect("metric");
        let rpc_duration = HistogramVec::new(
            HistogramOpts::new("credence_rpc_duration_seconds", "gRPC call durations")
                .buckets(latency),
            &["method"],
        )
        .expect("metric");
        for collector in [
            Box::new(events_received.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(events_scored.clone()),
            Box::new(pipeline_lag.clone()),
            Box::new(batch_size.clone()),
            Box::new(ingest_to_snapshot.clone()),
            Box::new(commit_seconds.clone()),
            Box::new(rpc_duration.clone()),
        ] {
            registry.register(collector).expect("unique metric names");
        }
        Self {
            registry,
            events_received,
            events_scored,
            pipeline_lag,
            batch_size,
            ingest_to_snapshot,
            commit_seconds,
            rpc_duration,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail on I/O; an encoding error would be a bug here.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Serves `GET /metrics` on `addr` until the process ends; returns the bound address.
pub async fn serve(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async { Metrics::global().render() }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    });
    Ok(bound)
}

/// A tower layer that times every gRPC call into `credence_rpc_duration_seconds`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RpcTimer;

impl<S> tower::Layer<S> for RpcTimer {
    type Service = Timed<S>;
    fn layer(&self, inner: S) -> Timed<S> {
        Timed { inner }
    }
}

/// The service [`RpcTimer`] wraps around the gRPC router.
#[derive(Clone, Debug)]
pub struct Timed<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for Timed<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // "/credence.v1.IngestionService/PublishEvents" -> "PublishEvents"
        let method = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let started = Instant::now();
        let call = self.inner.call(req);
        Box::pin(async move {
            let result = call.await;
            // Streaming calls are timed to their first response; enough to spot slow RPCs.
            Metrics::global()
                .rpc_duration
                .with_label_values(&[method.as_str()])
                .observe(started.elapsed().as_secs_f64());
            result
        })
    }
}
