//! The JSON gateway: a request in the protobuf JSON mapping becomes the binary gRPC request,
//! which goes through the node's own gRPC stack in process (the same auth layer, handlers,
//! validation and limits as a call over the network), and the answer comes back as JSON.
//!
//! Why in process rather than a second implementation of the queries: every rule a gRPC
//! client meets (roles, message size, analytics limits, error messages) holds for the
//! dashboard by construction, and a new RPC is on the dashboard's API the day it is served.

use std::convert::Infallible;

use crate::error::Error;
use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use http_body_util::BodyExt as _;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor, MethodDescriptor,
    SerializeOptions,
};
use tonic::body::Body;
use tonic::{Code, Status};
use tower::{Service, ServiceExt as _};

/// The only package the gateway forwards to: health and reflection are for gRPC clients.
const PACKAGE: &str = "credence.v1";

/// A gRPC message frame header: a compression flag byte and a big-endian length.
const FRAME_HEADER: usize = 5;

/// The node's gRPC stack as one in-process service.
pub type GrpcService =
    tower::util::BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

/// Forwards JSON calls to the gRPC services.
#[derive(Clone)]
pub struct Gateway {
    grpc: GrpcService,
    pool: DescriptorPool,
    /// Largest gRPC message the services take, so an answer larger than the services could
    /// ever send is treated as the bug it would be.
    max_message: usize,
}

/// An RPC the gateway can call, resolved from its names.
#[derive(Clone, Debug)]
pub struct Method {
    descriptor: MethodDescriptor,
}

impl Method {
    /// `/credence.v1.QueryService/GetProfile`.
    fn path(&self) -> String {
        format!(
            "/{}/{}",
            self.descriptor.parent_service().full_name(),
            self.descriptor.name()
        )
    }

    /// The method's name (`GetProfile`).
    pub fn name(&self) -> &str {
        self.descriptor.name()
    }

    /// The request message's descriptor.
    pub fn input(&self) -> MessageDescriptor {
        self.descriptor.input()
    }

    /// The response message's descriptor.
    pub fn output(&self) -> MessageDescriptor {
        self.descriptor.output()
    }
}

/// How a streamed answer is read: message by message, then the call's final status.
pub struct Answer {
    body: Body,
    buffer: BytesMut,
    /// A status the headers already gave (a trailers-only answer).
    done: Option<Status>,
    max_message: usize,
}

impl Answer {
    /// The next message, `Ok(None)` at a clean end, or the call's error status.
    pub async fn next(&mut self) -> Result<Option<Bytes>, Status> {
        loop {
            if let Some(message) = self.take_frame()? {
                return Ok(Some(message));
            }
            if let Some(status) = self.done.take() {
                return finish(status);
            }
            match self.body.frame().await {
                None => {
                    if !self.buffer.is_empty() {
                        return Err(Error::internal::<Status>(
                            "the answer ended inside a message",
                        ));
                    }
                    // A gRPC answer always ends with a status; without one it was cut.
                    return Err(Error::unavailable::<Status>(
                        "the call ended without a status",
                    ));
                }
                Some(Err(e)) => {
                    return Err(Error::unavailable::<Status>(format!(
                        "reading the answer: {e}"
                    )));
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => self.buffer.put(data),
                    Err(frame) => {
                        if let Some(trailers) = frame.trailers_ref() {
                            self.done = Some(status_of(trailers));
                        }
                    }
                },
            }
        }
    }

    fn take_frame(&mut self) -> Result<Option<Bytes>, Status> {
        if self.buffer.len() < FRAME_HEADER {
            return Ok(None);
        }
        let compressed = self.buffer[0];
        let len = u32::from_be_bytes([
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
            self.buffer[4],
        ]) as usize;
        if compressed != 0 {
            // The gateway never offers an encoding, so the services never compress.
            return Err(Error::internal::<Status>(
                "a compressed message the gateway did not ask for",
            ));
        }
        if len > self.max_message.max(64 << 20) {
            return Err(Error::internal::<Status>(format!(
                "an answer message of {len} bytes"
            )));
        }
        if self.buffer.len() < FRAME_HEADER + len {
            return Ok(None);
        }
        self.buffer.advance(FRAME_HEADER);
        Ok(Some(self.buffer.split_to(len).freeze()))
    }
}

