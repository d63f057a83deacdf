//! The four gRPC services. Handlers convert at the edge (`crate::convert`), call the
//! catalog, ingestion or stores, and map every error in one place (`crate::error`).

mod graph;
pub(crate) mod ingestion;
mod query;
mod scoring;

use crate::error::Error;
use std::sync::Arc;

use credence_proto::v1 as pb;
use credence_storage::{Page, Stores};
use tokio::sync::broadcast;
use tonic::Status;

pub use graph::GraphApi;
pub use ingestion::IngestionApi;
pub use query::QueryApi;
pub use scoring::ScoringApi;

use crate::catalog::Catalog;
use crate::config::Config;
use crate::convert;
use crate::ingest::Ingest;

/// What every handler reaches.
pub struct Node {
    /// The stores.
    pub stores: Stores,
    /// Live rules and config.
    pub catalog: Arc<Catalog>,
    /// Ingestion.
    pub ingest: Ingest,
    /// Alerts of committed batches.
    pub alerts: broadcast::Sender<pb::Alert>,
    /// The node configuration.
    pub config: Config,
    /// One permit per analytics query that may run at once
    /// (`analytics.max_concurrent_queries`); a query holds its permit until its result is
    /// delivered or dropped.
    pub analytics_slots: Arc<tokio::sync::Semaphore>,
    /// Turns true when the node begins to stop; endless streams end then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl Node {
    /// Records a change in the audit trail once it is made. If that fails, the call fails
    /// saying the change stands but is not recorded, rather than answering success for a
    /// change nobody can trace.
    pub(crate) async fn audit(
        &self,
        actor: String,
        action: &str,
        target: String,
        detail: String,
    ) -> Result<(), Status> {
        let entry = credence_storage::AuditEntry {
            at: credence_scorer::Timestamp::now(),
            actor,
            action: action.to_owned(),
            target,
            detail,
        };
        self.stores.audit.record(vec![entry]).await.map_err(|e| {
            tracing::error!(error = %e, action, "a change could not be recorded in the audit trail");
            Error::unavailable::<Status>(format!(
                "{action} was applied, but recording it in the audit trail failed: {e}"
            ))
        })
    }
}

/// What an audit entry says about many items: how many, and the first few (each shortened).
fn audit_items<'a>(noun: &str, items: impl ExactSizeIterator<Item = &'a str>) -> String {
    const SHOWN: usize = 5;
    let count = items.len();
    let shown: Vec<String> = items.take(SHOWN).map(crate::error::quote).collect();
    let more = if count > SHOWN { ", ..." } else { "" };
    format!("{count} {noun}: {}{more}", shown.join(", "))
}

/// A page request from the contract's `page_size` and `page_token`.
fn page(size: u32, token: &str) -> Page {
    Page {
        size,
        token: token.to_owned(),
    }
}

/// An optional timestamp field of a request.
fn optional_time(
    field: &str,
    t: Option<&prost_types::Timestamp>,
) -> Result<Option<credence_scorer::Timestamp>, Status> {
    t.map(|t| convert::timestamp(field, t))
        .transpose()
        .map_err(|e| Error::from(e).into())
}

/// A required, non-empty id field.
fn required_id<'a>(field: &str, id: &'a str) -> Result<&'a str, Status> {
    if id.is_empty() {
        Err(Error::required(field))
    } else {
        Ok(id)
    }
}
