//! Limits of the gRPC listener against a real node: a fast client streaming one-event
//! messages gets its summary (not a GOAWAY), silent connections are closed, and
//! connections past `node.max_connections` are refused while the others go on.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::Duration;

use credence_proto::v1 as pb;
use credence_tests::events::event;
use credence_tests::{Node, NodeOptions, wait};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_stream::StreamExt as _;

/// The client preface of HTTP/2 and an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// How long a test waits for the server to close a connection before it fails (the
/// timeouts configured are a few seconds; this only keeps a broken build from hanging).
const PATIENCE: Duration = Duration::from_secs(60);

/// One-event messages the fast client sends.
const MESSAGES: usize = 5_000;

fn node_with(env: &[(&str, &str)]) -> NodeOptions {
    NodeOptions {
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..NodeOptions::default()
    }
}

/// Reads until the server closes the connection; the bytes read.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("the server kept a silent connection open {PATIENCE:?}"));
        match read {
            Ok(0) | Err(_) => return seen,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

/// One-event messages sent as fast as the client can, each its own HTTP/2 DATA frame:
/// with hyper's windows (1 MiB per stream) the server buffered thousands of small frames
/// while it appended, and h2 closed the connection (`too_many_data_frames`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_client_streaming_one_event_messages_gets_its_summary() {
    // Synced appends: the server is much slower per message than the client.
    let node = Node::start_with(node_with(&[("CREDENCE__PIPELINE__SYNC", "true")]))
        .await
        .unwrap();
    let messages = futures_like_each_alone((0..MESSAGES).map(|i| pb::StreamEventsRequest {
        events: vec![event(
            &format!("f{i}"),
            &format!("S{}", i % 50),
            "social",
            "",
            "2026-01-01T00:00:00Z",
            &json!({}),
        )],
    }));
    let summary = node
        .ingestion()
        .stream_events(messages)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (summary.batches, summary.accepted, summary.rejected),
        (MESSAGES as u32, MESSAGES as u64, 0),
        "{:?}",
        summary.not_accepted.first()
    );
}

/// The messages as a stream that is not ready between two of them, so the client encodes
/// and sends each on its own (tonic merges messages that are ready together).
fn futures_like_each_alone(
    messages: impl Iterator<Item = pb::StreamEventsRequest> + Send + 'static,
) -> impl tokio_stream::Stream<Item = pb::StreamEventsRequest> + Send + 'static {
    tokio_stream::iter(messages).then(|m| async move {
        tokio::task::yield_now().await;
        m
    })
}

/// A connection that never speaks, and one that speaks HTTP/2 and then goes silent, are
/// closed; the node goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed() {
    let node = Node::start_with(node_with(&[
        ("CREDENCE__NODE__HANDSHAKE_TIMEOUT", "1s"),
        ("CREDENCE__NODE__IDLE_TIMEOUT", "2s"),
        ("CREDENCE__NODE__KEEPALIVE_INTERVAL", "0s"),
    ]))
    .await
    .unwrap();
    // The server sends its SETTINGS first, then waits for the client's preface.
    let mut mute = TcpStream::connect(node.addr()).await.unwrap();
    until_closed(&mut mute).await;

    let mut idle = TcpStream::connect(node.addr()).await.unwrap();
    idle.write_all(PREFACE).await.unwrap();
    let seen = until_closed(&mut idle).await;
    assert!(
        seen.len() >= 9,
        "the server answered with its SETTINGS first"
    );

    // A client that calls again gets a new connection.
    let r = node
        .scoring()
        .get_config(pb::GetConfigRequest::default())
        .await;
    assert!(r.is_ok(), "{r:?}");
}

/// Past `node.max_connections` a new connection is closed at once; once one closes, a new
/// one is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_refused() {
    let node = Node::start_with(node_with(&[("CREDENCE__NODE__MAX_CONNECTIONS", "3")]))
        .await
        .unwrap();
    // The harness holds one connection; two more fill the limit. Reading the server's
    // SETTINGS shows each was accepted.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(node.addr()).await.unwrap();
        stream.write_all(PREFACE).await.unwrap();
        let mut settings = [0u8; 9];
        stream.read_exact(&mut settings).await.unwrap();
        assert_eq!(settings[3], 4, "a SETTINGS frame");
        held.push(stream);
    }
    let mut refused = TcpStream::connect(node.addr()).await.unwrap();
    refused.write_all(PREFACE).await.unwrap();
    assert!(
        until_closed(&mut refused).await.is_empty(),
        "closed without a word"
    );
    // The connection the harness holds is still served.
    node.scoring()
        .get_config(pb::GetConfigRequest::default())
        .await
        .unwrap();
    drop(held.pop());
    wait::until("a slot to be free", PATIENCE, || async {
        let Ok(channel) = node.channel().await else {
            return Ok(None);
        };
        let mut client =
            credence_proto::v1::scoring_service_client::ScoringServiceClient::new(channel);
        Ok(client
            .get_config(pb::GetConfigRequest::default())
            .await
            .ok()
            .map(|_| ()))
    })
    .await
    .unwrap();
}