/// `Ok(None)` for OK, the status otherwise.
fn finish(status: Status) -> Result<Option<Bytes>, Status> {
    if status.code() == Code::Ok {
        Ok(None)
    } else {
        Err(status)
    }
}

/// The status `grpc-status`/`grpc-message` of a header map give; a map without them is a
/// broken answer.
fn status_of(map: &http::HeaderMap) -> Status {
    Status::from_header_map(map)
        .unwrap_or_else(|| Error::unavailable::<Status>("the answer carried no gRPC status"))
}

impl Gateway {
    /// A gateway in front of `grpc`, which takes messages up to `max_message` bytes.
    pub fn new(grpc: GrpcService, max_message: usize) -> anyhow::Result<Self> {
        let pool = DescriptorPool::decode(credence_proto::FILE_DESCRIPTOR_SET)?;
        Ok(Self {
            grpc,
            pool,
            max_message,
        })
    }

    /// The RPC `service`/`method` names, if the gateway forwards to it.
    pub fn method(&self, service: &str, method: &str) -> Result<Method, Status> {
        let in_package = service
            .strip_prefix(PACKAGE)
            .is_some_and(|rest| rest.starts_with('.'));
        let descriptor = in_package
            .then(|| self.pool.get_service_by_name(service))
            .flatten()
            .ok_or_else(|| {
                Error::not_found::<Status>(format!(
                    "no service {}: the API serves {PACKAGE}.IngestionService, \
                     {PACKAGE}.ScoringService, {PACKAGE}.QueryService and {PACKAGE}.GraphService",
                    crate::error::quote(service)
                ))
            })?
            .methods()
            .find(|m| m.name() == method)
            .ok_or_else(|| {
                Error::not_found::<Status>(format!(
                    "{service} has no method {}",
                    crate::error::quote(method)
                ))
            })?;
        Ok(Method { descriptor })
    }

    /// Calls a unary RPC with a JSON request; the answer as JSON.
    pub async fn call_json(
        &self,
        method: &Method,
        json: &[u8],
        authorization: Option<&http::HeaderValue>,
    ) -> Result<serde_json::Value, Status> {
        if method.descriptor.is_client_streaming() || method.descriptor.is_server_streaming() {
            return Err(Error::invalid::<Status>(format!(
                "{} streams, which JSON over one HTTP request cannot: publish with \
                 PublishEvents, follow alerts at /api/v1/alerts and run SQL at \
                 /api/v1/analytics",
                method.descriptor.name()
            )));
        }
        let request = request_from_json(&method.input(), json)?;
        let mut answer = self.call(method, &request, authorization).await?;
        let message = answer
            .next()
            .await?
            .ok_or_else(|| Error::internal::<Status>("a unary call answered no message"))?;
        // Drain to the status: a unary call may still fail after its message.
        while answer.next().await?.is_some() {}
        to_json(&method.output(), &message)
    }

