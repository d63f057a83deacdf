//! Rules and config over gRPC: new versions are picked up by scoring without a restart,
//! statuses, validation errors, config versions, and Simulate storing nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use credence_proto::v1 as pb;
use credence_tests::events::{self, event, ts};
use credence_tests::{Node, NodeOptions, fixtures, wait};
use serde_json::json;
use tonic::Code;

const S: &str = "SUBJ-RULES-1";

async fn publish(node: &Node, e: pb::Event) {
    let r = node
        .ingestion()
        .publish_events(pb::PublishEventsRequest { events: vec![e] })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 1, "{r:?}");
}

async fn rule(node: &Node, id: &str, version: u32) -> pb::Rule {
    node.scoring()
        .get_rule(pb::GetRuleRequest {
            rule_id: id.into(),
            version,
        })
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap()
}

async fn changes(node: &Node, subject: &str) -> Vec<pb::ScoreChange> {
    node.scoring()
        .explain_score(pb::ExplainScoreRequest {
            subject_id: subject.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .changes
}

fn mentoring(at: &str, n: u32) -> pb::Event {
    event(
        &format!("m-{n}"),
        S,
        "social",
        "mentoring",
        at,
        &json!({"minutes": 45}),
    )
}

/// The decay of SCORING.md step 3, exactly.
fn decay(score: f64, dt_ns: i64, half_life_ns: i64) -> f64 {
    1000.0 + (score - 1000.0) * 0.5f64.powf(dt_ns as f64 / half_life_ns as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_changes_apply_to_later_events_without_restart() {
    rules_test(NodeOptions::default()).await;
}

/// The same on a node whose rules, config, profiles and lists are in MongoDB
/// (`make test-stack`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_changes_apply_to_later_events_without_restart_on_mongodb() {
    let Some(env) = credence_tests::cluster::mongo_documents_env("rules test on MongoDB") else {
        return;
    };
    rules_test(NodeOptions {
        env,
        ..NodeOptions::default()
    })
    .await;
}

async fn rules_test(options: NodeOptions) {
    let node = Node::start_with(options).await.unwrap();
    let mut scoring = node.scoring();

    // the example config and the draft rule `mentoring`
    let config = scoring
        .get_config(pb::GetConfigRequest::default())
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert!(config.version >= 1);
    assert_eq!(
        (config.baseline, config.min_score, config.max_score),
        (Some(1000.0), Some(0.0), Some(2000.0))
    );
    let tiers: Vec<_> = config
        .tiers
        .iter()
        .map(|t| (t.name.as_str(), t.min_score))
        .collect();
    assert_eq!(
        tiers,
        [
            ("E", 0.0),
            ("D", 600.0),
            ("C", 900.0),
            ("B", 1100.0),
            ("A", 1300.0)
        ]
    );
    assert_eq!(config.alert_thresholds, [500.0, 1500.0]);
    assert_eq!(config.auto_create_subjects, Some(true));
    let half_life = config.decay.as_ref().and_then(|d| d.half_life).unwrap();
    assert_eq!((half_life.seconds, half_life.nanos), (90 * 86_400, 0));
    let half_life_ns = half_life.seconds * 1_000_000_000;

    let draft = rule(&node, "mentoring", 0).await;
    assert_eq!(
        (draft.version, draft.status, draft.points),
        (1, pb::RuleStatus::Draft as i32, 8.0)
    );
    let before = scoring
        .list_rules(pb::ListRulesRequest::default())
        .await
        .unwrap()
        .into_inner();

    // a draft does not score
    publish(&node, mentoring("2026-03-01T10:00:00Z", 1)).await;
    let snapshot = wait::scored(&node, S, 1).await.unwrap();
    assert_eq!(snapshot.score, 1000.0);
    assert!(changes(&node, S).await.is_empty());

    // activated: version 2 scores the next event
    let active = scoring
        .set_rule_status(pb::SetRuleStatusRequest {
            rule_id: "mentoring".into(),
            status: pb::RuleStatus::Active as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    assert_eq!(
        (active.version, active.status),
        (2, pb::RuleStatus::Active as i32)
    );
    publish(&node, mentoring("2026-03-01T11:00:00Z", 2)).await;
    let snapshot = wait::scored(&node, S, 2).await.unwrap();
    assert_eq!(snapshot.score, 1008.0);

    // changed: version 3 with 20 points scores the next one
    let mut changed = rule(&node, "mentoring", 0).await;
    changed.points = 20.0;
    changed.name = "Mentoring session (doubled)".into();
    let stored = scoring
        .put_rule(pb::PutRuleRequest {
            rule: Some(changed),
        })
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    assert_eq!((stored.version, stored.points), (3, 20.0));
    assert!(stored.updated_at.is_some());
    publish(&node, mentoring("2026-03-01T12:00:00Z", 3)).await;
    let snapshot = wait::scored(&node, S, 3).await.unwrap();
    let old = decay(1008.0, 3_600_000_000_000, half_life_ns);
    assert_eq!(
        snapshot.score.to_bits(),
        (old + 20.0).to_bits(),
        "{} vs {}",
        snapshot.score,
        old + 20.0
    );
    let explained = changes(&node, S).await;
    let seen: Vec<_> = explained
        .iter()
        .map(|c| (c.event_id.as_str(), c.rule_id.as_str(), c.rule_version))
        .collect();
    assert_eq!(seen, [("m-2", "mentoring", 2), ("m-3", "mentoring", 3)]);
    assert_eq!(explained[1].reason, "Mentoring session (doubled)");
    assert_eq!(
        explained[1].old_score.to_bits(),
        old.to_bits(),
        "old_score is after decay"
    );

    // every version stays readable
    assert_eq!(
        rule(&node, "mentoring", 1).await.status,
        pb::RuleStatus::Draft as i32
    );
    assert_eq!(rule(&node, "mentoring", 2).await.points, 8.0);
    let versions = scoring
        .list_rules(pb::ListRulesRequest {
            all_versions: true,
            event_type: "social".into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mentoring_versions: Vec<_> = versions
        .rules
        .iter()
        .filter(|r| r.id == "mentoring")
        .map(|r| r.version)
        .collect();
    assert_eq!(mentoring_versions, [1, 2, 3]);
    assert!(versions.rules.iter().all(|r| r.event_type == "social"));
    let after = scoring
        .list_rules(pb::ListRulesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        after.rule_set_version > before.rule_set_version,
        "{} then {}",
        before.rule_set_version,
        after.rule_set_version
    );
    let retired = scoring
        .list_rules(pb::ListRulesRequest {
            status: pb::RuleStatus::Retired as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = retired.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["loot_box_spending"]);
    let page = scoring
        .list_rules(pb::ListRulesRequest {
            page_size: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.rules.len(), 5);
    assert!(!page.next_page_token.is_empty());
    let ids: Vec<_> = page.rules.iter().map(|r| r.id.clone()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "ordered by id");

    // retired: no longer scores
    let retired = scoring
        .set_rule_status(pb::SetRuleStatusRequest {
            rule_id: "mentoring".into(),
            status: pb::RuleStatus::Retired as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    assert_eq!(retired.version, 4);
    publish(&node, mentoring("2026-03-01T13:00:00Z", 4)).await;
    wait::scored(&node, S, 4).await.unwrap();
    assert_eq!(changes(&node, S).await.len(), 2);

    // errors name what is wrong; nothing is stored
    let err = scoring
        .set_rule_status(pb::SetRuleStatusRequest {
            rule_id: "no-such-rule".into(),
            status: pb::RuleStatus::Active as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("no-such-rule"), "{err:?}");
    let err = scoring
        .set_rule_status(pb::SetRuleStatusRequest {
            rule_id: "mentoring".into(),
            status: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("status"), "{err:?}");
    let err = scoring
        .get_rule(pb::GetRuleRequest {
            rule_id: "mentoring".into(),
            version: 99,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    let bad = |f: &dyn Fn(&mut pb::Rule)| {
        let mut r = fixtures::volunteer_rule();
        r.id = "bad-rule".into();
        f(&mut r);
        r
    };
    let cases: Vec<(pb::Rule, &[&str])> = vec![
        (bad(&|r| r.id = "Bad Id!".into()), &["id"]),
        (
            bad(&|r| {
                r.cap = Some(pb::Cap {
                    max: 0,
                    window: Some(events::secs(60)),
                });
            }),
            &["cap"],
        ),
        (bad(&|r| r.event_type = String::new()), &["event_type"]),
        (bad(&|r| r.points = f64::NAN), &["points"]),
        (
            bad(&|r| {
                r.conditions = vec![pb::Condition {
                    field: "payload.hours".into(),
                    op: 0,
                    value: None,
                }];
            }),
            &["op", "operator"],
        ),
        (
            bad(&|r| r.conditions = vec![fixtures::cond("nowhere.x", pb::Operator::Eq, &json!(1))]),
            &["nowhere", "field"],
        ),
        (
            bad(&|r| {
                r.valid_from = Some(ts("2026-05-01T00:00:00Z"));
                r.valid_until = Some(ts("2026-04-01T00:00:00Z"));
            }),
            &["valid"],
        ),
        // factors whose product overflowed made the factor infinite and the score NaN
        (
            bad(&|r| {
                r.multipliers = (0..4)
                    .map(|_| pb::Multiplier {
                        when: Some(fixtures::cond("payload.hours", pb::Operator::Gt, &json!(0))),
                        factor: 1e100,
                    })
                    .collect();
            }),
            &["multipliers: the factors could multiply"],
        ),
        // a 1 MB name was copied into every score change
        (
            bad(&|r| r.name = "n".repeat(1 << 20)),
            &["name: is 1048576 bytes"],
        ),
        (
            bad(&|r| {
                r.conditions =
                    vec![fixtures::cond("payload.hours", pb::Operator::Exists, &json!(true)); 33];
            }),
            &["conditions: has 33 entries"],
        ),
        (
            bad(&|r| {
                r.conditions = vec![fixtures::cond(
                    &format!("payload.{}", "h".repeat(1_000)),
                    pb::Operator::Exists,
                    &json!(true),
                )];
            }),
            &["conditions[0].field: is"],
        ),
    ];
    for (r, words) in cases {
        let err = scoring
            .put_rule(pb::PutRuleRequest {
                rule: Some(r.clone()),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{r:?}: {err:?}");
        let msg = err.message().to_lowercase();
        assert!(
            words.iter().any(|w| msg.contains(w)),
            "message {msg:?} should name one of {words:?}"
        );
    }
    let err = scoring
        .get_rule(pb::GetRuleRequest {
            rule_id: "bad-rule".into(),
            version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "a refused rule is not stored: {err:?}"
    );
    assert_eq!(changes(&node, S).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_versions_and_simulate_stores_nothing() {
    let node = Node::start().await.unwrap();
    let mut scoring = node.scoring();
    let first = scoring
        .get_config(pb::GetConfigRequest::default())
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();

    // a new config is a new version; the old one stays readable
    let mut next = fixtures::worked_config();
    next.alert_thresholds = vec![400.0];
    let put = scoring
        .put_config(pb::PutConfigRequest { config: Some(next) })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(put.version, first.version + 1);
    assert!(put.updated_at.is_some());
    let current = scoring
        .get_config(pb::GetConfigRequest::default())
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(
        (current.version, current.alert_thresholds.clone()),
        (put.version, vec![400.0])
    );
    let old = scoring
        .get_config(pb::GetConfigRequest {
            version: first.version,
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(old.alert_thresholds, first.alert_thresholds);
    // Tiers out of order were stored and served so: refused, naming the tier.
    let mut shuffled = fixtures::worked_config();
    shuffled.tiers.swap(1, 3);
    let err = scoring
        .put_config(pb::PutConfigRequest {
            config: Some(shuffled),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(
        err.message()
            .contains("tiers are listed by rising min_score"),
        "{err:?}"
    );
    // A config that leaves auto_create_subjects (and the bounds) out keeps them: proto3
    // read the absent flag as false, and the node stopped creating subjects.
    let sparse = pb::ScoringConfig {
        auto_create_subjects: None,
        baseline: None,
        min_score: None,
        max_score: None,
        ..fixtures::worked_config()
    };
    let kept = scoring
        .put_config(pb::PutConfigRequest {
            config: Some(sparse),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(kept.auto_create_subjects, Some(true), "{kept:?}");
    assert_eq!(
        (kept.baseline, kept.min_score, kept.max_score),
        (Some(1000.0), Some(0.0), Some(2000.0))
    );
    assert_eq!(
        kept.alert_thresholds,
        vec![500.0],
        "lists are replaced whole"
    );
    let mut invalid = fixtures::worked_config();
    invalid.min_score = Some(3000.0);
    let err = scoring
        .put_config(pb::PutConfigRequest {
            config: Some(invalid),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("score"), "{err:?}");
    let err = scoring
        .get_config(pb::GetConfigRequest { version: 999 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // scoring picks the new config up: the next snapshot carries its version
    node.ingestion()
        .publish_events(pb::PublishEventsRequest {
            events: vec![event(
                "c-1",
                S,
                "financial",
                "bankruptcy",
                "2026-04-01T00:00:00Z",
                &json!({}),
            )],
        })
        .await
        .unwrap();
    let real = wait::scored(&node, S, 1).await.unwrap();
    assert_eq!((real.score, real.config_version), (600.0, kept.version));

    // Simulate: a rule set that is not stored, over events that are not stored
    let mut b_start = pb::SubjectState {
        subject_id: "SIM-B".into(),
        score: 1200.0,
        tier: "B".into(),
        last_event_time: Some(ts("2026-03-01T00:00:00Z")),
        last_event_id: "earlier".into(),
        applied_events: 3,
        config_version: 1,
        ..Default::default()
    };
    b_start.rules.clear();
    let simulated = scoring
        .simulate(pb::SimulateRequest {
            rules: vec![fixtures::late_rule()],
            config: Some(fixtures::worked_config()),
            events: vec![
                event(
                    "sim-1",
                    S,
                    "financial",
                    "late_payment",
                    "2026-04-02T00:00:00Z",
                    &json!({"days_late": 45}),
                ),
                event(
                    "sim-2",
                    "SIM-NEW",
                    "financial",
                    "late_payment",
                    "2026-04-02T00:00:00Z",
                    &json!({"days_late": 10}),
                ),
                event(
                    "sim-3",
                    "SIM-B",
                    "financial",
                    "late_payment",
                    "2026-04-02T00:00:00Z",
                    &json!({"days_late": 10}),
                ),
                event(
                    "sim-3",
                    "SIM-B",
                    "financial",
                    "late_payment",
                    "2026-04-02T00:00:00Z",
                    &json!({"days_late": 10}),
                ),
            ],
            initial_state: vec![b_start],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut snapshots: Vec<_> = simulated
        .snapshots
        .iter()
        .map(|s| (s.subject_id.as_str(), s.score, s.tier.as_str()))
        .collect();
    snapshots.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        snapshots,
        [
            ("SIM-B", 1150.0, "B"),
            ("SIM-NEW", 950.0, "C"),
            (S, 900.0, "C")
        ],
        "a simulation starts from nothing but initial_state"
    );
    assert_eq!(simulated.changes.len(), 3);
    assert!(
        simulated
            .changes
            .iter()
            .all(|c| c.rule_id == "late" && c.rule_version == 1)
    );
    let outcomes: Vec<_> = simulated.results.iter().map(events::outcome).collect();
    assert_eq!(
        outcomes,
        [
            pb::EventOutcome::Accepted,
            pb::EventOutcome::Accepted,
            pb::EventOutcome::Accepted,
            pb::EventOutcome::Duplicate
        ]
    );
    let b_final = simulated
        .final_state
        .iter()
        .find(|s| s.subject_id == "SIM-B")
        .unwrap();
    assert_eq!((b_final.applied_events, b_final.score), (4, 1150.0));

    // nothing of it was stored
    let after = scoring
        .get_score(pb::GetScoreRequest {
            subject_id: S.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert_eq!(
        (after.score.to_bits(), after.applied_events),
        (real.score.to_bits(), 1)
    );
    for subject in ["SIM-NEW", "SIM-B"] {
        let err = scoring
            .get_score(pb::GetScoreRequest {
                subject_id: subject.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{subject}: {err:?}");
        assert!(
            err.message().contains(subject),
            "NOT_FOUND names the subject: {err:?}"
        );
    }
    let err = scoring
        .get_rule(pb::GetRuleRequest {
            rule_id: "late".into(),
            version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::NotFound,
        "a simulated rule is not stored: {err:?}"
    );
    let listed = node
        .query()
        .list_events(pb::ListEventsRequest {
            subject_id: "SIM-NEW".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.events.is_empty());
    let config = scoring
        .get_config(pb::GetConfigRequest::default())
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(
        config.version, kept.version,
        "Simulate does not change the config"
    );
}

/// Two nodes sharing one MongoDB rule store (`make test-stack`): a rule activated on one is
/// scored with on the other within a second (it checks the store every
/// `pipeline.rules_refresh`, 500 ms by default), with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_activated_on_one_node_scores_on_another_on_mongodb() {
    let Some(env) = credence_tests::cluster::mongo_documents_env("rules shared by two nodes")
    else {
        return;
    };
    let options = || NodeOptions {
        env: env.clone(),
        ..NodeOptions::default()
    };
    let one = Node::start_with(options()).await.unwrap();
    let two = Node::start_with(options()).await.unwrap();

    let active = one
        .scoring()
        .set_rule_status(pb::SetRuleStatusRequest {
            rule_id: "mentoring".into(),
            status: pb::RuleStatus::Active as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .rule
        .unwrap();
    let activated = std::time::Instant::now();

    // One mentoring event on the other node every 100 ms, until one of them is scored by
    // the rule: the first that is shows when the other node made it live.
    for n in 0..30 {
        publish(&two, mentoring(&format!("2026-03-01T10:{n:02}:00Z"), n)).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // NOT_FOUND until the first event is scored.
        let scored = match two
            .scoring()
            .explain_score(pb::ExplainScoreRequest {
                subject_id: S.into(),
                ..Default::default()
            })
            .await
        {
            Ok(explained) => explained.into_inner().changes,
            Err(status) if status.code() == Code::NotFound => continue,
            Err(status) => panic!("{status:?}"),
        };
        if let Some(change) = scored.iter().find(|c| c.rule_id == "mentoring") {
            assert_eq!(change.rule_version, active.version);
            assert!(
                activated.elapsed() < std::time::Duration::from_millis(1_500),
                "live on the other node after {:?}",
                activated.elapsed()
            );
            return;
        }
    }
    panic!(
        "no mentoring event was scored by the activated rule on the other node within {:?}",
        activated.elapsed()
    );
}
