//! `IngestionService`: events and profiles in.

use std::sync::Arc;

use credence_proto::v1 as pb;
use credence_proto::v1::ingestion_service_server::IngestionService;
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tonic::{Request, Response, Status, Streaming};

use super::{Node, audit_items};
use crate::auth::caller_name;
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
        // Messages are read ahead of the appends and consecutive ones merged up to a batch:
        // the client's small DATA frames leave h2's buffer at once (h2 closes a connection
        // whose buffered small frames pass its budget, `too_many_data_frames`), and a
        // thousand one-event messages cost a few appends, not a thousand. What is read
        // ahead is bounded (one merged group waiting, one being read); past it the reader
        // stops and HTTP/2 flow control holds the client.
        let max_events = self.0.config.ingest.max_batch_events;
        let (groups, mut incoming) = mpsc::channel(1);
        tokio::spawn(read_ahead(request.into_inner(), groups, max_events));
        let mut summary = pb::StreamEventsResponse::default();
        let mut index = 0u32;
        while let Some(group) = incoming.recv().await {
            let Group { events, messages } = group?;
            #[allow(clippy::cast_possible_truncation, reason = "batches are far below u32")]
            let count = events.len() as u32;
            // Batches already appended stay accepted even if a later one fails; the error
            // says how far the stream got, so the client resends only the rest.
            let outcome = self.0.ingest.publish(events, index).await.map_err(|e| {
                let first = summary.batches + 1;
                let which = if messages == 1 {
                    format!("batch {first}")
                } else {
                    format!("batches {first} to {}", summary.batches + messages)
                };
                e.context(format!(
                    "{which} of this stream; the {} events of the batches before it were \
                     accepted: resend from event index {index}",
                    summary.accepted + summary.duplicates + summary.rejected
                ))
            })?;
            index = index.saturating_add(count);
            summary.batches += messages;
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
        let actor = caller_name(&request);
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
        let ids: Vec<String> = valid.iter().map(|p| p.subject_id.clone()).collect();
        let created = self
            .0
            .stores
            .profiles
            .upsert_profiles(valid)
            .await
            .map_err(Error::from)?;
        if !ids.is_empty() {
            let new = created.iter().filter(|n| **n).count();
            self.0
                .audit(
                    actor,
                    "UpsertProfiles",
                    audit_items("profiles", ids.iter().map(String::as_str)),
                    format!("{new} created, {} updated", ids.len() - new),
                )
                .await?;
        }
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

/// Consecutive messages of a stream merged into one append.
struct Group {
    events: Vec<pb::Event>,
    /// How many messages it holds.
    messages: u32,
}

/// Reads `stream` as fast as `groups` takes what it read, merging consecutive messages
/// while the merged group holds at most `max_events` events (a larger message goes alone,
/// and ingestion refuses it naming its batch). A read error goes after the groups before it.
async fn read_ahead(
    mut stream: Streaming<pb::StreamEventsRequest>,
    groups: mpsc::Sender<Result<Group, Status>>,
    max_events: usize,
) {
    let mut pending: Option<Group> = None;
    // A message read that did not fit the pending group: it starts the next one.
    let mut held: Option<Result<Vec<pb::Event>, Status>> = None;
    let mut ended = false;
    loop {
        if pending.is_none() {
            match held.take() {
                Some(Ok(events)) => {
                    pending = Some(Group {
                        events,
                        messages: 1,
                    });
                }
                Some(Err(status)) => {
                    let _ = groups.send(Err(status)).await;
                    return;
                }
                None if ended => return,
                None => {}
            }
        }
        let reading = held.is_none() && !ended;
        tokio::select! {
            permit = groups.reserve(), if pending.is_some() => {
                let Ok(permit) = permit else { return };
                if let Some(group) = pending.take() {
                    permit.send(Ok(group));
                }
            }
            message = stream.next(), if reading => match message {
                None => ended = true,
                Some(Ok(message)) => match &mut pending {
                    Some(group) if group.events.len() + message.events.len() <= max_events => {
                        group.events.extend(message.events);
                        group.messages += 1;
                    }
                    Some(_) => held = Some(Ok(message.events)),
                    None => {
                        pending = Some(Group {
                            events: message.events,
                            messages: 1,
                        });
                    }
                },
                Some(Err(status)) => held = Some(Err(status)),
            },
        }
    }
}

/// What is wrong with a profile, naming the field.
pub(crate) fn profile_problem(p: &pb::Profile) -> Option<String> {
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
