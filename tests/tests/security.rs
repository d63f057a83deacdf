//! Who may do what, against a real node: every RPC of the four services with every role and
//! none, over mutual TLS; tokens rotated by SIGHUP without a restart; the audit trail read
//! back with `credence audit`; and `serve` refusing to listen beyond loopback unprotected.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf as _, BufMut as _, Bytes};
use credence_proto::client::Bearer;
use credence_proto::v1 as pb;
use credence_proto::v1::graph_service_client::GraphServiceClient;
use credence_proto::v1::ingestion_service_client::IngestionServiceClient;
use credence_proto::v1::scoring_service_client::ScoringServiceClient;
use credence_tests::secure::{self, ADMIN, PRODUCER, READER, Secrets, bearer};
use credence_tests::{server_binary, wait};
use prost::Message as _;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Admin,
    Producer,
    Reader,
}

/// The role each method needs, as the issue states it (independent of the server's table):
/// sending data is the producer's, changing what scoring reads is the admin's (profiles are
/// the producer's too, and an admin may do everything), reading is the reader's.
fn needed(method: &str) -> Role {
    match method {
        "PublishEvents" | "StreamEvents" | "UpsertProfiles" => Role::Producer,
        m if m.starts_with("Put") || m.starts_with("Remove") || m == "SetRuleStatus" => Role::Admin,
        _ => Role::Reader,
    }
}

