//! What the node tells health checks, per component.
//!
//! Each component (the committer, each partition worker, the bus, the stores) reports
//! whether it works. Any failing component turns the overall service ("") and the
//! services it affects NOT_SERVING; they go back to SERVING when it recovers. A load balancer
//! or orchestrator watching "" then stops sending traffic to a node that would accept events
//! it cannot score.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// A part of the node whose failure health checks must show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    /// The committer, which writes every scored micro-batch.
    Committer,
    /// The scoring worker of one bus partition.
    Worker(u32),
    /// The bus.
    Bus,
    /// The stores behind queries and rules.
    Stores,
}

impl Component {
    /// The services that cannot do their job while this component fails.
    fn affects(self) -> &'static [&'static str] {
        const INGESTION: &str = "credence.v1.IngestionService";
        match self {
            // Events would be acknowledged and never scored.
            Self::Committer | Self::Worker(_) | Self::Bus => &[INGESTION],
            Self::Stores => &credence_proto::SERVICE_NAMES,
        }
    }
}

/// The health of every component, mirrored into the gRPC health service.
pub struct Health {
    reporter: HealthReporter,
    /// Failing components and why.
    failing: Mutex<BTreeMap<Component, String>>,
    /// Serialises publishing, so a stale view never overwrites a newer one.
    publishing: tokio::sync::Mutex<()>,
}

impl Health {
    /// Health reported through `reporter`; every service starts SERVING.
    pub async fn new(reporter: HealthReporter) -> Self {
        for name in credence_proto::SERVICE_NAMES.into_iter().chain([""]) {
            reporter
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }
        Self {
            reporter,
            failing: Mutex::new(BTreeMap::new()),
            publishing: tokio::sync::Mutex::new(()),
        }
    }

    /// `component` fails, for `reason`.
    pub async fn failing(&self, component: Component, reason: impl Into<String>) {
        let reason = reason.into();
        let changed = self
            .failing
            .lock()
            .insert(component, reason.clone())
            .is_none();
        if changed {
            tracing::error!(?component, %reason, "component failing: health is NOT_SERVING");
            self.publish().await;
        }
    }

    /// `component` works (again).
    pub async fn working(&self, component: Component) {
        let changed = self.failing.lock().remove(&component).is_some();
        if changed {
            tracing::info!(?component, "component recovered");
            self.publish().await;
        }
    }

    /// Whether `component` is failing now.
    pub fn is_failing(&self, component: Component) -> bool {
        self.failing.lock().contains_key(&component)
    }

    async fn publish(&self) {
        let _publishing = self.publishing.lock().await;
        let statuses: Vec<(&'static str, ServingStatus)> = {
            let failing = self.failing.lock();
            credence_proto::SERVICE_NAMES
                .into_iter()
                .map(|name| {
                    let down = failing.keys().any(|c| c.affects().contains(&name));
                    (name, down)
                })
                .chain([("", !failing.is_empty())])
                .map(|(name, down)| {
                    let status = if down {
                        ServingStatus::NotServing
                    } else {
                        ServingStatus::Serving
                    };
                    (name, status)
                })
                .collect()
        };
        for (name, status) in statuses {
            self.reporter.set_service_status(name, status).await;
        }
    }
}
