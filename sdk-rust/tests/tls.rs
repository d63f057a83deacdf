//! TLS with a custom CA: the node speaks plain HTTP/2 today, so a TLS server in this process
//! (tonic's, with the health service) stands in for a node behind TLS.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use credence::{Client, Error};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const CA: &str = include_str!("tls/ca.pem");
const OTHER_CA: &str = include_str!("tls/other-ca.pem");
const CERT: &str = include_str!("tls/server.pem");
const KEY: &str = include_str!("tls/server.key");

/// A TLS server on a free loopback port; its address.
async fn tls_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let server = Server::builder()
        .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(CERT, KEY)))
        .unwrap()
        .add_service(health)
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(server);
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_custom_ca_connects_and_a_wrong_ca_is_refused_at_connect() {
    let addr = tls_server().await;
    let url = format!("https://{addr}");

    let connect = |ca: &str, domain: &str| {
        Client::builder(&url)
            .ca_certificate(ca)
            .tls_domain(domain)
            .connect()
    };
    let client = connect(CA, "credence.test").await.unwrap();
    let answer = HealthClient::new(client.channel())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(answer.into_inner().status, 1, "SERVING over TLS");

    let wrong = connect(OTHER_CA, "credence.test").await.unwrap_err();
    assert!(
        matches!(&wrong, Error::Connect { message, .. } if message.contains("certificate")),
        "{wrong:?}"
    );

    let wrong_name = connect(CA, "elsewhere.test").await.unwrap_err();
    assert!(
        matches!(wrong_name, Error::Connect { .. }),
        "{wrong_name:?}"
    );
}
