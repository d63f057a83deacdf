//! The Python quickstart (`docs/examples/python/quickstart.py`) against a real server: it
//! generates its stubs from the .proto files, stores a profile, publishes events, waits for
//! the score, prints the explanation and runs SQL; the score it made is read back here.
//!
//! The interpreter is `$CREDENCE_PYTHON`, or whatever `deploy/local/python-env.sh` prints (it
//! makes a virtualenv with grpcio and grpcio-tools once, from the Python package registry).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use credence_proto::v1 as pb;
use credence_tests::Node;
use credence_tests::secure::{PRODUCER_READER, Secrets};

const SUBJECT: &str = "SUBJ-PYTHON-QUICKSTART";
/// The script waits at most ~25 s on its own (connect, scoring, analytics); this is a backstop.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

fn python_interpreter() -> PathBuf {
    credence_tests::tools::tool("CREDENCE_PYTHON", "python-env.sh")
}

/// Runs the quickstart against `node` with `extra` arguments; its success and output.
async fn quickstart(node: &Node, extra: &[&str]) -> (bool, String, String) {
    let python = python_interpreter();
    let script = credence_tests::tools::repo_root().join("docs/examples/python/quickstart.py");
    // Run from elsewhere: the script must find the .proto files relative to itself.
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["--target", &node.addr().to_string(), "--subject", SUBJECT])
        .args(extra)
        .env_remove("CREDENCE_TOKEN")
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(SCRIPT_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("the quickstart ran longer than {SCRIPT_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("running {} {}: {e}", python.display(), script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!("--- quickstart stdout ---\n{stdout}--- quickstart stderr ---\n{stderr}");
    (out.status.success(), stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_quickstart_scores_explains_and_queries() {
    let node = Node::start().await.unwrap();
    let (ok, stdout, stderr) = quickstart(&node, &[]).await;
    assert!(ok, "the quickstart failed:\n{stdout}\n{stderr}");

    // The server, asked directly, has the score the script printed.
    let snapshot = node
        .scoring()
        .get_score(pb::GetScoreRequest {
            subject_id: SUBJECT.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .expect("GetScore answered without a snapshot");
    assert_eq!(snapshot.subject_id, SUBJECT);
    assert_eq!(snapshot.applied_events, 3, "{snapshot:?}");
    // 1000 - 100 (late payment, 45 days: x2) + 20 (volunteering) + 5 (bill paid), plus a
    // hair of decay back towards the baseline between the events (hours apart).
    assert!((925.0..926.0).contains(&snapshot.score), "{snapshot:?}");
    assert_eq!(snapshot.tier, "C", "{snapshot:?}");

    assert!(
        stdout.contains(&format!("subject {SUBJECT}: profile stored")),
        "{stdout}"
    );
    let score_line = format!("score {:.1}, tier {}", snapshot.score, snapshot.tier);
    assert!(
        stdout.contains(&score_line),
        "no {score_line:?} in:\n{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("change: late_payment @ v1: -100.0")),
        "no explained late_payment change in:\n{stdout}"
    );
    assert!(
        stdout.contains("change: volunteer_work @ v1: +20.0"),
        "{stdout}"
    );
    // A fresh node: the only event types are the script's, financial and social.
    assert!(stdout.contains("analytics: 2 rows"), "{stdout}");
}

/// With tokens and TLS on, the quickstart runs with a token holding producer and reader
/// and the CA; without the token it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_quickstart_with_a_token_over_tls() {
    let secrets = Secrets::new().unwrap();
    let node = secrets.start_node(true, false).await.unwrap();
    let ca = secrets.ca_file();
    let ca = ca.to_str().unwrap();
    let (ok, stdout, stderr) = quickstart(&node, &["--ca-cert", ca]).await;
    assert!(!ok, "no token, yet it ran:\n{stdout}");
    assert!(stderr.contains("UNAUTHENTICATED"), "{stderr}");
    let (ok, stdout, stderr) =
        quickstart(&node, &["--ca-cert", ca, "--token", PRODUCER_READER]).await;
    assert!(ok, "the quickstart failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("score 925."), "{stdout}");
    assert!(stdout.contains("analytics: 2 rows"), "{stdout}");
}
