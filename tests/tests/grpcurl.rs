//! grpcurl against a real server, through reflection only (no .proto files): the services are
//! listed, an event published as JSON is scored and listed back.
//!
//! The grpcurl binary is `$GRPCURL`, or whatever `deploy/local/grpcurl.sh` prints (it builds
//! grpcurl once from the Go module proxy).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use credence_tests::secure::{ADMIN, READER, Secrets};
use credence_tests::{Node, wait};
use serde_json::{Value, json};

fn grpcurl_binary() -> PathBuf {
    credence_tests::tools::tool("GRPCURL", "grpcurl.sh")
}

fn grpcurl(bin: &Path, node: &Node, args: &[&str], data: Option<&Value>) -> Result<String, String> {
    grpcurl_with(bin, &["-plaintext"], node, args, data)
}

/// grpcurl with `options` (transport, headers) before the usual ones.
fn grpcurl_with(
    bin: &Path,
    options: &[&str],
    node: &Node,
    args: &[&str],
    data: Option<&Value>,
) -> Result<String, String> {
    let mut command = Command::new(bin);
    command.args(options).args(["-max-time", "10"]);
    if let Some(data) = data {
        command.args(["-d", &data.to_string()]);
    }
    command.arg(node.addr().to_string()).args(args);
    let out = command
        .output()
        .map_err(|e| format!("running grpcurl: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "grpcurl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_lists_publishes_and_reads_back() {
    let bin = grpcurl_binary();
    let node = Node::start().await.unwrap();

    let services = grpcurl(&bin, &node, &["list"], None).unwrap();
    let services: Vec<&str> = services.lines().map(str::trim).collect();
    for name in credence_proto::SERVICE_NAMES {
        assert!(
            services.contains(&name),
            "{name} missing from `grpcurl list`: {services:?}"
        );
    }
    let methods = grpcurl(&bin, &node, &["list", "credence.v1.IngestionService"], None).unwrap();
    assert!(
        methods.contains("credence.v1.IngestionService.PublishEvents"),
        "{methods}"
    );
    let request = json!({"events": [{
        "eventId": "grpcurl-1",
        "subjectId": "SUBJ-GRPCURL",
        "eventType": "financial",
        "eventSubtype": "bankruptcy",
        "occurredAt": "2026-09-01T00:00:00Z",
        "location": {"region": "north"},
        "payload": {"court": "synthetic"}
    }]});
    let published: Value = serde_json::from_str(
        &grpcurl(
            &bin,
            &node,
            &["credence.v1.IngestionService/PublishEvents"],
            Some(&request),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(published["accepted"], json!(1), "{published}");
    assert_eq!(
        published["results"][0]["outcome"],
        json!("EVENT_OUTCOME_ACCEPTED"),
        "{published}"
    );
    assert_eq!(
        published["results"][0]["eventId"],
        json!("grpcurl-1"),
        "{published}"
    );

    let score = wait::until(
        "GetScore through grpcurl",
        Duration::from_secs(20),
        || async {
            match grpcurl(
                &bin,
                &node,
                &["credence.v1.ScoringService/GetScore"],
                Some(&json!({"subjectId": "SUBJ-GRPCURL"})),
            ) {
                Ok(text) => Ok(Some(serde_json::from_str::<Value>(&text)?)),
                Err(e) if e.contains("NotFound") => Ok(None),
                Err(e) => Err(anyhow::anyhow!(e)),
            }
        },
    )
    .await
    .unwrap();
    let snapshot = &score["snapshot"];
    assert_eq!(snapshot["score"], json!(600), "{score}");
    assert_eq!(snapshot["tier"], json!("D"), "{score}");
    assert_eq!(snapshot["lastEventId"], json!("grpcurl-1"), "{score}");

    let listed: Value = serde_json::from_str(
        &grpcurl(
            &bin,
            &node,
            &["credence.v1.QueryService/ListEvents"],
            Some(&json!({"subjectId": "SUBJ-GRPCURL"})),
        )
        .unwrap(),
    )
    .unwrap();
    let events = listed["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{listed}");
    assert_eq!(events[0]["eventId"], json!("grpcurl-1"));
    assert_eq!(events[0]["payload"], json!({"court": "synthetic"}));
    assert_eq!(events[0]["occurredAt"], json!("2026-09-01T00:00:00Z"));

    // a bad request through grpcurl: the error names the field
    let err = grpcurl(
        &bin,
        &node,
        &["credence.v1.ScoringService/GetScore"],
        Some(&json!({})),
    )
    .unwrap_err();
    assert!(
        err.contains("InvalidArgument") && err.contains("subject_id"),
        "{err}"
    );

    // the standard health service, through reflection like everything else
    assert!(services.contains(&"grpc.health.v1.Health"), "{services:?}");
    let health = grpcurl(
        &bin,
        &node,
        &["grpc.health.v1.Health/Check"],
        Some(&json!({"service": "credence.v1.ScoringService"})),
    )
    .unwrap();
    assert!(health.contains("SERVING"), "{health}");
}

/// With tokens and TLS on: grpcurl trusts the CA and sends the token as a header; without a
/// token it is refused, reflection and health stay open, and a reader may not publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_with_a_token_over_tls() {
    let bin = grpcurl_binary();
    let secrets = Secrets::new().unwrap();
    let node = secrets.start_node(true, false).await.unwrap();
    let ca = secrets.ca_file();
    let tls = ["-cacert", ca.to_str().unwrap()];
    let as_admin = format!("authorization: Bearer {ADMIN}");
    let as_reader = format!("authorization: Bearer {READER}");
    let admin = [tls[0], tls[1], "-H", as_admin.as_str()];
    let reader = [tls[0], tls[1], "-H", as_reader.as_str()];

    let services = grpcurl_with(&bin, &tls, &node, &["list"], None).unwrap();
    assert!(
        services.contains("credence.v1.ScoringService"),
        "{services}"
    );
    let health = grpcurl_with(&bin, &tls, &node, &["grpc.health.v1.Health/Check"], None).unwrap();
    assert!(health.contains("SERVING"), "{health}");

    let request = json!({"events": [{
        "eventId": "grpcurl-tls-1",
        "subjectId": "SUBJ-GRPCURL-TLS",
        "eventType": "financial",
        "eventSubtype": "bankruptcy",
        "occurredAt": "2026-09-01T00:00:00Z"
    }]});
    let publish = ["credence.v1.IngestionService/PublishEvents"];
    let err = grpcurl_with(&bin, &tls, &node, &publish, Some(&request)).unwrap_err();
    assert!(
        err.contains("Unauthenticated") && err.contains("bearer token"),
        "{err}"
    );
    let err = grpcurl_with(&bin, &reader, &node, &publish, Some(&request)).unwrap_err();
    assert!(
        err.contains("PermissionDenied") && err.contains("producer"),
        "{err}"
    );
    let published: Value =
        serde_json::from_str(&grpcurl_with(&bin, &admin, &node, &publish, Some(&request)).unwrap())
            .unwrap();
    assert_eq!(published["accepted"], json!(1), "{published}");

    let config = grpcurl_with(
        &bin,
        &reader,
        &node,
        &["credence.v1.ScoringService/GetConfig"],
        Some(&json!({})),
    )
    .unwrap();
    assert!(config.contains("tiers"), "{config}");
    // Plaintext against the TLS port gets nothing.
    assert!(grpcurl(&bin, &node, &["list"], None).is_err());
}
