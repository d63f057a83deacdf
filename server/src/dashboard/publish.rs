//! `PublishEvents` over JSON, judged event by event as over gRPC: an event that is not an
//! `Event` in JSON (a bad timestamp, an unknown field) is rejected alone, naming its field,
//! and the others are published.

use crate::error::Error;
use serde_json::{Value, json};
use tonic::Status;

use super::gateway::{self, Gateway, Method};

/// Publishes the events of `json` (a `PublishEventsRequest`); the answer as JSON.
pub(super) async fn publish(
    gateway: &Gateway,
    method: &Method,
    json: &[u8],
    authorization: Option<&http::HeaderValue>,
) -> Result<Value, Status> {
    // The whole request reads: the common case, one call as it stands.
    if gateway::message_from_json(&method.input(), json).is_ok() {
        return gateway.call_json(method, json, authorization).await;
    }
    let Some(events) = lone_events(json) else {
        // Not a batch of events at all: the general error, naming the field.
        return gateway.call_json(method, json, authorization).await;
    };
    let event = method
        .input()
        .get_field_by_name("events")
        .and_then(|f| f.kind().as_message().cloned())
        .ok_or_else(|| Error::internal::<Status>("PublishEventsRequest has no events field"))?;
    let mut readable = Vec::new();
    let mut refused = Vec::new();
    for (index, value) in events.iter().enumerate() {
        match gateway::message_from_json(&event, value.to_string().as_bytes()) {
            Ok(_) => readable.push((index, value)),
            Err(e) => {
                let reason =
                    gateway::field_at_fault(&event, value).unwrap_or_else(|| e.to_string());
                refused.push((index, event_id(value), reason));
            }
        }
    }
    let mut answer = if readable.is_empty() {
        json!({"accepted": 0, "duplicates": 0, "rejected": 0, "results": []})
    } else {
        let batch = json!({"events": readable.iter().map(|(_, v)| v).collect::<Vec<_>>()});
        gateway
            .call_json(method, batch.to_string().as_bytes(), authorization)
            .await?
    };
    merge(&mut answer, &readable, refused);
    Ok(answer)
}

/// The `events` array of a request that holds nothing else.
fn lone_events(json: &[u8]) -> Option<Vec<Value>> {
    let Value::Object(mut request) = serde_json::from_slice(json).ok()? else {
        return None;
    };
    let events = request.remove("events")?;
    match events {
        Value::Array(events) if request.is_empty() => Some(events),
        _ => None,
    }
}

fn event_id(value: &Value) -> String {
    value
        .get("event_id")
        .or_else(|| value.get("eventId"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Puts the node's results back at their events' positions in the request, with the
/// refused events' results between them, in request order.
fn merge(answer: &mut Value, readable: &[(usize, &Value)], refused: Vec<(usize, String, String)>) {
    let mut results: Vec<(usize, Value)> = answer
        .get_mut("results")
        .and_then(Value::as_array_mut)
        .map(std::mem::take)
        .unwrap_or_default()
        .into_iter()
        .map(|mut result| {
            let sent = result
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or_default();
            let original = usize::try_from(sent)
                .ok()
                .and_then(|i| readable.get(i))
                .map_or(0, |(index, _)| *index);
            result["index"] = json!(original);
            (original, result)
        })
        .collect();
    let count = refused.len();
    results.extend(refused.into_iter().map(|(index, event_id, reason)| {
        (
            index,
            json!({
                "index": index,
                "event_id": event_id,
                "outcome": "EVENT_OUTCOME_REJECTED",
                "reason": reason,
            }),
        )
    }));
    results.sort_by_key(|(index, _)| *index);
    answer["results"] = Value::Array(results.into_iter().map(|(_, r)| r).collect());
    let rejected = answer
        .get("rejected")
        .and_then(Value::as_u64)
        .unwrap_or_default();
    answer["rejected"] = json!(rejected + count as u64);
}
