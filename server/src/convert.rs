//! The one place where `credence.v1` messages become the node's types and back.
//!
//! Generated types stay at the edge: handlers call these functions, the engine never sees a
//! generated type. The pure contract <-> engine conversions are `credence_simulation::convert`
//! (a simulation needs them without a store) and are re-exported here; this file adds those
//! that involve store types. Every refusal names the field at fault (`rule.conditions[0].op:
//! ...`), so a handler can answer INVALID_ARGUMENT with it as is.

use credence_proto::v1 as pb;
use credence_scorer as domain;
use credence_storage as store;

pub use credence_simulation::convert::{
    ConvertError, alert_to_pb, config, config_to_pb, duration, duration_to_pb, event, list_kind,
    list_kind_to_pb, payload, payload_to_pb, profile_context, required_event_fields, rule,
    rule_status, rule_to_pb, score_change_to_pb, snapshot_to_pb, state, state_to_pb, timestamp,
    timestamp_to_pb, value, value_to_pb,
};

type Result<T> = std::result::Result<T, ConvertError>;

// ---- events -------------------------------------------------------------------------------

/// What a received event holds beyond the engine's event, kept to rebuild it
/// ([`from_engine_event`]).
#[derive(Debug)]
pub struct Unscored {
    lat_lon: Option<(f64, f64)>,
    had_payload: bool,
    evidence_uri: String,
    received_at: Option<domain::Timestamp>,
}

/// A received event as the engine sees it (ids, type and time are required), by moving the
/// fields instead of copying them: the pipeline scores every event and then archives it,
/// and the copies of its strings and payload were a measurable part of its time. A refused
/// event comes back whole with the reason.
pub fn into_engine_event(
    e: store::ReceivedEvent,
) -> std::result::Result<(domain::Event, Unscored), Box<(store::ReceivedEvent, ConvertError)>> {
    if let Err(refused) = required_event_fields(
        &e.event_id,
        &e.subject_id,
        &e.event_type,
        e.occurred_at.is_some(),
    ) {
        return Err(Box::new((e, refused)));
    }
    let (location, lat_lon) = match e.location {
        Some(l) => (
            Some(domain::Location {
                region: l.region,
                district: l.district,
            }),
            Some((l.lat, l.lon)),
        ),
        None => (None, None),
    };
    let rest = Unscored {
        lat_lon,
        had_payload: e.payload.is_some(),
        evidence_uri: e.evidence_uri,
        received_at: e.received_at,
    };
    let event = domain::Event {
        event_id: e.event_id,
        subject_id: e.subject_id,
        event_type: e.event_type,
        event_subtype: e.event_subtype,
        source_system: e.source_system,
        occurred_at: e.occurred_at.unwrap_or_default(),
        location,
        payload: e.payload.unwrap_or_default(),
    };
    Ok((event, rest))
}

/// The received event [`into_engine_event`] took apart, exactly as it was.
pub fn from_engine_event(e: domain::Event, rest: Unscored) -> store::ReceivedEvent {
    store::ReceivedEvent {
        event_id: e.event_id,
        subject_id: e.subject_id,
        event_type: e.event_type,
        event_subtype: e.event_subtype,
        source_system: e.source_system,
        occurred_at: Some(e.occurred_at),
        location: e
            .location
            .zip(rest.lat_lon)
            .map(|(l, (lat, lon))| store::EventLocation {
                region: l.region,
                district: l.district,
                lat,
                lon,
            }),
        payload: rest.had_payload.then_some(e.payload),
        evidence_uri: rest.evidence_uri,
        received_at: rest.received_at,
    }
}

