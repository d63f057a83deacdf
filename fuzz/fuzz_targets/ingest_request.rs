//! The ingestion RPCs' requests as the server takes them: the bytes decoded by the server's
//! codec as `PublishEventsRequest`, `StreamEventsRequest` or `UpsertProfilesRequest` (the
//! first byte picks which), then every event or profile through the same checks ingestion
//! makes. Nothing may panic; and:
//! - a decoded request re-encodes to bytes that decode to the same request (round trip);
//! - an event ingestion accepts converts to an engine event (the pipeline must never park an
//!   event the API accepted).
#![no_main]

use std::time::Duration;

use credence_proto::codec::decode_message;
use credence_proto::v1 as pb;
use credence_scorer::Timestamp;
use credence_server::config::IngestSection;
use credence_server::{convert, fuzzing};
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// Re-encoding a decoded request loses nothing. Equal bytes, or else equal messages: prost
/// keeps a protobuf map (a profile's `consent`, `attributes`) in a HashMap, whose encoding
/// order varies; messages are not compared first because a NaN in a payload is not equal
/// to itself, while its bytes are.
fn round_trip<M: Message + Default + PartialEq + std::fmt::Debug + 'static>(m: &M) {
    let bytes = m.encode_to_vec();
    let again: M = match decode_message(&bytes) {
        Ok(again) => again,
        Err(e) => panic!("a decoded request does not decode once re-encoded: {e}"),
    };
    if again.encode_to_vec() != bytes {
        assert_eq!(&again, m, "re-encoding changed the request");
    }
}

fn events(events: &[pb::Event]) {
    let limits = IngestSection {
        max_future: Duration::from_secs(3600),
        ..IngestSection::default()
    };
    let Ok(min_time) = Timestamp::parse_rfc3339(&limits.min_time) else {
        panic!("the default ingest.min_time does not parse");
    };
    // A fixed clock: the same input must behave the same on every run.
    let latest = Timestamp::from_unix_seconds(1_800_000_000);
    for e in events {
        if fuzzing::check_event(e, &limits, min_time, latest).is_ok() {
            if let Err(err) = convert::event(e) {
                panic!("ingestion accepted an event the engine refuses: {err}");
            }
        }
        let _ = convert::received_event(e.clone());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(r) = decode_message::<pb::PublishEventsRequest>(bytes) {
                round_trip(&r);
                events(&r.events);
            }
        }
        1 => {
            if let Ok(r) = decode_message::<pb::StreamEventsRequest>(bytes) {
                round_trip(&r);
                events(&r.events);
            }
        }
        _ => {
            if let Ok(r) = decode_message::<pb::UpsertProfilesRequest>(bytes) {
                round_trip(&r);
                for p in r.profiles {
                    if fuzzing::profile_problem(&p).is_none() {
                        let _ = convert::profile_context(&p);
                        let _ = convert::profile(p, Some(Timestamp::from_unix_seconds(0)));
                    }
                }
            }
        }
    }
});