    /// Starts a call with an encoded request; the answer is read message by message. A call
    /// refused before its first message (no token, wrong role, bad request) is the error.
    pub async fn call(
        &self,
        method: &Method,
        request: &[u8],
        authorization: Option<&http::HeaderValue>,
    ) -> Result<Answer, Status> {
        let len = u32::try_from(request.len())
            .map_err(|_| Error::exhausted::<Status>("the request is larger than 4 GiB"))?;
        let mut frame = BytesMut::with_capacity(FRAME_HEADER + request.len());
        frame.put_u8(0);
        frame.put_u32(len);
        frame.put_slice(request);
        let mut builder = http::Request::builder()
            .method(http::Method::POST)
            .uri(method.path())
            .version(http::Version::HTTP_2)
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers");
        if let Some(value) = authorization {
            builder = builder.header(http::header::AUTHORIZATION, value);
        }
        let request = builder
            .body(Body::new(http_body_util::Full::new(frame.freeze())))
            .map_err(|e| Error::internal::<Status>(format!("building the gRPC request: {e}")))?;
        let Ok(response) = self.grpc.clone().oneshot(request).await;
        // A trailers-only answer: the call ended before any message (a refusal, mostly).
        let done = response
            .headers()
            .contains_key("grpc-status")
            .then(|| status_of(response.headers()));
        if let Some(status) = done.as_ref().filter(|s| s.code() != Code::Ok) {
            return Err(status.clone());
        }
        Ok(Answer {
            body: response.into_body(),
            buffer: BytesMut::new(),
            done,
            max_message: self.max_message,
        })
    }
}

/// Encodes the JSON `json` as a `descriptor` message; an empty body is the empty message.
/// An error names the field at fault when one field alone is.
pub(super) fn request_from_json(
    descriptor: &MessageDescriptor,
    json: &[u8],
) -> Result<Vec<u8>, Status> {
    let json = if json.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        json
    };
    match message_from_json(descriptor, json) {
        Ok(message) => Ok(message.encode_to_vec()),
        Err(e) => {
            let located = serde_json::from_slice::<serde_json::Value>(json)
                .ok()
                .and_then(|v| field_at_fault(descriptor, &v));
            Err(Error::invalid::<Status>(format!(
                "the body is not a {} in JSON: {}",
                descriptor.name(),
                located.unwrap_or_else(|| e.to_string())
            )))
        }
    }
}

/// One message from JSON text, with nothing after it.
pub(super) fn message_from_json(
    descriptor: &MessageDescriptor,
    json: &[u8],
) -> Result<DynamicMessage, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let message = DynamicMessage::deserialize_with_options(
        descriptor.clone(),
        &mut deserializer,
        &DeserializeOptions::new(),
    )?;
    deserializer.end()?;
    Ok(message)
}

/// `"field: what is wrong"` for the first field of the object `value` that is not a valid
/// `descriptor` field on its own; `None` when there is no such single field.
pub(super) fn field_at_fault(
    descriptor: &MessageDescriptor,
    value: &serde_json::Value,
) -> Option<String> {
    let object = value.as_object()?;
    object.iter().find_map(|(key, field)| {
        let alone = serde_json::json!({ key: field }).to_string();
        message_from_json(descriptor, alone.as_bytes())
            .err()
            .map(|e| format!("{key}: {}", without_position(&e)))
    })
}

/// A serde error's text without " at line L column C", which would point into a document
/// the client never wrote.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// The `descriptor` message in `bytes` as JSON: proto field names, every field (defaults
/// too, so a page need not know proto3's defaults), 64-bit integers as numbers.
pub(super) fn to_json(
    descriptor: &MessageDescriptor,
    bytes: &[u8],
) -> Result<serde_json::Value, Status> {
    let message = DynamicMessage::decode(descriptor.clone(), bytes)
        .map_err(|e| Error::internal::<Status>(format!("decoding the answer: {e}")))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false)
        .stringify_64_bit_integers(false);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| Error::internal::<Status>(format!("the answer as JSON: {e}")))
}

/// Decodes a known prost message of an answer.
pub(super) fn decode<M: prost::Message + Default>(bytes: Bytes) -> Result<M, Status> {
    M::decode(bytes).map_err(|e| Error::internal::<Status>(format!("decoding the answer: {e}")))
}

/// Makes the node's gRPC stack a [`GrpcService`].
pub fn boxed<S>(service: S) -> GrpcService
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    tower::util::BoxCloneSyncService::new(service)
}
