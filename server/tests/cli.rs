//! The `credence` binary as a user runs it: rule checks and offline simulation.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

fn credence(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_credence"))
        .args(args)
        .output()
        .expect("runs credence")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn rules_check_summarises_the_example_rule_set() {
    let out = credence(&[
        "rules",
        "check",
        repo("scorer/rules/example.yaml").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(": ok"), "{stdout}");
    assert!(stdout.contains("24 rules, 22 active"), "{stdout}");
    assert!(stdout.contains("financial") && stdout.contains("social") && stdout.contains("online"));
}

#[test]
fn rules_check_names_the_rule_and_field_of_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "rules:\n  - id: late\n    event_type: financial\n    points: -50\n    cap: {max: 0, window: 1d}\n",
    )
    .unwrap();
    let out = credence(&["rules", "check", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr).trim(),
        "credence: rule \"late\": cap.max: must be at least 1"
    );
}

#[test]
fn simulate_scores_the_example_events_with_explanations() {
    let out = credence(&[
        "simulate",
        "--rules",
        repo("scorer/rules/example.yaml").to_str().unwrap(),
        "--events",
        repo("docs/examples/events.jsonl").to_str().unwrap(),
        "--contexts",
        repo("docs/examples/contexts.jsonl").to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let of_kind = |kind: &'static str| lines.iter().filter(move |l| l["kind"] == kind);
    let outcomes: Vec<String> = of_kind("outcome")
        .map(|l| format!("{}:{}", l["event_id"], l["outcome"]))
        .collect();
    assert_eq!(outcomes.len(), 16);
    assert_eq!(
        outcomes[1], r#""e-002":{"applied":{"changes":0}}"#,
        "late_payment cooldown"
    );
    assert_eq!(
        outcomes[5], r#""e-006":{"applied":{"changes":0}}"#,
        "volunteer_work cap"
    );
    assert_eq!(outcomes[7], r#""e-007":"duplicate""#);
    let rules_of = |subject: &str| -> Vec<String> {
        of_kind("change")
            .filter(|c| c["subject_id"] == subject)
            .map(|c| format!("{}@{}", c["rule_id"].as_str().unwrap(), c["rule_version"]))
            .collect()
    };
    assert_eq!(
        rules_of("SUBJ-0000001"),
        [
            "late_payment@1",
            "late_payment@1",
            "volunteer_work@1",
            "volunteer_work@1",
            "volunteer_work@1"
        ]
    );
    // block-listed with a low association: fraud weighs 1.5x; online activity while
    // block-listed costs extra
    let subject2 = rules_of("SUBJ-0000002");
    assert!(
        subject2.contains(&"fraud_flag@1".to_owned()),
        "{subject2:?}"
    );
    assert!(
        subject2.contains(&"block_listed_activity@1".to_owned()),
        "{subject2:?}"
    );
    let fraud = of_kind("change")
        .find(|c| c["rule_id"] == "fraud_flag")
        .unwrap();
    assert_eq!(fraud["factor"], 1.5);
    assert_eq!(fraud["inputs"]["subject.association"], -180.5);
    // the student's savings milestone counts double
    let savings = of_kind("change")
        .find(|c| c["rule_id"] == "savings_milestone")
        .unwrap();
    assert_eq!(savings["factor"], 2.0);
    let states: Vec<&serde_json::Value> = of_kind("state").collect();
    assert_eq!(states.len(), 3);
    assert!(
        states
            .iter()
            .all(|s| (0.0..=2000.0).contains(&s["score"].as_f64().unwrap()))
    );
}

#[test]
fn simulate_names_the_line_of_a_bad_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    std::fs::write(
        &path,
        "{\"event_id\":\"a\",\"subject_id\":\"s\",\"event_type\":\"x\",\"occurred_at\":\"2026-01-01T00:00:00Z\"}\n\n{\"event_id\":\"b\"}\n",
    )
    .unwrap();
    let out = credence(&[
        "simulate",
        "--rules",
        repo("scorer/rules/example.yaml").to_str().unwrap(),
        "--events",
        path.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("events.jsonl:3: not a valid line"),
        "{stderr}"
    );
    assert!(stderr.contains("subject_id"), "{stderr}");
}
