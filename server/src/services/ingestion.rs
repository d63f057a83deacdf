//! `IngestionService`: events and profiles in.

use std::sync::Arc;

use credence_proto::v1 as pb;
use credence_proto::v1::ingestion_service_server::IngestionService;
use tokio_stream::StreamExt as _;
use tonic::{Request, Response, Status, Streaming};

use super::Node;
use crate::convert;
use crate::error::Error;

/// Most rejected or duplicate events a `StreamEvents` summary lists.
const MAX_NOT_ACCEPTED: usize = 1_000;

/// The ingestion handlers.
pub struct IngestionApi(pub Arc<Node>);

#[tonic::async_trait]
impl IngestionService for IngestionApi {
    async fn publish_events(
        &self,
        request: Request<pb::PublishEventsRequest>,
    ) -> Result<Response<pb::PublishEventsResponse>, Status> {
        let events = request.into_inner().events;
        let outcome = self.0.ingest.publish(events, 0).await?;
        Ok(Response::new(pb::PublishEventsResponse {
            accepted: outcome.accepted,
            duplicates: outcome.duplicates,
            rejected: outcome.rejected,
            results: outcome.results,
        }))
    }

    async fn stream_events(
        &self,
        request: Request<Streaming<pb::StreamEventsRequest>>,
    ) -> Result<Response<pb::StreamEventsResponse>, Status> {
        let mut stream = request.into_inner();
        let mut summary = pb::StreamEventsResponse::default();
        let mut index = 0u32;
        while let Some(message) = stream.next().await {
            let events = message?.events;
            #[allow(clippy::cast_possible_truncation, reason = "batches are far below u32")]
            let count = events.len() as u32;
            // Batches already appended stay accepted even if a later one fails; the error
            // says how far the stream got, so the client resends only the rest.
            let outcome = self.0.ingest.publish(events, index).await.map_err(|e| {
                e.context(format!(
                    "batch {} of this stream; the {} events of the batches before it were \
                     accepted: resend from event index {index}",
                    summary.batches + 1,
                    summary.accepted + summary.duplicates + summary.rejected
                ))
            })?;
            index = index.saturating_add(count);
            summary.batches += 1;
            summary.accepted += u64::from(outcome.accepted);
            summary.duplicates += u64::from(outcome.duplicates);
            summary.rejected += u64::from(outcome.rejected);
            let room = MAX_NOT_ACCEPTED.saturating_sub(summary.not_accepted.len());
            summary.not_accepted.extend(
                outcome
                    .results
                    .into_iter()
                    .filter(|r| r.outcome != i32::from(pb::EventOutcome::Accepted))
                    .take(room),
            );
        }
        Ok(Response::new(summary))
    }

    async fn upsert_profiles(
        &self,
        request: Request<pb::UpsertProfilesRequest>,
    ) -> Result<Response<pb::UpsertProfilesResponse>, Status> {
        let profiles = request.into_inner().profiles;
        let now = credence_scorer::Timestamp::now();
        let mut response = pb::UpsertProfilesResponse::default();
        let mut valid = Vec::new();
        let mut positions = Vec::new();
        for (i, profile) in profiles.into_iter().enumerate() {
            #[allow(
                clippy::cast_possible_truncation,
                reason = "request sizes are far below u32"
            )]
            let index = i as u32;
            let problem = profile_problem(&profile);
            response.results.push(pb::ProfileResult {
                index,
                subject_id: profile.subject_id.clone(),
                outcome: pb::ProfileOutcome::Rejected.into(),
                reason: problem.clone().unwrap_or_default(),
            });
            if problem.is_none() {
                positions.push(i);
                valid.push(convert::profile(profile, Some(now)));
            } else {
                response.rejected += 1;
            }
        }
        let created = self
            .0
            .stores
            .profiles
            .upsert_profiles(valid)
            .await
            .map_err(Error::from)?;
        for (i, new) in positions.into_iter().zip(created) {
            let (outcome, count) = if new {
                (pb::ProfileOutcome::Created, &mut response.created)
            } else {
                (pb::ProfileOutcome::Updated, &mut response.updated)
            };
            response.results[i].outcome = outcome.into();
            *count += 1;
        }
        Ok(Response::new(response))
    }
}

/// What is wrong with a profile, naming the field.
fn profile_problem(p: &pb::Profile) -> Option<String> {
    if p.subject_id.is_empty() {
        return Some("subject_id: is required".into());
    }
    if p.subject_id.len() > 128 {
        return Some("subject_id: longer than 128 bytes".into());
    }
    if p.birth_year != 0 && !(1900..=2100).contains(&p.birth_year) {
        return Some(format!(
            "birth_year: {} is not in 1900..=2100",
            p.birth_year
        ));
    }
    if let Some(flag) = p.flags.iter().find(|f| f.is_empty()) {
        return Some(format!("flags: an empty flag ({flag:?}) is not allowed"));
    }
    None
}
