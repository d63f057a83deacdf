//! Building events and other messages, and converting them for the pure engine.

use credence_proto::v1 as pb;
use credence_scorer as domain;
use prost_types::value::Kind;

/// A protobuf timestamp from RFC 3339 text (panics on bad text: tests write it).
pub fn ts(rfc3339: &str) -> prost_types::Timestamp {
    let t = domain::Timestamp::parse_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("bad timestamp {rfc3339:?} in a test: {e}"));
    ts_nanos(t.nanos())
}

/// A protobuf timestamp from nanoseconds since the Unix epoch.
pub fn ts_nanos(nanos: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: nanos.div_euclid(1_000_000_000),
        nanos: nanos.rem_euclid(1_000_000_000) as i32,
    }
}

/// Nanoseconds since the Unix epoch of a protobuf timestamp.
pub fn nanos_of(t: &prost_types::Timestamp) -> i64 {
    t.seconds * 1_000_000_000 + i64::from(t.nanos)
}

/// A protobuf duration of whole seconds.
pub fn secs(s: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: s,
        nanos: 0,
    }
}

/// A `google.protobuf.Value` from JSON.
pub fn to_value(json: &serde_json::Value) -> prost_types::Value {
    credence_proto::json::to_value(json)
}

/// A `google.protobuf.Struct` from a JSON object (anything else gives an empty struct).
pub fn to_struct(json: &serde_json::Value) -> prost_types::Struct {
    credence_proto::json::to_struct(json).unwrap_or_default()
}

/// An event with the given ids, type, subtype, time (RFC 3339) and payload (a JSON object).
pub fn event(
    id: &str,
    subject: &str,
    event_type: &str,
    subtype: &str,
    at: &str,
    payload: &serde_json::Value,
) -> pb::Event {
    pb::Event {
        event_id: id.into(),
        subject_id: subject.into(),
        event_type: event_type.into(),
        event_subtype: subtype.into(),
        occurred_at: Some(ts(at)),
        payload: Some(to_struct(payload)),
        ..pb::Event::default()
    }
}

fn domain_value(v: &prost_types::Value) -> domain::Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => domain::Value::Null,
        Some(Kind::BoolValue(b)) => domain::Value::Bool(*b),
        Some(Kind::NumberValue(n)) => domain::Value::Number(*n),
        Some(Kind::StringValue(s)) => domain::Value::String(s.clone()),
        Some(Kind::ListValue(l)) => {
            domain::Value::List(l.values.iter().map(domain_value).collect())
        }
        Some(Kind::StructValue(s)) => domain::Value::Map(
            s.fields
                .iter()
                .map(|(k, v)| (k.clone(), domain_value(v)))
                .collect(),
        ),
    }
}

/// The event as the pure engine sees it.
pub fn domain_event(e: &pb::Event) -> domain::Event {
    let at = e.occurred_at.as_ref().map_or(0, nanos_of);
    let mut out = domain::Event::new(
        e.event_id.clone(),
        e.subject_id.clone(),
        e.event_type.clone(),
        e.event_subtype.clone(),
        domain::Timestamp::from_nanos(at),
    );
    out.source_system.clone_from(&e.source_system);
    out.location = e.location.as_ref().map(|l| domain::Location {
        region: l.region.clone(),
        district: l.district.clone(),
    });
    if let Some(p) = &e.payload {
        out.payload = p
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), domain_value(v)))
            .collect();
    }
    out
}

/// The outcome of one event result.
pub fn outcome(r: &pb::EventResult) -> pb::EventOutcome {
    pb::EventOutcome::try_from(r.outcome).unwrap_or(pb::EventOutcome::Unspecified)
}

/// A profile with a region.
pub fn profile(subject: &str, region: &str) -> pb::Profile {
    pb::Profile {
        subject_id: subject.into(),
        display_name: format!("Synthetic {subject}"),
        region: region.into(),
        district: format!("{}-01", &region[..1.min(region.len())]),
        ..pb::Profile::default()
    }
}
