//! The dashboard: its JSON API against a real node (the same answers, errors and roles as
//! gRPC), its alert stream, and the page itself in a real browser (Debian's Chromium driven
//! by playwright-core, `tests/browser/dashboard.test.mjs`).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::Duration;

use credence_tests::http::{self, Events};
use credence_tests::secure::{ADMIN, READER, Secrets};
use credence_tests::tools::{repo_root, tool};
use credence_tests::{Node, NodeOptions};
use serde_json::json;

const API: &str = "/api/v1";

fn rpc(service: &str, method: &str) -> String {
    format!("{API}/credence.v1.{service}/{method}")
}

fn event(id: &str, subject: &str, subtype: &str) -> serde_json::Value {
    json!({
        "event_id": id,
        "subject_id": subject,
        "event_type": "financial",
        "event_subtype": subtype,
        "occurred_at": "2026-06-01T00:00:00Z",
        "payload": {},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_answers_as_grpc_does_and_judges_each_event() {
    let node = Node::start().await.unwrap();
    let base = node.dashboard_url().expect("dev serves the dashboard");

    // One good event, one with a bad time, one with an unknown field: the good one is
    // published, the others are rejected alone, each naming its field.
    let mut bad_time = event("j-2", "J-1", "bankruptcy");
    bad_time["occurred_at"] = json!("yesterday");
    let mut unknown = event("j-3", "J-1", "bankruptcy");
    unknown["colour"] = json!("red");
    let answer = http::post_json(
        base,
        &rpc("IngestionService", "PublishEvents"),
        &json!({"events": [event("j-1", "J-1", "bankruptcy"), bad_time, unknown]}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    let published = answer.json();
    assert_eq!(
        (
            published["accepted"].as_u64(),
            published["rejected"].as_u64()
        ),
        (Some(1), Some(2))
    );
    let results = published["results"].as_array().unwrap();
    assert_eq!(results[0]["outcome"], "EVENT_OUTCOME_ACCEPTED");
    assert_eq!(results[1]["index"], 1);
    assert_eq!(results[1]["event_id"], "j-2");
    assert!(
        results[1]["reason"]
            .as_str()
            .unwrap()
            .starts_with("occurred_at: invalid rfc3339"),
        "{published}"
    );
    assert_eq!(results[2]["event_id"], "j-3");
    assert!(
        results[2]["reason"]
            .as_str()
            .unwrap()
            .starts_with("colour:"),
        "{published}"
    );

    // The score as GetScore over gRPC gives it: bankruptcy takes the baseline 1000 to 600.
    let wait_for_score = async {
        loop {
            let answer = http::post_json(
                base,
                &rpc("ScoringService", "GetScore"),
                &json!({"subject_id": "J-1"}),
                None,
            )
            .await
            .unwrap();
            if answer.status == 200 {
                return answer.json();
            }
            assert_eq!(answer.json()["code"], "NOT_FOUND", "{}", answer.body);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let score = tokio::time::timeout(Duration::from_secs(20), wait_for_score)
        .await
        .expect("scored within 20 s");
    let mut scoring = node.scoring();
    let grpc = scoring
        .get_score(credence_proto::v1::GetScoreRequest {
            subject_id: "J-1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert_eq!(score["snapshot"]["score"].as_f64(), Some(grpc.score));
    assert_eq!(score["snapshot"]["score"].as_f64(), Some(600.0));
    assert_eq!(score["snapshot"]["tier"].as_str(), Some(grpc.tier.as_str()));

    // Analytics as a JSON table: numbers stay numbers.
    let table = http::post_json(
        base,
        &format!("{API}/analytics"),
        &json!({"sql": "SELECT count(*) AS n, min(received_at) IS NOT NULL AS has_time FROM events"}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(table.status, 200, "{}", table.body);
    assert_eq!(table.json()["rows"], json!([[1, true]]));
    // Its limits are RunAnalytics' own: no writes.
    let write = http::post_json(
        base,
        &format!("{API}/analytics"),
        &json!({"sql": "DELETE FROM events"}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (write.status, write.json()["code"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );

    // Errors: the gRPC code's name and the server's message, with the HTTP status that says
    // the same.
    for (path, body, status, code, says) in [
        (
            rpc("QueryService", "GetProfile"),
            json!({"subject_id": "nobody"}),
            404,
            "NOT_FOUND",
            "nobody",
        ),
        (
            rpc("QueryService", "GetProfile"),
            json!({"subject": "x"}),
            400,
            "INVALID_ARGUMENT",
            "subject:",
        ),
        (
            rpc("QueryService", "GetScoreHistory"),
            json!({"subject_id": "J-1", "page_size": "many"}),
            400,
            "INVALID_ARGUMENT",
            "page_size:",
        ),
        (
            rpc("QueryService", "NoSuchMethod"),
            json!({}),
            404,
            "NOT_FOUND",
            "NoSuchMethod",
        ),
        (
            format!("{API}/grpc.health.v1.Health/Check"),
            json!({}),
            404,
            "NOT_FOUND",
            "no service",
        ),
        (
            rpc("IngestionService", "StreamEvents"),
            json!({}),
            400,
            "INVALID_ARGUMENT",
            "PublishEvents",
        ),
    ] {
        let answer = http::post_json(base, &path, &body, None).await.unwrap();
        let error = answer.json();
        assert_eq!(
            (answer.status, error["code"].as_str()),
            (status, Some(code)),
            "{path}: {error}"
        );
        assert!(
            error["message"].as_str().unwrap().contains(says),
            "{path}: {error}"
        );
    }
    // A body not declared JSON is refused (another site's form cannot send one).
    let form = http::request(
        base,
        "POST",
        &rpc("ScoringService", "GetConfig"),
        &[("Content-Type", "text/plain")],
        "{}",
    )
    .await
    .unwrap();
    assert_eq!(form.status, 400, "{}", form.body);

    // The counters the page reads.
    let stats = http::get(base, &format!("{API}/stats"), None)
        .await
        .unwrap()
        .json();
    assert_eq!(stats["events_received"]["accepted"], 1, "{stats}");
    assert!(
        stats["lag"].as_array().is_some_and(|l| !l.is_empty()),
        "{stats}"
    );

    // The page and its files, with a policy that keeps it to its own origin.
    let page = http::get(base, "/", None).await.unwrap();
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("default-src 'self'")
    );
    assert!(page.body.contains("dashboard.js"), "{}", page.body);
    for asset in ["/dashboard.js", "/dashboard.css"] {
        assert_eq!(
            http::get(base, asset, None).await.unwrap().status,
            200,
            "{asset}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_arrive_as_server_sent_events() {
    let node = Node::start().await.unwrap();
    let base = node.dashboard_url().unwrap();
    let mut alerts = Events::open(base, &format!("{API}/alerts")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = http::post_json(
        base,
        &rpc("IngestionService", "PublishEvents"),
        &json!({"events": [event("sse-1", "SSE-1", "bankruptcy")]}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(answer.json()["accepted"], 1, "{}", answer.body);
    let data = alerts.next_data(Duration::from_secs(20)).await.unwrap();
    let alert: serde_json::Value = serde_json::from_str(&data).unwrap();
    assert_eq!(alert["alert"]["subject_id"], "SSE-1", "{alert}");
    assert_eq!(
        (
            alert["alert"]["old_tier"].as_str(),
            alert["alert"]["new_tier"].as_str()
        ),
        (Some("C"), Some("D")),
        "{alert}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_the_roles_grpc_needs() {
    let secrets = Secrets::new().unwrap();
    let node = secrets.start_node(false, false).await.unwrap();
    let base = node.dashboard_url().unwrap();
    let config = rpc("ScoringService", "GetConfig");
    let no_token = http::post_json(base, &config, &json!({}), None)
        .await
        .unwrap();
    assert_eq!(
        (no_token.status, no_token.json()["code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    let read = http::post_json(base, &config, &json!({}), Some(READER))
        .await
        .unwrap();
    assert_eq!(read.status, 200, "{}", read.body);
    let rule = read.json();
    let status = rpc("ScoringService", "SetRuleStatus");
    let body = json!({"rule_id": "late_payment", "status": "RULE_STATUS_RETIRED"});
    let denied = http::post_json(base, &status, &body, Some(READER))
        .await
        .unwrap();
    assert_eq!(
        (denied.status, denied.json()["code"].as_str()),
        (403, Some("PERMISSION_DENIED")),
        "{rule}"
    );
    assert!(
        denied.json()["message"].as_str().unwrap().contains("admin"),
        "{}",
        denied.body
    );
    let allowed = http::post_json(base, &status, &body, Some(ADMIN))
        .await
        .unwrap();
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    // The counters and the alert stream need a token too.
    assert_eq!(
        http::get(base, &format!("{API}/stats"), None)
            .await
            .unwrap()
            .status,
        401
    );
    assert_eq!(
        http::get(base, &format!("{API}/stats"), Some(READER))
            .await
            .unwrap()
            .status,
        200
    );
    assert!(Events::open(base, &format!("{API}/alerts")).await.is_err());
}

/// The page in Chromium: it shows the numbers a producer published, follows a subject to
/// its explanation, shows a new rule version, and runs SQL (see the script for each check).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_what_was_published_in_a_real_browser() {
    let node = Node::start_with(NodeOptions::default()).await.unwrap();
    let deps = tool("CREDENCE_BROWSER_DEPS", "browser.sh");
    let script = repo_root().join("tests/browser/dashboard.test.mjs");
    let screenshot = std::env::var_os("CREDENCE_DASHBOARD_SCREENSHOT");
    let mut command = tokio::process::Command::new("node");
    command
        .arg(&script)
        .env("BROWSER_DEPS", &deps)
        .env("CREDENCE_DASHBOARD_URL", node.dashboard_url().unwrap())
        .kill_on_drop(true);
    if let Some(path) = screenshot {
        command.env("SCREENSHOT", path);
    }
    let out = tokio::time::timeout(Duration::from_secs(240), command.output())
        .await
        .expect("the browser test ends within 240 s")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser test failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- node log\n{}",
        node.log_tail(30)
    );
    println!("{stdout}");
}
