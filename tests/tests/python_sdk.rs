//! The Python SDK (`sdk-python`) against a real node: its pytest suite (every method, sync
//! and async, producer, errors, tables through pyarrow, polars and pandas, simulate parity,
//! fork safety, alerts, tokens and TLS) and `mypy --strict` over the package, its tests and its examples.
//!
//! The interpreter is `$CREDENCE_SDK_PYTHON`, or whatever `deploy/local/python-sdk.sh`
//! prints (it builds the SDK into a cached virtualenv; `make test` sets the variable with a
//! dev build).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use credence_tests::Node;
use credence_tests::secure::{PRODUCER, READER, Secrets};
use credence_tests::tools::{repo_root, tool};

/// pytest's whole run is a few tens of seconds; this is a backstop against a hang.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

fn python() -> PathBuf {
    tool("CREDENCE_SDK_PYTHON", "python-sdk.sh")
}

/// Runs `python args...` in `sdk-python` with `env`; panics with its output on failure,
/// else answers its standard output.
async fn run(args: &[&str], env: &[(&str, String)]) -> String {
    let python = python();
    let mut command = tokio::process::Command::new(&python);
    command
        .args(args)
        .current_dir(repo_root().join("sdk-python"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("CREDENCE_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = tokio::time::timeout(RUN_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{args:?} ran longer than {RUN_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("running {} {args:?}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- {args:?} stdout ---\n{stdout}--- stderr ---\n{stderr}");
    assert!(out.status.success(), "{args:?} failed:\n{stdout}\n{stderr}");
    stdout.into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pytest_suite_against_a_node() {
    let node = Node::start().await.unwrap();
    run(
        &[
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests",
            // needs a node with tokens and TLS: the next test
            "--ignore=tests/test_secure.py",
        ],
        &[("CREDENCE_URL", node.endpoint())],
    )
    .await;
}

/// The SDK with a bearer token and a private CA against a node with tokens and TLS on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pytest_with_tokens_and_tls() {
    let secrets = Secrets::new().unwrap();
    let node = secrets.start_node(true, false).await.unwrap();
    let ca = secrets.ca_file().to_str().unwrap().to_owned();
    let out = run(
        &[
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_secure.py",
        ],
        &[
            (
                "CREDENCE_SECURE_URL",
                format!("https://localhost:{}", node.addr().port()),
            ),
            ("CREDENCE_CA_FILE", ca),
            ("CREDENCE_PRODUCER_TOKEN", PRODUCER.to_owned()),
            ("CREDENCE_READER_TOKEN", READER.to_owned()),
        ],
    )
    .await;
    assert!(
        out.contains("1 passed"),
        "the secure test did not run: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mypy_strict_on_the_package_tests_and_examples() {
    run(
        &[
            "-m",
            "mypy",
            "--strict",
            "--cache-dir=/dev/null",
            "python/credence",
            "tests",
            "examples",
        ],
        &[],
    )
    .await;
}
