//! gRPC calls with bytes the test writes itself, sent over a real HTTP/2 connection: what a
//! client with a broken or hostile encoder sends.

use std::marker::PhantomData;

use bytes::{Buf as _, BufMut as _};
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

/// Sends `body` as the request message of `method` (e.g.
/// `/credence.v1.IngestionService/PublishEvents`) and decodes the answer as `R`.
pub async fn unary<R>(
    channel: Channel,
    method: &'static str,
    body: Vec<u8>,
) -> Result<R, tonic::Status>
where
    R: prost::Message + Default + Send + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(format!("not ready: {e}")))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
    grpc.unary(tonic::Request::new(body), path, RawCodec::<R>(PhantomData))
        .await
        .map(tonic::Response::into_inner)
}

/// Bytes out as they are, prost messages in.
struct RawCodec<R>(PhantomData<R>);

impl<R: prost::Message + Default + Send + 'static> Codec for RawCodec<R> {
    type Encode = Vec<u8>;
    type Decode = R;
    type Encoder = RawEncoder;
    type Decoder = MessageDecoder<R>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> MessageDecoder<R> {
        MessageDecoder(PhantomData)
    }
}

struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        buf.put_slice(&item);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

struct MessageDecoder<R>(PhantomData<R>);

impl<R: prost::Message + Default> Decoder for MessageDecoder<R> {
    type Item = R;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<R>, tonic::Status> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        R::decode(bytes)
            .map(Some)
            .map_err(|e| tonic::Status::data_loss(format!("the answer does not decode: {e}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}