/// Every method of the four services, from the compiled contracts: `/pkg.Service/Method`.
fn every_method() -> Vec<(String, String)> {
    let set = prost_types::FileDescriptorSet::decode(credence_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut out = Vec::new();
    for file in &set.file {
        for service in &file.service {
            let full = format!("{}.{}", file.package(), service.name());
            if !credence_proto::SERVICE_NAMES.contains(&full.as_str()) {
                continue;
            }
            for method in &service.method {
                out.push((
                    format!("/{full}/{}", method.name()),
                    method.name().to_owned(),
                ));
            }
        }
    }
    out
}

/// Sends and takes raw bytes.
#[derive(Clone, Copy, Debug, Default)]
struct RawBytes;

impl Codec for RawBytes {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawBytes;
    type Decoder = RawBytes;
    fn encoder(&mut self) -> Self {
        RawBytes
    }
    fn decoder(&mut self) -> Self {
        RawBytes
    }
}

impl Encoder for RawBytes {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawBytes {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Calls `path` with an empty request message; the status code it ends with before any
/// response (`Ok` once the call got through to its handler with a response started).
async fn call(channel: &Channel, path: &str, token: Option<&str>) -> Code {
    let mut client = tonic::client::Grpc::new(channel.clone());
    client.ready().await.unwrap();
    let mut request = tonic::Request::new(Bytes::new());
    bearer(token).apply(&mut request);
    let parsed = path.parse().unwrap();
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        client.server_streaming(request, parsed, RawBytes),
    )
    .await
    .unwrap_or_else(|_| panic!("{path} did not answer"));
    match answer {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

fn refused(code: Code) -> bool {
    matches!(code, Code::Unauthenticated | Code::PermissionDenied)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_needs_its_role_over_mutual_tls() {
    let secrets = Secrets::new().unwrap();
    let node = secrets.start_node(true, true).await.unwrap();
    let channel = node.channel().await.unwrap();

    let methods = every_method();
    assert_eq!(methods.len(), 29, "the four services' RPCs: {methods:?}");
    for (path, method) in &methods {
        let role = needed(method);
        for (who, token) in [
            ("no token", None),
            ("an unknown token", Some("not-a-token")),
            ("admin", Some(ADMIN)),
            ("producer", Some(PRODUCER)),
            ("reader", Some(READER)),
        ] {
            let code = call(&channel, path, token).await;
            let expected = match who {
                "no token" | "an unknown token" => Some(Code::Unauthenticated),
                "admin" => None,
                "producer" if role == Role::Producer => None,
                "reader" if role == Role::Reader => None,
                _ => Some(Code::PermissionDenied),
            };
            match expected {
                Some(refusal) => assert_eq!(code, refusal, "{path} with {who}"),
                None => assert!(!refused(code), "{path} with {who} was refused: {code:?}"),
            }
        }
    }

    // Health and reflection stay open: probes and grpcurl's `list` need no token.
    assert_eq!(
        call(&channel, "/grpc.health.v1.Health/Check", None).await,
        Code::Ok
    );
    assert!(
        !refused(
            call(
                &channel,
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                None
            )
            .await
        ),
        "reflection is open"
    );
    // A path no table names is closed to all but admins.
    assert_eq!(
        call(
            &channel,
            "/credence.v1.ScoringService/NoSuchMethod",
            Some(READER)
        )
        .await,
        Code::PermissionDenied
    );

    // TLS is required, and so is the client certificate of mutual TLS.
    let plain = tonic::transport::Endpoint::from_shared(node.endpoint())
        .unwrap()
        .connect_timeout(Duration::from_secs(5));
    let code = match plain.connect().await {
        Ok(channel) => call(&channel, "/grpc.health.v1.Health/Check", None).await,
        Err(_) => Code::Unavailable,
    };
    // (Health answers anyone who gets through, so anything but OK is the TLS refusal.)
    assert_ne!(code, Code::Ok, "a plaintext client gets nothing");
    let no_client_cert =
        credence_proto::client::endpoint(&node.endpoint(), &secrets.client_tls(false)).unwrap();
    let code = match no_client_cert.connect().await {
        Ok(channel) => call(&channel, "/grpc.health.v1.Health/Check", None).await,
        Err(_) => Code::Unavailable,
    };
    assert_ne!(
        code,
        Code::Ok,
        "mutual TLS refuses a client without a certificate"
    );

    // The metrics port speaks TLS too, with the same client CA.
    let url = node.metrics_url().unwrap();
    assert!(url.starts_with("https://"), "{url}");
    let text = metrics_over_tls(&secrets, url).await;
    assert!(text.contains("credence_rpc_duration_seconds"), "{text}");
}

/// `GET /metrics` over TLS with the client certificate.
async fn metrics_over_tls(secrets: &Secrets, url: &str) -> String {
    use rustls_pki_types::pem::PemObject as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_rustls::rustls;
    let addr = url
        .trim_start_matches("https://")
        .trim_end_matches("/metrics");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&secrets.ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&secrets.client.0)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(&secrets.client.1).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(certs, key)
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    let _ = tls.read_to_string(&mut text).await;
    text
}

fn scoring(
    channel: &Channel,
    token: &str,
) -> ScoringServiceClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>> {
    ScoringServiceClient::with_interceptor(channel.clone(), bearer(Some(token)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_rotate_on_sighup_without_a_restart() {
    let secrets = Secrets::new().unwrap();
    let node = secrets.start_node(false, false).await.unwrap();
    let channel = node.channel().await.unwrap();
    let path = "/credence.v1.ScoringService/GetConfig";
    assert_eq!(call(&channel, path, Some(READER)).await, Code::Ok);
    let rotated = "test-reader-token-rotated";
    std::fs::write(
        secrets.tokens_file(),
        secure::token_file(&[("dashboard", rotated, &["reader"])]),
    )
    .unwrap();
    assert_eq!(
        call(&channel, path, Some(rotated)).await,
        Code::Unauthenticated,
        "nothing changes before the signal"
    );
    let pid = node.pid().unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    wait::until("the rotated token", Duration::from_secs(20), || {
        let channel = channel.clone();
        async move { Ok((call(&channel, path, Some(rotated)).await == Code::Ok).then_some(())) }
    })
    .await
    .unwrap();
    assert_eq!(
        call(&channel, path, Some(READER)).await,
        Code::Unauthenticated
    );
    assert_eq!(node.pid(), Some(pid), "no restart");
}

fn credence(args: &[&str], token: Option<&str>) -> (bool, String) {
    let mut command = Command::new(server_binary().unwrap());
    command.args(args).env_remove("CREDENCE_TOKEN");
    if let Some(token) = token {
        command.env("CREDENCE_TOKEN", token);
    }
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_are_audited_with_the_token_name() {
    let secrets = Secrets::new().unwrap();
    let node = secrets.start_node(true, false).await.unwrap();
    let channel = node.channel().await.unwrap();

    let mut admin = scoring(&channel, ADMIN);
    let mut rule = admin
        .get_rule(pb::GetRuleRequest {
            rule_id: "late_payment".into(),
            version: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    rule.points = -60.0;
    let stored = admin
        .put_rule(pb::PutRuleRequest {
            rule: Some(rule.clone()),
        })
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    let denied = scoring(&channel, READER)
        .put_rule(pb::PutRuleRequest { rule: Some(rule) })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    admin
        .put_list_entry(pb::PutListEntryRequest {
            entry: Some(pb::ListEntry {
                subject_id: "SUBJ-AUDIT".into(),
                kind: pb::ListKind::Block.into(),
                reason: "synthetic fraud".into(),
                ..pb::ListEntry::default()
            }),
        })
        .await
        .unwrap();
    IngestionServiceClient::with_interceptor(channel.clone(), bearer(Some(PRODUCER)))
        .upsert_profiles(pb::UpsertProfilesRequest {
            profiles: vec![pb::Profile {
                subject_id: "SUBJ-AUDIT".into(),
                region: "north".into(),
                ..pb::Profile::default()
            }],
        })
        .await
        .unwrap();
    GraphServiceClient::with_interceptor(channel.clone(), bearer(Some(ADMIN)))
        .put_relations(pb::PutRelationsRequest {
            relations: vec![pb::Relation {
                subject_id: "SUBJ-AUDIT".into(),
                other_subject_id: "SUBJ-OTHER".into(),
                kind: pb::RelationKind::Friend.into(),
                weight: 0.5,
                ..pb::Relation::default()
            }],
        })
        .await
        .unwrap();

    let target = format!("https://127.0.0.1:{}", node.addr().port());
    let ca = secrets.ca_file();
    let ca = ca.to_str().unwrap();
    let (ok, text) = credence(
        &["audit", "--target", &target, "--ca-cert", ca],
        Some(READER),
    );
    assert!(ok, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let expected = [
        (
            "ops-admin",
            "PutRule",
            format!("rule \"late_payment\" v{}", stored.version),
        ),
        (
            "ops-admin",
            "PutListEntry",
            "Block list, subject \"SUBJ-AUDIT\"".to_owned(),
        ),
        (
            "ingest",
            "UpsertProfiles",
            "1 profiles: \"SUBJ-AUDIT\"".to_owned(),
        ),
        (
            "ops-admin",
            "PutRelations",
            "1 relations: \"SUBJ-AUDIT-SUBJ-OTHER\"".to_owned(),
        ),
    ];
    assert_eq!(lines.len(), expected.len() + 1, "{text}");
    for (line, (actor, action, target)) in lines.iter().zip(&expected) {
        let fields: Vec<&str> = line.split("  ").collect();
        assert_eq!(&fields[1..4], &[*actor, *action, target.as_str()], "{line}");
    }
    assert!(text.ends_with("4 change(s)\n"), "{text}");

    // The CLI without a token, or without the CA, is told what is missing.
    let (ok, text) = credence(&["audit", "--target", &target, "--ca-cert", ca], None);
    assert!(!ok && text.contains("requires a bearer token"), "{text}");
    let (ok, text) = credence(&["rules", "list", "--target", &target], Some(READER));
    assert!(!ok && text.contains("--ca-cert"), "{text}");
    let (ok, text) = credence(
        &[
            "rules",
            "list",
            "--target",
            &target,
            "--ca-cert",
            ca,
            "--token",
            READER,
        ],
        None,
    );
    assert!(ok && text.contains("late_payment"), "{text}");
}

#[test]
fn serve_beyond_loopback_needs_auth_or_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "").unwrap();
    let data = dir.path().join("data");
    let args = |extra: &[&str]| {
        let mut args: Vec<String> = [
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "0.0.0.0:0",
            "--metrics-listen",
            "",
            "--data-dir",
            data.to_str().unwrap(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };
    let out = Command::new(server_binary().unwrap())
        .args(args(&[]))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without authentication")
            && err.contains("--insecure"),
        "{err}"
    );
    let mut child = Command::new(server_binary().unwrap())
        .args(args(&["--insecure"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let first = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        first.starts_with("credence listening on 0.0.0.0:"),
        "{first}"
    );
}
