//! The codec of every generated client and server: prost, with errors a client can act on.
//!
//! tonic's prost codec answers a message that does not decode with INTERNAL, which says
//! "a bug of the server". Bytes that are not the message the method takes (garbage, a
//! string that is not UTF-8, a nesting past prost's recursion limit of 100 messages) are the
//! sender's problem: INVALID_ARGUMENT, naming what did not decode.
//!
//! The event batches (`PublishEventsRequest`, `StreamEventsRequest`) are decoded event by
//! event when the whole does not decode, so one event the decoder cannot take (a payload
//! nested past the recursion limit) is rejected on its own and the others of its batch are
//! judged on theirs: such an event keeps its other fields and gets a marker payload
//! ([`undecodable_payload`] reads it) that ingestion turns into a REJECTED result with the
//! reason. Only bytes that are not a batch at all, or an event whose fields other than the
//! payload do not decode, fail the whole request.

use std::any::Any;
use std::marker::PhantomData;

use bytes::Buf as _;
use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec as TonicCodec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::v1;

/// The payload key that marks an event whose payload did not decode; its value is the
/// reason. It starts with a NUL character, which no payload a client means to send holds.
pub const UNDECODABLE_PAYLOAD_KEY: &str = "\u{0}credence.undecodable_payload";

/// The reason an event's payload did not decode, when the codec marked it so.
pub fn undecodable_payload(payload: &prost_types::Struct) -> Option<&str> {
    match payload.fields.get(UNDECODABLE_PAYLOAD_KEY)?.kind.as_ref()? {
        prost_types::value::Kind::StringValue(reason) => Some(reason),
        _ => None,
    }
}

/// A prost codec whose decode errors are INVALID_ARGUMENT (see the module docs).
#[derive(Debug)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> TonicCodec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProtoEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProtoEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtoDecoder(PhantomData)
    }
}

/// Encodes `T` with prost.
#[derive(Debug)]
pub struct ProtoEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for ProtoEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // The buffer grows as needed, so this cannot run out of room; still not a panic.
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding a message: {e}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Decodes `U` with prost; see the module docs.
#[derive(Debug)]
pub struct ProtoDecoder<U>(PhantomData<U>);

impl<U: Message + Default + 'static> Decoder for ProtoDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        decode_message(&buf.copy_to_bytes(buf.remaining())).map(Some)
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// `U` from its encoding, as the server decodes a request of type `U`; see the module docs.
pub fn decode_message<U: Message + Default + 'static>(bytes: &[u8]) -> Result<U, Status> {
    U::decode(bytes)
        .or_else(|error| decode_batch_leniently::<U>(bytes).ok_or_else(|| invalid(&error)))
}

/// INVALID_ARGUMENT for a message that did not decode. prost's error names the message
/// and field path and the kind of failure, never the bytes.
fn invalid(error: &prost::DecodeError) -> Status {
    Status::invalid_argument(format!(
        "the request is not valid protobuf for this method: {error}"
    ))
}

/// `U` decoded event by event, if it is an event batch whose only undecodable parts are
/// event payloads; `None` otherwise.
fn decode_batch_leniently<U: 'static>(bytes: &[u8]) -> Option<U> {
    let is = |t: std::any::TypeId| std::any::TypeId::of::<U>() == t;
    let events = if is(std::any::TypeId::of::<v1::PublishEventsRequest>())
        || is(std::any::TypeId::of::<v1::StreamEventsRequest>())
    {
        lenient_events(bytes)?
    } else {
        return None;
    };
    let boxed: Box<dyn Any> = if is(std::any::TypeId::of::<v1::PublishEventsRequest>()) {
        Box::new(v1::PublishEventsRequest { events })
    } else {
        Box::new(v1::StreamEventsRequest { events })
    };
    boxed.downcast::<U>().ok().map(|b| *b)
}

/// An event batch seen as its encoded events (field 1 of both batch messages).
#[derive(Clone, PartialEq, Message)]
struct EncodedEvents {
    #[prost(bytes = "vec", repeated, tag = "1")]
    events: Vec<Vec<u8>>,
}

