//! `ScoringService`: rules, config, scores, explanations, simulation, lists, alerts.

use std::pin::Pin;
use std::sync::Arc;

use credence_proto::v1 as pb;
use credence_proto::v1::scoring_service_server::ScoringService;
use credence_storage::{KeyKind, KeyPart, ListFilter};
use futures::Stream;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::BroadcastStream;
use tonic::{Request, Response, Status};

use super::{Node, optional_time, page, required_id};
use crate::auth::caller_name;
use crate::convert;
use crate::error::{Error, quote};

/// Most subjects one `BatchGetScores` reads.
const MAX_BATCH_SCORES: usize = 10_000;

/// The scoring handlers.
pub struct ScoringApi(pub Arc<Node>);

type AlertStream = Pin<Box<dyn Stream<Item = Result<pb::WatchAlertsResponse, Status>> + Send>>;

impl ScoringApi {
    async fn snapshot(&self, subject_id: &str) -> Result<Option<pb::ScoreSnapshot>, Status> {
        let found = self
            .0
            .stores
            .snapshots
            .get_snapshots(&[subject_id.to_owned()])
            .await
            .map_err(Error::from)?;
        Ok(found
            .into_iter()
            .next()
            .flatten()
            .map(|s| convert::snapshot_to_pb(&s.state, s.updated_at)))
    }
}

#[tonic::async_trait]
impl ScoringService for ScoringApi {
    async fn put_rule(
        &self,
        request: Request<pb::PutRuleRequest>,
    ) -> Result<Response<pb::PutRuleResponse>, Status> {
        let actor = caller_name(&request);
        let rule = request
            .into_inner()
            .rule
            .ok_or_else(|| Error::required::<Error>("rule"))?;
        let rule = convert::rule(&rule).map_err(|e| Error::from(e.within("rule")))?;
        let stored = self.0.catalog.put_rule(rule).await?;
        self.0
            .audit(
                actor,
                "PutRule",
                format!("rule {} v{}", quote(&stored.id), stored.version),
                format!(
                    "{:?}, {} {:+} points",
                    stored.status,
                    quote(&stored.event_type),
                    stored.points
                ),
            )
            .await?;
        Ok(Response::new(pb::PutRuleResponse {
            rule: Some(convert::rule_to_pb(&stored)),
        }))
    }