/// An event as the archive keeps it: every field as sent, nothing required. Refused only
/// when one of its times cannot be held (see [`timestamp`]). By value, as [`value`].
pub fn received_event(e: pb::Event) -> Result<store::ReceivedEvent> {
    let time = |field: &str, t: Option<&prost_types::Timestamp>| {
        t.map(|t| timestamp(field, t)).transpose()
    };
    Ok(store::ReceivedEvent {
        occurred_at: time("occurred_at", e.occurred_at.as_ref())?,
        received_at: time("received_at", e.received_at.as_ref())?,
        event_id: e.event_id,
        subject_id: e.subject_id,
        event_type: e.event_type,
        event_subtype: e.event_subtype,
        source_system: e.source_system,
        location: e.location.map(|l| store::EventLocation {
            region: l.region,
            district: l.district,
            lat: l.lat,
            lon: l.lon,
        }),
        payload: e.payload.map(payload),
        evidence_uri: e.evidence_uri,
    })
}

/// An archived event as the contract's event.
pub fn received_event_to_pb(e: store::ReceivedEvent) -> pb::Event {
    pb::Event {
        event_id: e.event_id,
        subject_id: e.subject_id,
        event_type: e.event_type,
        event_subtype: e.event_subtype,
        source_system: e.source_system,
        occurred_at: e.occurred_at.map(timestamp_to_pb),
        location: e.location.map(|l| pb::Location {
            region: l.region,
            district: l.district,
            lat: l.lat,
            lon: l.lon,
        }),
        payload: e.payload.as_ref().map(payload_to_pb),
        evidence_uri: e.evidence_uri,
        received_at: e.received_at.map(timestamp_to_pb),
    }
}

// ---- subjects -----------------------------------------------------------------------------

/// A profile as stored, with the server's `updated_at` (the client's is ignored).
pub fn profile(p: pb::Profile, updated_at: Option<domain::Timestamp>) -> store::SubjectProfile {
    store::SubjectProfile {
        subject_id: p.subject_id,
        display_name: p.display_name,
        birth_year: p.birth_year,
        region: p.region,
        district: p.district,
        occupation: p.occupation,
        flags: p.flags,
        consent: p.consent.into_iter().collect(),
        attributes: p.attributes.into_iter().collect(),
        updated_at,
    }
}

/// A stored profile as the contract's profile.
pub fn profile_to_pb(p: store::SubjectProfile) -> pb::Profile {
    pb::Profile {
        subject_id: p.subject_id,
        display_name: p.display_name,
        birth_year: p.birth_year,
        region: p.region,
        district: p.district,
        occupation: p.occupation,
        flags: p.flags,
        consent: p.consent.into_iter().collect(),
        attributes: p.attributes.into_iter().collect(),
        updated_at: p.updated_at.map(timestamp_to_pb),
    }
}

/// A list entry to store, written at `created_at` (the client's is ignored).
pub fn list_entry(e: &pb::ListEntry, created_at: domain::Timestamp) -> Result<store::ListEntry> {
    Ok(store::ListEntry {
        subject_id: e.subject_id.clone(),
        kind: list_kind("kind", e.kind)?,
        reason: e.reason.clone(),
        expires_at: e
            .expires_at
            .as_ref()
            .map(|t| timestamp("expires_at", t))
            .transpose()?,
        created_at: Some(created_at),
    })
}

/// A stored list entry as the contract's.
pub fn list_entry_to_pb(e: store::ListEntry) -> pb::ListEntry {
    pb::ListEntry {
        subject_id: e.subject_id,
        kind: list_kind_to_pb(e.kind).into(),
        reason: e.reason,
        expires_at: e.expires_at.map(timestamp_to_pb),
        created_at: e.created_at.map(timestamp_to_pb),
    }
}

// ---- graph --------------------------------------------------------------------------------

/// A relation kind; UNSPECIFIED and unknown numbers are refused naming `field`.
pub fn relation_kind(field: &str, kind: i32) -> Result<store::RelationKind> {
    use pb::RelationKind as P;
    use store::RelationKind as K;
    match P::try_from(kind) {
        Ok(P::Unspecified) => Err(ConvertError::new(
            field,
            "is required (RELATION_KIND_FAMILY, _FRIEND, _COLLEAGUE, _NEIGHBOUR, _CLASSMATE or \
             _BUSINESS_PARTNER)",
        )),
        Ok(P::Family) => Ok(K::Family),
        Ok(P::Friend) => Ok(K::Friend),
        Ok(P::Colleague) => Ok(K::Colleague),
        Ok(P::Neighbour) => Ok(K::Neighbour),
        Ok(P::Classmate) => Ok(K::Classmate),
        Ok(P::BusinessPartner) => Ok(K::BusinessPartner),
        Err(_) => Err(ConvertError::new(
            field,
            format!("{kind} is not a relation kind"),
        )),
    }
}

