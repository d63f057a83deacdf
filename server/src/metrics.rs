//! Prometheus metrics, and the `/metrics` endpoint that serves them.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use prost::Message as _;
use rustc_hash::FxHashMap;

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
    /// Bus records the pipeline could not read and parked as dead letters.
    pub dead_letters: IntCounter,
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
        let dead_letters = IntCounter::new(
            "credence_dead_letters_total",
            "Bus records the pipeline could not read and parked (see the dead_letters view)",
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
            Box::new(dead_letters.clone()),
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
            dead_letters,
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

/// Serves `GET /metrics` on `addr` until the process ends, over TLS when `tls` is given;
/// returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    tls: Option<std::sync::Arc<tokio_rustls::rustls::ServerConfig>>,
) -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async { Metrics::global().render() }),
    );
    crate::tls::serve_http(addr, tls, app, "metrics endpoint").await
}

/// The label of a call to `path` ("/credence.v1.IngestionService/PublishEvents" ->
/// "PublishEvents"): only methods this node serves get their own series; any other path a
/// client sends is `unknown`, so clients cannot grow the label set without bound.
pub fn method_label(path: &str) -> &'static str {
    static KNOWN: OnceLock<FxHashMap<String, String>> = OnceLock::new();
    let known = KNOWN.get_or_init(|| {
        let mut known = FxHashMap::default();
        let sets = [
            credence_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ];
        for bytes in sets {
            // Both sets are compiled into the binary; one that does not decode is a build
            // defect, and the calls are then counted as unknown rather than failing.
            let Ok(set) = prost_types::FileDescriptorSet::decode(bytes) else {
                tracing::error!("a compiled-in descriptor set does not decode");
                continue;
            };
            for file in &set.file {
                for service in &file.service {
                    for method in &service.method {
                        let name = method.name().to_owned();
                        let path = format!("/{}.{}/{name}", file.package(), service.name());
                        known.insert(path, name);
                    }
                }
            }
        }
        for package in ["grpc.reflection.v1", "grpc.reflection.v1alpha"] {
            known.insert(
                format!("/{package}.ServerReflection/ServerReflectionInfo"),
                "ServerReflectionInfo".to_owned(),
            );
        }
        known
    });
    known.get(path).map_or(UNKNOWN_METHOD, String::as_str)
}

/// The `method` label of calls to paths this node does not serve.
pub const UNKNOWN_METHOD: &str = "unknown";

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
        let method = method_label(req.uri().path());
        let started = Instant::now();
        let span = tracing::info_span!("rpc", method);
        let call = span.in_scope(|| self.inner.call(req));
        Box::pin(tracing::Instrument::instrument(
            async move {
                let result = call.await;
                // Streaming calls are timed to their first response; enough to spot slow RPCs.
                Metrics::global()
                    .rpc_duration
                    .with_label_values(&[method])
                    .observe(started.elapsed().as_secs_f64());
                result
            },
            span,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_methods_get_their_own_label() {
        assert_eq!(
            method_label("/credence.v1.IngestionService/PublishEvents"),
            "PublishEvents"
        );
        assert_eq!(
            method_label("/credence.v1.QueryService/RunAnalytics"),
            "RunAnalytics"
        );
        assert_eq!(method_label("/grpc.health.v1.Health/Check"), "Check");
        assert_eq!(
            method_label("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
            "ServerReflectionInfo"
        );
        for path in [
            "/credence.v1.IngestionService/NoSuchMethod",
            "/made.up/PublishEvents-1",
            "/x/PublishEvents",
            "",
            "/",
        ] {
            assert_eq!(method_label(path), UNKNOWN_METHOD, "{path:?}");
        }
    }
}