    async fn get_rule(
        &self,
        request: Request<pb::GetRuleRequest>,
    ) -> Result<Response<pb::GetRuleResponse>, Status> {
        let r = request.into_inner();
        let id = required_id("rule_id", &r.rule_id)?;
        let version = (r.version != 0).then_some(r.version);
        let rule = self
            .0
            .stores
            .rules
            .get_rule(id, version)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| match version {
                Some(v) => {
                    Error::not_found::<Error>(format!("rule {} has no version {v}", quote(id)))
                }
                None => Error::not_found(format!("rule {} does not exist", quote(id))),
            })?;
        Ok(Response::new(pb::GetRuleResponse {
            rule: Some(convert::rule_to_pb(&rule)),
        }))
    }

    async fn list_rules(
        &self,
        request: Request<pb::ListRulesRequest>,
    ) -> Result<Response<pb::ListRulesResponse>, Status> {
        let r = request.into_inner();
        let status_filter = (r.status != 0)
            .then(|| convert::rule_status("status", r.status))
            .transpose()
            .map_err(Error::from)?;
        let stores = &self.0.stores;
        let rules = stores
            .rules
            .list_rules(r.all_versions)
            .await
            .map_err(Error::from)?;
        let rule_set_version = stores.rules.rule_set_version().await.map_err(Error::from)?;
        let page = page(r.page_size, &r.page_token);
        // Keyset paging by (rule id, version), the order `list_rules` returns.
        let after = match page
            .after("rules", &[KeyKind::Text, KeyKind::U64])
            .map_err(Error::from)?
            .as_deref()
        {
            Some([KeyPart::Text(id), KeyPart::U64(version)]) => Some((id.clone(), *version)),
            _ => None,
        };
        let matching: Vec<pb::Rule> = rules
            .iter()
            .filter(|rule| {
                after.as_ref().is_none_or(|(id, version)| {
                    (rule.id.as_str(), u64::from(rule.version)) > (id.as_str(), *version)
                })
            })
            .filter(|rule| status_filter.is_none_or(|s| rule.status == s))
            .filter(|rule| r.event_type.is_empty() || rule.event_type == r.event_type)
            .take(page.limit() + 1)
            .map(convert::rule_to_pb)
            .collect();
        let paged = page.paged("rules", matching, |rule| {
            vec![
                KeyPart::Text(rule.id.clone()),
                KeyPart::U64(u64::from(rule.version)),
            ]
        });
        Ok(Response::new(pb::ListRulesResponse {
            rules: paged.items,
            rule_set_version,
            next_page_token: paged.next_token,
        }))
    }

    async fn set_rule_status(
        &self,
        request: Request<pb::SetRuleStatusRequest>,
    ) -> Result<Response<pb::SetRuleStatusResponse>, Status> {
        let actor = caller_name(&request);
        let r = request.into_inner();
        let id = required_id("rule_id", &r.rule_id)?;
        if r.status == 0 {
            return Err(Error::invalid(
                "status is required: RULE_STATUS_DRAFT, RULE_STATUS_ACTIVE or RULE_STATUS_RETIRED",
            ));
        }
        let new_status = convert::rule_status("status", r.status).map_err(Error::from)?;
        let stored = self.0.catalog.set_rule_status(id, new_status).await?;
        self.0
            .audit(
                actor,
                "SetRuleStatus",
                format!("rule {} v{}", quote(&stored.id), stored.version),
                format!("{:?}", stored.status),
            )
            .await?;
        Ok(Response::new(pb::SetRuleStatusResponse {
            rule: Some(convert::rule_to_pb(&stored)),
        }))
    }

    async fn get_config(
        &self,
        request: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::GetConfigResponse>, Status> {
        let version = request.into_inner().version;
        let version = (version != 0).then_some(version);
        let config = self
            .0
            .stores
            .rules
            .get_config(version)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| match version {
                Some(v) => Error::not_found::<Error>(format!("config version {v} does not exist")),
                None => Error::not_found("no config is stored"),
            })?;
        Ok(Response::new(pb::GetConfigResponse {
            config: Some(convert::config_to_pb(&config)),
        }))
    }

    async fn put_config(
        &self,
        request: Request<pb::PutConfigRequest>,
    ) -> Result<Response<pb::PutConfigResponse>, Status> {
        let actor = caller_name(&request);
        let config = request
            .into_inner()
            .config
            .ok_or_else(|| Error::required::<Error>("config"))?;
        // A field left out keeps the latest stored config's value.
        let stored = self
            .0
            .catalog
            .update_config(|latest| {
                convert::config(&config, latest).map_err(|e| Error::from(e.within("config")))
            })
            .await?;
        self.0
            .audit(
                actor,
                "PutConfig",
                format!("config v{}", stored.version),
                format!(
                    "baseline {}, bounds {}..{}, {} tiers",
                    stored.baseline,
                    stored.min_score,
                    stored.max_score,
                    stored.tiers.len()
                ),
            )
            .await?;
        Ok(Response::new(pb::PutConfigResponse {
            config: Some(convert::config_to_pb(&stored)),
        }))
    }

    async fn get_score(
        &self,
        request: Request<pb::GetScoreRequest>,
    ) -> Result<Response<pb::GetScoreResponse>, Status> {
        let r = request.into_inner();
        let id = required_id("subject_id", &r.subject_id)?;
        let snapshot = self.snapshot(id).await?.ok_or_else(|| {
            Error::not_found::<Error>(format!(
                "subject {} has no score (no event of it was scored yet)",
                quote(id)
            ))
        })?;
        Ok(Response::new(pb::GetScoreResponse {
            snapshot: Some(snapshot),
        }))
    }

    async fn batch_get_scores(
        &self,
        request: Request<pb::BatchGetScoresRequest>,
    ) -> Result<Response<pb::BatchGetScoresResponse>, Status> {
        let ids = request.into_inner().subject_ids;
        if ids.len() > MAX_BATCH_SCORES {
            return Err(Error::invalid(format!(
                "subject_ids: at most {MAX_BATCH_SCORES} per call, not {}",
                ids.len()
            )));
        }
        let found = self
            .0
            .stores
            .snapshots
            .get_snapshots(&ids)
            .await
            .map_err(Error::from)?;
        let mut response = pb::BatchGetScoresResponse::default();
        for (id, snapshot) in ids.into_iter().zip(found) {
            match snapshot {
                Some(s) => response
                    .snapshots
                    .push(convert::snapshot_to_pb(&s.state, s.updated_at)),
                None => response.missing_subject_ids.push(id),
            }
        }
        Ok(Response::new(response))
    }

    async fn explain_score(
        &self,
        request: Request<pb::ExplainScoreRequest>,
    ) -> Result<Response<pb::ExplainScoreResponse>, Status> {
        let r = request.into_inner();
        let id = required_id("subject_id", &r.subject_id)?;
        let snapshot = self.snapshot(id).await?.ok_or_else(|| {
            Error::not_found::<Error>(format!("subject {} has no score to explain", quote(id)))
        })?;
        let range = credence_storage::TimeRange {
            from: optional_time("from", r.from.as_ref())?,
            to: optional_time("to", r.to.as_ref())?,
        };
        let changes = self
            .0
            .stores
            .series
            .score_changes(id, range, &page(r.page_size, &r.page_token))
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::ExplainScoreResponse {
            snapshot: Some(snapshot),
            changes: changes
                .items
                .iter()
                .map(convert::score_change_to_pb)
                .collect(),
            next_page_token: changes.next_token,
        }))
    }

    async fn simulate(
        &self,
        request: Request<pb::SimulateRequest>,
    ) -> Result<Response<pb::SimulateResponse>, Status> {
        let request = request.into_inner();
        // CPU-bound and possibly long: off the async workers.
        let response = tokio::task::spawn_blocking(move || credence_simulation::simulate(&request))
            .await
            .map_err(|e| Error::internal::<Error>(format!("simulation failed: {e}")))?
            .map_err(Error::from)?;
        Ok(Response::new(response))
    }

    async fn put_list_entry(
        &self,
        request: Request<pb::PutListEntryRequest>,
    ) -> Result<Response<pb::PutListEntryResponse>, Status> {
        let actor = caller_name(&request);
        let entry = request
            .into_inner()
            .entry
            .ok_or_else(|| Error::required::<Error>("entry"))?;
        required_id("entry.subject_id", &entry.subject_id)?;
        let entry = convert::list_entry(&entry, credence_scorer::Timestamp::now())
            .map_err(|e| Error::from(e.within("entry")))?;
        self.0
            .stores
            .lists
            .put_entry(entry.clone())
            .await
            .map_err(Error::from)?;
        self.0
            .audit(
                actor,
                "PutListEntry",
                format!(
                    "{:?} list, subject {}",
                    entry.kind,
                    quote(&entry.subject_id)
                ),
                format!(
                    "reason {}, expires {}",
                    quote(&entry.reason),
                    entry.expires_at.map_or_else(
                        || "never".to_owned(),
                        credence_scorer::Timestamp::to_rfc3339
                    )
                ),
            )
            .await?;
        Ok(Response::new(pb::PutListEntryResponse {
            entry: Some(convert::list_entry_to_pb(entry)),
        }))
    }

    async fn remove_list_entry(
        &self,
        request: Request<pb::RemoveListEntryRequest>,
    ) -> Result<Response<pb::RemoveListEntryResponse>, Status> {
        let actor = caller_name(&request);
        let r = request.into_inner();
        required_id("subject_id", &r.subject_id)?;
        let kind = convert::list_kind("kind", r.kind).map_err(Error::from)?;
        let removed = self
            .0
            .stores
            .lists
            .remove_entry(&r.subject_id, kind)
            .await
            .map_err(Error::from)?;
        self.0
            .audit(
                actor,
                "RemoveListEntry",
                format!("{kind:?} list, subject {}", quote(&r.subject_id)),
                if removed { "removed" } else { "was not listed" }.to_owned(),
            )
            .await?;
        Ok(Response::new(pb::RemoveListEntryResponse { removed }))
    }

    async fn list_list_entries(
        &self,
        request: Request<pb::ListListEntriesRequest>,
    ) -> Result<Response<pb::ListListEntriesResponse>, Status> {
        let r = request.into_inner();
        // UNSPECIFIED lists both kinds.
        let kind = match r.kind {
            0 => None,
            k => Some(convert::list_kind("kind", k).map_err(Error::from)?),
        };
        let filter = ListFilter {
            kind,
            subject_id: r.subject_id,
            include_expired: r.include_expired,
            now: Some(credence_scorer::Timestamp::now()),
        };
        let entries = self
            .0
            .stores
            .lists
            .list_entries(&filter, &page(r.page_size, &r.page_token))
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::ListListEntriesResponse {
            entries: entries
                .items
                .into_iter()
                .map(convert::list_entry_to_pb)
                .collect(),
            next_page_token: entries.next_token,
        }))
    }

    type WatchAlertsStream = AlertStream;

    async fn watch_alerts(
        &self,
        request: Request<pb::WatchAlertsRequest>,
    ) -> Result<Response<Self::WatchAlertsStream>, Status> {
        let filter = request.into_inner();
        let stream = BroadcastStream::new(self.0.alerts.subscribe()).filter_map(move |item| {
            match item {
                Ok(alert) => {
                    let wanted = (filter.subject_ids.is_empty()
                        || filter.subject_ids.contains(&alert.subject_id))
                        && (filter.new_tiers.is_empty()
                            || filter.new_tiers.contains(&alert.new_tier));
                    wanted.then_some(Ok(pb::WatchAlertsResponse { alert: Some(alert) }))
                }
                // A watcher too slow for the alert rate is told so and ends; it can resume
                // from the score history.
                Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                    Some(Err(Error::exhausted(format!(
                        "this watcher fell {n} alerts behind; reconnect, and read missed changes \
                         with GetScoreHistory"
                    ))))
                }
            }
        });
        // A watch would hold the server's graceful stop forever: it ends when the node
        // begins to stop, telling the watcher to reconnect.
        let mut stopping = self.0.stopping.clone();
        let stopped = async move {
            let _ = stopping.wait_for(|stopping| *stopping).await;
        };
        let stream = futures::StreamExt::chain(
            futures::StreamExt::take_until(stream, stopped),
            futures::stream::once(async {
                Err(Error::Unavailable(
                    "the node is stopping: reconnect to watch alerts again".into(),
                )
                .into())
            }),
        );
        Ok(Response::new(Box::pin(stream)))
    }
}