/// Relation-kind filters (`field[i]` named when one is not a real kind).
pub fn relation_kinds(field: &str, kinds: &[i32]) -> Result<Vec<store::RelationKind>> {
    kinds
        .iter()
        .enumerate()
        .map(|(i, &k)| relation_kind(&format!("{field}[{i}]"), k))
        .collect()
}

/// A relation kind as the contract's.
pub fn relation_kind_to_pb(kind: store::RelationKind) -> pb::RelationKind {
    use pb::RelationKind as P;
    use store::RelationKind as K;
    match kind {
        K::Family => P::Family,
        K::Friend => P::Friend,
        K::Colleague => P::Colleague,
        K::Neighbour => P::Neighbour,
        K::Classmate => P::Classmate,
        K::BusinessPartner => P::BusinessPartner,
    }
}

/// A relation to store (its ids and weight checked by the handler).
pub fn relation(r: &pb::Relation) -> Result<store::Relation> {
    Ok(store::Relation {
        subject_id: r.subject_id.clone(),
        other_subject_id: r.other_subject_id.clone(),
        kind: relation_kind("kind", r.kind)?,
        weight: r.weight,
        since: r
            .since
            .as_ref()
            .map(|t| timestamp("since", t))
            .transpose()?,
    })
}

/// A neighbour as the contract's.
pub fn neighbor_to_pb(n: store::Neighbor) -> pb::Neighbor {
    pb::Neighbor {
        subject_id: n.subject_id,
        depth: n.depth,
        kind: relation_kind_to_pb(n.kind).into(),
        path_weight: n.path_weight,
        path: n.path,
    }
}

/// A path step as the contract's.
pub fn path_step_to_pb(s: store::PathStep) -> pb::PathStep {
    pb::PathStep {
        subject_id: s.subject_id,
        kind: relation_kind_to_pb(s.kind).into(),
        weight: s.weight,
    }
}

/// An association contributor as the contract's.
pub fn contributor_to_pb(c: crate::association::Contributor) -> pb::AssociationContributor {
    pb::AssociationContributor {
        subject_id: c.subject_id,
        depth: c.depth,
        score: c.score,
        deviation: c.deviation,
        weight: c.weight,
        contribution: c.contribution,
    }
}

// ---- aggregates ---------------------------------------------------------------------------

/// An aggregate window; `None` for UNSPECIFIED and unknown numbers.
pub fn aggregate_window(window: i32) -> Option<store::AggregateWindow> {
    match pb::AggregateWindow::try_from(window) {
        Ok(pb::AggregateWindow::Hour) => Some(store::AggregateWindow::Hour),
        Ok(pb::AggregateWindow::Day) => Some(store::AggregateWindow::Day),
        Ok(pb::AggregateWindow::Unspecified) | Err(_) => None,
    }
}

/// An aggregate grouping; `None` for UNSPECIFIED and unknown numbers.
pub fn aggregate_group_by(group_by: i32) -> Option<store::AggregateGroupBy> {
    match pb::AggregateGroupBy::try_from(group_by) {
        Ok(pb::AggregateGroupBy::Subject) => Some(store::AggregateGroupBy::Subject),
        Ok(pb::AggregateGroupBy::Region) => Some(store::AggregateGroupBy::Region),
        Ok(pb::AggregateGroupBy::EventType) => Some(store::AggregateGroupBy::EventType),
        Ok(pb::AggregateGroupBy::Unspecified) | Err(_) => None,
    }
}