/// `Event` without its payload (field 8), which prost skips by its length, unread.
#[derive(Clone, PartialEq, Message)]
struct EventWithoutPayload {
    #[prost(string, tag = "1")]
    event_id: String,
    #[prost(string, tag = "2")]
    subject_id: String,
    #[prost(string, tag = "3")]
    event_type: String,
    #[prost(string, tag = "4")]
    event_subtype: String,
    #[prost(string, tag = "5")]
    source_system: String,
    #[prost(message, optional, tag = "6")]
    occurred_at: Option<prost_types::Timestamp>,
    #[prost(message, optional, tag = "7")]
    location: Option<v1::Location>,
    #[prost(string, tag = "9")]
    evidence_uri: String,
    #[prost(message, optional, tag = "10")]
    received_at: Option<prost_types::Timestamp>,
}

/// Every event of a batch, those whose payload does not decode marked (see the module).
fn lenient_events(bytes: &[u8]) -> Option<Vec<v1::Event>> {
    let encoded = EncodedEvents::decode(bytes).ok()?;
    encoded
        .events
        .iter()
        .map(|event| match v1::Event::decode(event.as_slice()) {
            Ok(event) => Some(event),
            Err(error) => {
                let e = EventWithoutPayload::decode(event.as_slice()).ok()?;
                let reason = format!("does not decode: {error}");
                Some(v1::Event {
                    event_id: e.event_id,
                    subject_id: e.subject_id,
                    event_type: e.event_type,
                    event_subtype: e.event_subtype,
                    source_system: e.source_system,
                    occurred_at: e.occurred_at,
                    location: e.location,
                    payload: Some(prost_types::Struct {
                        fields: [(
                            UNDECODABLE_PAYLOAD_KEY.to_owned(),
                            prost_types::Value {
                                kind: Some(prost_types::value::Kind::StringValue(reason)),
                            },
                        )]
                        .into(),
                    }),
                    evidence_uri: e.evidence_uri,
                    received_at: e.received_at,
                })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

    use super::*;

    /// A payload `depth` structs deep.
    fn deep(depth: usize) -> prost_types::Struct {
        let mut s = prost_types::Struct::default();
        for _ in 0..depth {
            s = prost_types::Struct {
                fields: [(
                    "a".to_owned(),
                    prost_types::Value {
                        kind: Some(prost_types::value::Kind::StructValue(s)),
                    },
                )]
                .into(),
            };
        }
        s
    }

    fn decode<U: Message + Default + 'static>(bytes: &[u8]) -> Result<U, Status> {
        decode_message(bytes)
    }

    #[test]
    fn an_event_past_the_recursion_limit_is_marked_and_the_others_decode() {
        let event = |id: &str, payload| v1::Event {
            event_id: id.into(),
            subject_id: "s".into(),
            payload: Some(payload),
            ..v1::Event::default()
        };
        let request = v1::PublishEventsRequest {
            events: vec![
                event("good-1", deep(2)),
                event("deep", deep(200)),
                event("good-2", deep(1)),
            ],
        };
        let bytes = request.encode_to_vec();
        assert!(
            v1::PublishEventsRequest::decode(bytes.as_slice()).is_err(),
            "prost refuses the whole batch"
        );
        let decoded: v1::PublishEventsRequest = decode(&bytes).unwrap();
        assert_eq!(decoded.events.len(), 3);
        assert_eq!(decoded.events[0], request.events[0]);
        assert_eq!(decoded.events[2], request.events[2]);
        assert_eq!(decoded.events[1].event_id, "deep");
        let reason = undecodable_payload(decoded.events[1].payload.as_ref().unwrap()).unwrap();
        assert!(reason.contains("recursion limit"), "{reason}");
        assert!(undecodable_payload(decoded.events[0].payload.as_ref().unwrap()).is_none());
        let streamed: v1::StreamEventsRequest = decode(&bytes).unwrap();
        assert_eq!(streamed.events.len(), 3);
    }

    #[test]
    fn bytes_that_do_not_decode_are_invalid_argument() {
        for bytes in [
            &b"\xff\xff\xff\xff\xff\xff"[..],
            // field 1 (event_id) of an event: not UTF-8
            &[0x0a, 0x04, 0x0a, 0x02, 0xc3, 0x28][..],
        ] {
            let err = decode::<v1::PublishEventsRequest>(bytes).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
            let err = decode::<v1::GetRuleRequest>(bytes).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        }
    }
}
