//! `QueryService`: profiles, subjects, history, events, tiers, aggregates, analytics SQL.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use credence_proto::v1 as pb;
use credence_proto::v1::query_service_server::QueryService;
use credence_storage::{AggregateQuery, EventFilter, QueryLimits, SubjectFilter, TimeRange};
use futures::Stream;
use tonic::{Request, Response, Status};

use super::{Node, optional_time, page, required_id};
use crate::convert;
use crate::error::{Error, quote};

/// The query handlers.
pub struct QueryApi(pub Arc<Node>);

type AnalyticsStream = Pin<Box<dyn Stream<Item = Result<pb::RunAnalyticsResponse, Status>> + Send>>;

fn range(
    from: Option<&prost_types::Timestamp>,
    to: Option<&prost_types::Timestamp>,
) -> Result<TimeRange, Status> {
    Ok(TimeRange {
        from: optional_time("from", from)?,
        to: optional_time("to", to)?,
    })
}

#[tonic::async_trait]
impl QueryService for QueryApi {
    async fn get_profile(
        &self,
        request: Request<pb::GetProfileRequest>,
    ) -> Result<Response<pb::GetProfileResponse>, Status> {
        let r = request.into_inner();
        let id = required_id("subject_id", &r.subject_id)?.to_owned();
        let ids = [id];
        let stores = &self.0.stores;
        let profile = stores
            .profiles
            .get_profiles(&ids)
            .await
            .map_err(Error::from)?
            .pop()
            .flatten()
            .map(convert::profile_to_pb);
        let snapshot = stores
            .snapshots
            .get_snapshots(&ids)
            .await
            .map_err(Error::from)?
            .pop()
            .flatten()
            .map(|s| convert::snapshot_to_pb(&s.state, s.updated_at));
        if profile.is_none() && snapshot.is_none() {
            return Err(Error::not_found(format!(
                "subject {} has neither a profile nor a score",
                quote(&ids[0])
            )));
        }
        Ok(Response::new(pb::GetProfileResponse { profile, snapshot }))
    }

    async fn list_subjects(
        &self,
        request: Request<pb::ListSubjectsRequest>,
    ) -> Result<Response<pb::ListSubjectsResponse>, Status> {
        let r = request.into_inner();
        let filter = SubjectFilter {
            region: r.region,
            tier: r.tier,
            min_score: r.min_score,
            max_score: r.max_score,
        };
        let listed = self
            .0
            .stores
            .snapshots
            .list_subjects(&filter, &page(r.page_size, &r.page_token))
            .await
            .map_err(Error::from)?;
        // The page's profiles in one call: the snapshot store filters without a join.
        let ids: Vec<String> = listed
            .items
            .iter()
            .map(|s| s.state.subject_id.clone())
            .collect();
        let profiles = self
            .0
            .stores
            .profiles
            .get_profiles(&ids)
            .await
            .map_err(Error::from)?;
        let subjects = listed
            .items
            .into_iter()
            .zip(profiles)
            .map(|(snapshot, profile)| {
                let profile = profile.unwrap_or_default();
                pb::SubjectSummary {
                    subject_id: snapshot.state.subject_id.clone(),
                    display_name: profile.display_name,
                    // The region the listing filtered on.
                    region: snapshot.region,
                    score: snapshot.state.score,
                    tier: snapshot.state.tier.to_string(),
                    last_event_time: Some(convert::timestamp_to_pb(snapshot.state.last_time)),
                }
            })
            .collect();
        Ok(Response::new(pb::ListSubjectsResponse {
            subjects,
            next_page_token: listed.next_token,
        }))
    }