/// An aggregate row as the contract's.
pub fn aggregate_row_to_pb(r: store::AggregateRow) -> pb::AggregateRow {
    pb::AggregateRow {
        window_start: Some(timestamp_to_pb(r.window_start)),
        key: r.key,
        events: r.events,
        changes: r.changes,
        delta_sum: r.delta_sum,
        delta_positive: r.delta_positive,
        delta_negative: r.delta_negative,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64, nanos: i32) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds, nanos }
    }

    /// An event with every field set.
    fn full_event() -> pb::Event {
        pb::Event {
            event_id: "e".into(),
            subject_id: "s".into(),
            event_type: "t".into(),
            event_subtype: "st".into(),
            source_system: "bank".into(),
            occurred_at: Some(t(1_767_225_600, 123_456_789)),
            location: Some(pb::Location {
                region: "north".into(),
                district: "n-1".into(),
                lat: 59.123_456_789,
                lon: -0.1,
            }),
            payload: Some(payload_to_pb(
                &domain::Event::new("e", "s", "t", "", domain::Timestamp::from_nanos(0))
                    .with("tiny", 5e-324)
                    .with("x", 0.1 + 0.2)
                    .with("nothing", domain::Value::Null)
                    .payload,
            )),
            evidence_uri: "s3://x".into(),
            received_at: Some(t(-1, 999_999_999)),
        }
    }

    #[test]
    fn an_event_round_trips_through_the_archive_type_exactly() {
        let full = full_event();
        let bare = pb::Event {
            payload: Some(prost_types::Struct::default()),
            location: None,
            occurred_at: None,
            received_at: None,
            ..full.clone()
        };
        for e in [full, bare, pb::Event::default()] {
            let received = received_event(e.clone()).unwrap();
            assert_eq!(received_event_to_pb(received.clone()), e);
            // Taken apart for the engine and put back together, it is the same event.
            let back = match into_engine_event(received.clone()) {
                Ok((event, rest)) => from_engine_event(event, rest),
                Err(refused) => refused.0,
            };
            assert_eq!(back, received);
        }
        let bad = pb::Event {
            received_at: Some(t(0, -1)),
            ..pb::Event::default()
        };
        assert_eq!(received_event(bad).unwrap_err().field, "received_at");
    }

    /// The simulation's conversion of an event (straight to the engine's event) and the
    /// pipeline's (through the archive's form) agree, refusals included.
    #[test]
    fn an_event_converts_the_same_straight_or_through_the_archive_type() {
        // `received_at` is ignored by the one and refused when bad by the other: left out.
        let full = pb::Event {
            received_at: None,
            ..full_event()
        };
        let cases = [
            full.clone(),
            pb::Event {
                payload: None,
                location: None,
                ..full.clone()
            },
            pb::Event {
                event_type: String::new(),
                ..full.clone()
            },
            pb::Event {
                occurred_at: None,
                ..full.clone()
            },
            pb::Event {
                occurred_at: Some(t(0, -1)),
                event_id: String::new(),
                ..full
            },
            pb::Event::default(),
        ];
        for e in cases {
            let through_archive = received_event(e.clone()).and_then(|r| {
                into_engine_event(r)
                    .map(|(event, _)| event)
                    .map_err(|refused| refused.1)
            });
            assert_eq!(event(&e), through_archive, "{e:?}");
        }
    }

    #[test]
    fn kinds_round_trip_and_unspecified_is_refused() {
        for k in 1..=6 {
            let kind = relation_kind("kind", k).unwrap();
            assert_eq!(i32::from(relation_kind_to_pb(kind)), k);
        }
        assert!(
            relation_kind("kind", 0)
                .unwrap_err()
                .to_string()
                .starts_with("kind: is required")
        );
        assert_eq!(
            relation_kinds("kinds", &[1, 9]).unwrap_err().to_string(),
            "kinds[1]: 9 is not a relation kind"
        );
        assert_eq!(aggregate_window(0), None);
        assert_eq!(aggregate_group_by(4), None);
    }
}
