//! TLS with a custom CA and the bearer token: the node speaks plain HTTP/2 and checks no
//! token today, so a server in this process stands in for a node behind TLS with auth: it
//! refuses calls without `authorization: Bearer synthetic-token` (UNAUTHENTICATED) and
//! answers the rest UNIMPLEMENTED (it serves none of the credence services), which is
//! enough to see the TLS handshake, the header and the error mapping.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use credence::{Client, Error, RetryPolicy};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::InterceptorLayer;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Status};

const CA: &str = include_str!("tls/ca.pem");
const OTHER_CA: &str = include_str!("tls/other-ca.pem");
const CERT: &str = include_str!("tls/server.pem");
const KEY: &str = include_str!("tls/server.key");

#[allow(
    clippy::result_large_err,
    clippy::needless_pass_by_value,
    reason = "the interceptor signature tonic asks for"
)]
fn check_token(request: Request<()>) -> Result<Request<()>, Status> {
    match request.metadata().get("authorization") {
        Some(v) if v == "Bearer synthetic-token" => Ok(request),
        _ => Err(Status::unauthenticated("a valid bearer token is required")),
    }
}

/// A TLS server on a free loopback port; its address.
async fn tls_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let server = Server::builder()
        .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(CERT, KEY)))
        .unwrap()
        .layer(InterceptorLayer::new(check_token))
        .add_service(health)
        .serve_with_incoming(TcpListenerStream::new(listener));
    tokio::spawn(server);
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_custom_ca_and_the_bearer_token() {
    let addr = tls_server().await;
    let url = format!("https://{addr}");
    let connect = |ca: &str, domain: &str, token: Option<&str>| {
        let builder = Client::builder(&url)
            .ca_certificate(ca)
            .tls_domain(domain)
            .retry(RetryPolicy::none());
        match token {
            Some(token) => builder.auth_token(token),
            None => builder,
        }
        .connect()
    };

    // The handshake succeeds and the token passes: the call reaches the (empty) router.
    let client = connect(CA, "credence.test", Some("synthetic-token"))
        .await
        .unwrap();
    let e = client.get_score("x").await.unwrap_err();
    assert!(matches!(e, Error::Unimplemented { .. }), "{e:?}");

    // Without the token the server refuses, and the SDK says so.
    let anonymous = connect(CA, "credence.test", None).await.unwrap();
    let e = anonymous.get_score("x").await.unwrap_err();
    assert!(
        matches!(&e, Error::Unauthenticated { message, .. } if message.contains("bearer")),
        "{e:?}"
    );

    // A CA that did not sign the server's certificate, or another name: refused at connect.
    let wrong = connect(OTHER_CA, "credence.test", None).await.unwrap_err();
    assert!(
        matches!(&wrong, Error::Connect { message, .. } if message.contains("certificate")),
        "{wrong:?}"
    );
    let wrong_name = connect(CA, "elsewhere.test", None).await.unwrap_err();
    assert!(
        matches!(wrong_name, Error::Connect { .. }),
        "{wrong_name:?}"
    );
}