    async fn get_score_history(
        &self,
        request: Request<pb::GetScoreHistoryRequest>,
    ) -> Result<Response<pb::GetScoreHistoryResponse>, Status> {
        let r = request.into_inner();
        let id = required_id("subject_id", &r.subject_id)?;
        let points = self
            .0
            .stores
            .series
            .score_history(
                id,
                range(r.from.as_ref(), r.to.as_ref())?,
                &page(r.page_size, &r.page_token),
            )
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::GetScoreHistoryResponse {
            points: points
                .items
                .into_iter()
                .map(|p| pb::ScorePoint {
                    at: Some(convert::timestamp_to_pb(p.at)),
                    event_id: p.event_id,
                    score: p.score,
                    tier: p.tier,
                    delta: p.delta,
                })
                .collect(),
            next_page_token: points.next_token,
        }))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let r = request.into_inner();
        let range = range(r.from.as_ref(), r.to.as_ref())?;
        let filter = EventFilter {
            subject_id: r.subject_id,
            event_type: r.event_type,
            from: range.from,
            to: range.to,
        };
        let events = self
            .0
            .stores
            .archive
            .list_events(&filter, &page(r.page_size, &r.page_token))
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::ListEventsResponse {
            events: events
                .items
                .into_iter()
                .map(|a| convert::received_event_to_pb(a.event))
                .collect(),
            next_page_token: events.next_token,
        }))
    }

    async fn get_tier_distribution(
        &self,
        request: Request<pb::GetTierDistributionRequest>,
    ) -> Result<Response<pb::GetTierDistributionResponse>, Status> {
        let region = request.into_inner().region;
        let counts = self
            .0
            .stores
            .snapshots
            .tier_counts(&region)
            .await
            .map_err(Error::from)?;
        let live = self.0.catalog.live();
        let mut tiers: Vec<pb::TierCount> = live
            .engine
            .config()
            .tiers
            .iter()
            .map(|t| pb::TierCount {
                tier: t.name.to_string(),
                min_score: t.min_score,
                subjects: 0,
            })
            .collect();
        let mut total = 0;
        for (tier, n) in counts {
            total += n;
            match tiers.iter_mut().find(|t| t.tier == tier) {
                Some(t) => t.subjects += n,
                // A tier of an older config version: still counted, with no threshold.
                None => tiers.push(pb::TierCount {
                    tier,
                    min_score: f64::NAN,
                    subjects: n,
                }),
            }
        }
        Ok(Response::new(pb::GetTierDistributionResponse {
            tiers,
            total_subjects: total,
        }))
    }

    async fn get_aggregates(
        &self,
        request: Request<pb::GetAggregatesRequest>,
    ) -> Result<Response<pb::GetAggregatesResponse>, Status> {
        let r = request.into_inner();
        let Some(window) = convert::aggregate_window(r.window) else {
            return Err(Error::invalid(
                "window is required: AGGREGATE_WINDOW_HOUR or AGGREGATE_WINDOW_DAY",
            ));
        };
        let Some(group_by) = convert::aggregate_group_by(r.group_by) else {
            return Err(Error::invalid(
                "group_by is required: AGGREGATE_GROUP_BY_SUBJECT, _REGION or _EVENT_TYPE",
            ));
        };
        if r.from.is_none() || r.to.is_none() {
            return Err(Error::invalid(
                "from and to are required: aggregates cover a bounded time range",
            ));
        }
        let query = AggregateQuery {
            window,
            group_by,
            range: range(r.from.as_ref(), r.to.as_ref())?,
            subject_id: r.subject_id,
            region: r.region,
            event_type: r.event_type,
        };
        let rows = self
            .0
            .stores
            .series
            .aggregates(&query, &page(r.page_size, &r.page_token))
            .await
            .map_err(Error::from)?;
        Ok(Response::new(pb::GetAggregatesResponse {
            rows: rows
                .items
                .into_iter()
                .map(convert::aggregate_row_to_pb)
                .collect(),
            next_page_token: rows.next_token,
        }))
    }

    type RunAnalyticsStream = AnalyticsStream;

    async fn run_analytics(
        &self,
        request: Request<pb::RunAnalyticsRequest>,
    ) -> Result<Response<Self::RunAnalyticsStream>, Status> {
        let r = request.into_inner();
        if r.sql.trim().is_empty() {
            return Err(Error::required("sql"));
        }
        let settings = &self.0.config.analytics;
        let timeout = match &r.timeout {
            None => settings.default_timeout,
            Some(d) => {
                let d = convert::duration("timeout", d).map_err(Error::from)?;
                let nanos = u64::try_from(d.nanos()).unwrap_or(0);
                if nanos == 0 {
                    return Err(Error::invalid("timeout: must be positive"));
                }
                Duration::from_nanos(nanos)
            }
        };
        if timeout > settings.max_timeout {
            return Err(Error::invalid(format!(
                "timeout: {} is over the server's limit of {} (analytics.max_timeout)",
                humantime::format_duration(timeout),
                humantime::format_duration(settings.max_timeout)
            )));
        }
        if r.max_rows > settings.max_rows_limit {
            return Err(Error::invalid(format!(
                "max_rows: {} is over the server's limit of {} (analytics.max_rows_limit); \
                 aggregate in SQL or page with LIMIT/OFFSET",
                r.max_rows, settings.max_rows_limit
            )));
        }
        let limits = QueryLimits {
            max_rows: if r.max_rows == 0 {
                settings.default_max_rows
            } else {
                r.max_rows
            },
            timeout,
        };
        // Refused at once rather than queued: a queued query would hold its request and
        // connection while waiting, and the client can retry as well as a queue could.
        let permit = Arc::clone(&self.0.analytics_slots)
            .try_acquire_owned()
            .map_err(|_| {
                Error::exhausted::<Error>(format!(
                    "{} analytics queries are running already (analytics.max_concurrent_queries); \
                     retry when one has finished",
                    settings.max_concurrent_queries
                ))
            })?;
        let parts = self
            .0
            .stores
            .analytics
            .stream_sql(&r.sql, limits, settings.max_result_bytes)
            .await
            .map_err(Error::from)?;
        // Each part goes out as it comes: the query waits while the client does not read
        // (HTTP/2 flow control), and the permit is held until the stream is done or dropped.
        let messages = futures::stream::unfold((parts, permit), |(mut parts, permit)| async move {
            let item = parts.next().await?.map_or_else(
                |e| Err(Status::from(Error::from(e))),
                |part| {
                    Ok(pb::RunAnalyticsResponse {
                        arrow_ipc: part.ipc,
                        rows: part.rows,
                        last: part.last,
                    })
                },
            );
            Some((item, (parts, permit)))
        });
        Ok(Response::new(Box::pin(messages)))
    }
}
