//! The worked example of SCORING.md through a real server, and every read API over its result:
//! GetScore, ExplainScore, GetScoreHistory, ListEvents, GetAggregates, GetTierDistribution,
//! ListSubjects and BatchGetScores.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use credence_proto::v1 as pb;
use credence_scorer as domain;
use credence_tests::events::{self, event, nanos_of, profile, ts};
use credence_tests::{Node, fixtures, wait};
use serde_json::json;

const S1: &str = "SUBJ-0000001";
const S2: &str = "SUBJ-0000002";
const S3: &str = "SUBJ-0000003";
const S4: &str = "SUBJ-0000004";

/// The subjects beside the worked example: a loan default (700, D), a bankruptcy (600, D)
/// and a generous anonymous donation (1036, C), all in February.
fn other_events() -> Vec<pb::Event> {
    vec![
        event(
            "f-201",
            S2,
            "financial",
            "loan_default",
            "2026-02-01T09:00:00Z",
            &json!({"amount": 25000}),
        ),
        event(
            "f-301",
            S3,
            "financial",
            "bankruptcy",
            "2026-02-02T09:00:00Z",
            &json!({}),
        ),
        event(
            "f-401",
            S4,
            "social",
            "charity_donation",
            "2026-02-03T09:00:00Z",
            &json!({"amount": 800, "anonymous": true}),
        ),
    ]
}

/// Sets the worked example up, publishes it, waits for it; returns the config version.
async fn set_up(node: &Node) -> u32 {
    let mut scoring = node.scoring();
    let config = scoring
        .put_config(pb::PutConfigRequest {
            config: Some(fixtures::worked_config()),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert!(
        config.version >= 2,
        "PutConfig makes a new version over the example's: {config:?}"
    );
    for id in ["late_payment", "volunteer_work"] {
        let rule = scoring
            .set_rule_status(pb::SetRuleStatusRequest {
                rule_id: id.into(),
                status: pb::RuleStatus::Retired as i32,
            })
            .await
            .unwrap()
            .into_inner()
            .rule
            .unwrap();
        assert_eq!(rule.status, pb::RuleStatus::Retired as i32, "{id}");
        assert_eq!(rule.version, 2, "{id}: retiring makes version 2");
    }
    for rule in [fixtures::late_rule(), fixtures::volunteer_rule()] {
        let stored = scoring
            .put_rule(pb::PutRuleRequest {
                rule: Some(rule.clone()),
            })
            .await
            .unwrap()
            .into_inner()
            .rule
            .unwrap();
        assert_eq!((stored.id.as_str(), stored.version), (rule.id.as_str(), 1));
    }
    let created = node
        .ingestion()
        .upsert_profiles(pb::UpsertProfilesRequest {
            profiles: vec![
                profile(S1, "north"),
                profile(S2, "south"),
                profile(S3, "north"),
                profile(S4, "east"),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((created.created, created.rejected), (4, 0), "{created:?}");

    let mut batch = fixtures::worked_events(S1);
    batch.extend(other_events());
    let response = node
        .ingestion()
        .publish_events(pb::PublishEventsRequest { events: batch })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (response.accepted, response.duplicates, response.rejected),
        (10, 0, 0),
        "{response:?}"
    );
    assert_eq!(response.results.len(), 10);
    for (i, r) in response.results.iter().enumerate() {
        assert_eq!(r.index as usize, i);
        assert_eq!(events::outcome(r), pb::EventOutcome::Accepted, "{r:?}");
    }
    // the last row of the table: e-007 again
    let again = fixtures::worked_events(S1).pop().unwrap();
    let response = node
        .ingestion()
        .publish_events(pb::PublishEventsRequest {
            events: vec![again],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (response.accepted, response.duplicates),
        (0, 1),
        "{response:?}"
    );
    assert_eq!(
        events::outcome(&response.results[0]),
        pb::EventOutcome::Duplicate
    );
    assert_eq!(response.results[0].event_id, "e-007");

    wait::scored(node, S1, 7).await.unwrap();
    for s in [S2, S3, S4] {
        wait::scored(node, s, 1).await.unwrap();
    }
    config.version
}

/// What the pure engine makes of the same events: final states and changes per subject.
fn expected(config_version: u32) -> (domain::Scorer, Vec<domain::ScoreChange>) {
    let mut scorer = domain::Scorer::new(fixtures::worked_engine(config_version));
    let mut out = domain::Outcomes::default();
    let mut all = fixtures::worked_events(S1);
    all.extend(other_events());
    all.push(fixtures::worked_events(S1).pop().unwrap());
    for e in &all {
        scorer.apply(&events::domain_event(e), &mut out);
    }
    (scorer, out.changes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worked_example_scores_as_documented_and_reads_back_everywhere() {
    let node = Node::start().await.unwrap();
    let config_version = set_up(&node).await;
    let (engine, changes) = expected(config_version);
    let mut scoring = node.scoring();
    let mut query = node.query();

    // --- GetScore: the table of SCORING.md, and the pure engine, to the bit
    let s1 = scoring
        .get_score(pb::GetScoreRequest {
            subject_id: S1.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .snapshot
        .unwrap();
    assert_eq!(s1.score, 910.0);
    assert_eq!(s1.tier, "C");
    assert_eq!(s1.applied_events, 7, "the duplicate is not counted");
    assert_eq!(s1.last_event_id, "e-007");
    assert_eq!(s1.last_event_time, Some(ts("2026-01-10T00:00:00Z")));
    assert_eq!(s1.config_version, config_version);
    assert!(s1.updated_at.is_some(), "updated_at is set");
    let expected_scores = [
        (S1, 910.0, "C"),
        (S2, 700.0, "D"),
        (S3, 600.0, "D"),
        (S4, 1036.0, "C"),
    ];
    for (subject, score, tier) in expected_scores {
        let snapshot = scoring
            .get_score(pb::GetScoreRequest {
                subject_id: subject.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .snapshot
            .unwrap();
        assert!(
            (snapshot.score - score).abs() < 1e-9,
            "{subject}: {snapshot:?}"
        );
        assert_eq!(snapshot.tier, tier, "{subject}");
        fixtures::assert_snapshot_matches(&snapshot, engine.state(subject).unwrap());
    }

    // --- ExplainScore: rule@version, delta, reason, old/new, time, config version
    let explained = scoring
        .explain_score(pb::ExplainScoreRequest {
            subject_id: S1.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(explained.snapshot.as_ref().map(|s| s.score), Some(910.0));
    assert!(explained.next_page_token.is_empty());
    let table = [
        (
            "e-001",
            "late",
            -50.0,
            1000.0,
            950.0,
            1.0,
            "2026-01-01T10:00:00Z",
        ),
        (
            "e-003",
            "late",
            -100.0,
            950.0,
            850.0,
            2.0,
            "2026-01-02T10:00:00Z",
        ),
        (
            "e-004",
            "volunteer",
            20.0,
            850.0,
            870.0,
            1.0,
            "2026-01-03T00:00:00Z",
        ),
        (
            "e-005",
            "volunteer",
            20.0,
            870.0,
            890.0,
            1.0,
            "2026-01-04T00:00:00Z",
        ),
        (
            "e-007",
            "volunteer",
            20.0,
            890.0,
            910.0,
            1.0,
            "2026-01-10T00:00:00Z",
        ),
    ];
    assert_eq!(
        explained.changes.len(),
        table.len(),
        "{:#?}",
        explained.changes
    );
    for (c, (event_id, rule, delta, old, new, factor, at)) in explained.changes.iter().zip(table) {
        assert_eq!(c.event_id, event_id);
        assert_eq!(c.subject_id, S1);
        assert_eq!(c.rule_id, rule, "{c:?}");
        assert_eq!(c.rule_version, 1, "{c:?}");
        assert_eq!(c.config_version, config_version, "{c:?}");
        assert_eq!(
            (c.delta, c.old_score, c.new_score, c.factor),
            (delta, old, new, factor),
            "{c:?}"
        );
        assert_eq!(c.at, Some(ts(at)), "{c:?}");
        let name = if rule == "late" {
            fixtures::late_rule().name
        } else {
            fixtures::volunteer_rule().name
        };
        assert_eq!(c.reason, name, "the reason is the rule's name");
    }
    // the engine made the same changes
    let engine_changes: Vec<_> = changes.iter().filter(|c| c.subject_id == S1).collect();
    assert_eq!(engine_changes.len(), explained.changes.len());
    for (mine, theirs) in engine_changes.iter().zip(&explained.changes) {
        assert_eq!(
            (mine.new_score.to_bits(), mine.delta.to_bits()),
            (theirs.new_score.to_bits(), theirs.delta.to_bits())
        );
    }
    // paging and the time filter
    let mut paged = Vec::new();
    let mut token = String::new();
    for page in 0.. {
        assert!(page < 10, "ExplainScore paging does not end");
        let r = scoring
            .explain_score(pb::ExplainScoreRequest {
                subject_id: S1.into(),
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.changes.len() <= 2);
        paged.extend(r.changes);
        token = r.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(paged, explained.changes, "pages of 2 give the same changes");
    let from_jan_3 = scoring
        .explain_score(pb::ExplainScoreRequest {
            subject_id: S1.into(),
            from: Some(ts("2026-01-03T00:00:00Z")),
            to: Some(ts("2026-01-10T00:00:00Z")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = from_jan_3
        .changes
        .iter()
        .map(|c| c.event_id.as_str())
        .collect();
    assert_eq!(ids, ["e-004", "e-005"], "from inclusive, to exclusive");

    // --- GetScoreHistory: one point per scored event (delta = sum of its rule deltas)
    let history = query
        .get_score_history(pb::GetScoreHistoryRequest {
            subject_id: S1.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let points: Vec<_> = history
        .points
        .iter()
        .map(|p| (p.event_id.as_str(), p.score, p.tier.as_str(), p.delta))
        .collect();
    assert_eq!(
        points,
        [
            ("e-001", 950.0, "C", -50.0),
            ("e-002", 950.0, "C", 0.0),
            ("e-003", 850.0, "D", -100.0),
            ("e-004", 870.0, "D", 20.0),
            ("e-005", 890.0, "D", 20.0),
            ("e-006", 890.0, "D", 0.0),
            ("e-007", 910.0, "C", 20.0),
        ]
    );
    assert_eq!(history.points[0].at, Some(ts("2026-01-01T10:00:00Z")));

    // --- ListEvents: accepted events, ordered by event time then id
    let listed = query
        .list_events(pb::ListEventsRequest {
            subject_id: S1.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = listed.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "e-001", "e-002", "e-003", "e-004", "e-005", "e-006", "e-007"
        ]
    );
    for (got, sent) in listed.events.iter().zip(fixtures::worked_events(S1)) {
        assert!(got.received_at.is_some(), "received_at is set: {got:?}");
        assert_eq!(got.occurred_at, sent.occurred_at);
        assert_eq!(
            (&got.event_type, &got.event_subtype),
            (&sent.event_type, &sent.event_subtype)
        );
        assert_eq!(got.payload, sent.payload, "payload round trip");
    }
    let social = query
        .list_events(pb::ListEventsRequest {
            subject_id: S1.into(),
            event_type: "social".into(),
            from: Some(ts("2026-01-04T00:00:00Z")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = social.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, ["e-005", "e-006", "e-007"]);
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let r = query
            .list_events(pb::ListEventsRequest {
                page_size: 4,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.events.len() <= 4);
        all.extend(r.events.into_iter().map(|e| e.event_id));
        token = r.next_page_token;
        if token.is_empty() || all.len() > 20 {
            break;
        }
    }
    assert_eq!(
        all.len(),
        10,
        "every accepted event once, over pages: {all:?}"
    );
    assert_eq!(all[7..], ["f-201", "f-301", "f-401"]);

    // --- GetAggregates
    let rows = aggregates(
        &node,
        pb::AggregateWindow::Day,
        pb::AggregateGroupBy::EventType,
        "2026-01-01T00:00:00Z",
        "2026-01-11T00:00:00Z",
        "",
    )
    .await;
    assert_eq!(
        rows,
        [
            (
                "2026-01-01T00:00:00Z".to_owned(),
                "financial".to_owned(),
                2,
                1,
                -50.0,
                0.0,
                -50.0
            ),
            (
                "2026-01-02T00:00:00Z".into(),
                "financial".into(),
                1,
                1,
                -100.0,
                0.0,
                -100.0
            ),
            (
                "2026-01-03T00:00:00Z".into(),
                "social".into(),
                1,
                1,
                20.0,
                20.0,
                0.0
            ),
            (
                "2026-01-04T00:00:00Z".into(),
                "social".into(),
                1,
                1,
                20.0,
                20.0,
                0.0
            ),
            (
                "2026-01-05T00:00:00Z".into(),
                "social".into(),
                1,
                0,
                0.0,
                0.0,
                0.0
            ),
            (
                "2026-01-10T00:00:00Z".into(),
                "social".into(),
                1,
                1,
                20.0,
                20.0,
                0.0
            ),
        ]
    );
    let hourly = aggregates(
        &node,
        pb::AggregateWindow::Hour,
        pb::AggregateGroupBy::Subject,
        "2026-01-01T00:00:00Z",
        "2026-01-02T00:00:00Z",
        S1,
    )
    .await;
    assert_eq!(
        hourly,
        [
            (
                "2026-01-01T10:00:00Z".to_owned(),
                S1.to_owned(),
                1,
                1,
                -50.0,
                0.0,
                -50.0
            ),
            (
                "2026-01-01T20:00:00Z".into(),
                S1.into(),
                1,
                0,
                0.0,
                0.0,
                0.0
            ),
        ]
    );
    let by_region = aggregates(
        &node,
        pb::AggregateWindow::Day,
        pb::AggregateGroupBy::Region,
        "2026-01-01T00:00:00Z",
        "2026-03-01T00:00:00Z",
        "",
    )
    .await;
    let feb: Vec<_> = by_region
        .iter()
        .filter(|r| r.0.starts_with("2026-02"))
        .cloned()
        .collect();
    assert_eq!(
        feb.iter()
            .map(|r| (r.0.as_str(), r.1.as_str(), r.2, r.3))
            .collect::<Vec<_>>(),
        [
            ("2026-02-01T00:00:00Z", "south", 1, 1),
            ("2026-02-02T00:00:00Z", "north", 1, 1),
            ("2026-02-03T00:00:00Z", "east", 1, 1),
        ]
    );
    assert!(
        (feb[2].4 - 36.0).abs() < 1e-9 && feb[0].6 == -300.0 && feb[1].6 == -400.0,
        "{feb:?}"
    );
    assert_eq!(
        by_region.iter().map(|r| r.2).sum::<u64>(),
        10,
        "every event counted once"
    );
    assert!(
        by_region
            .iter()
            .filter(|r| r.0.starts_with("2026-01"))
            .all(|r| r.1 == "north")
    );

    // --- GetTierDistribution: every tier of the config, lowest first
    let dist = query
        .get_tier_distribution(pb::GetTierDistributionRequest::default())
        .await
        .unwrap()
        .into_inner();
    let counts: Vec<_> = dist
        .tiers
        .iter()
        .map(|t| (t.tier.as_str(), t.min_score, t.subjects))
        .collect();
    assert_eq!(
        counts,
        [
            ("E", 0.0, 0),
            ("D", 600.0, 2),
            ("C", 900.0, 2),
            ("B", 1100.0, 0),
            ("A", 1300.0, 0)
        ]
    );
    assert_eq!(dist.total_subjects, 4);
    let north = query
        .get_tier_distribution(pb::GetTierDistributionRequest {
            region: "north".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let counts: Vec<_> = north.tiers.iter().map(|t| t.subjects).collect();
    assert_eq!((counts, north.total_subjects), (vec![0, 1, 1, 0, 0], 2));

    // --- ListSubjects: filters and paging
    let list =
        |region: &str, tier: &str, min: Option<f64>, max: Option<f64>| pb::ListSubjectsRequest {
            region: region.into(),
            tier: tier.into(),
            min_score: min,
            max_score: max,
            ..Default::default()
        };
    let cases = [
        (list("", "", None, None), vec![S1, S2, S3, S4]),
        (list("north", "", None, None), vec![S1, S3]),
        (list("", "D", None, None), vec![S2, S3]),
        (list("", "", Some(900.0), None), vec![S1, S4]),
        (list("", "", None, Some(700.0)), vec![S2, S3]),
        (list("", "", Some(650.0), Some(950.0)), vec![S1, S2]),
        (list("north", "C", None, None), vec![S1]),
        (list("west", "", None, None), vec![]),
    ];
    for (request, want) in cases {
        let got = query
            .list_subjects(request.clone())
            .await
            .unwrap()
            .into_inner();
        let ids: Vec<_> = got.subjects.iter().map(|s| s.subject_id.as_str()).collect();
        assert_eq!(ids, want, "{request:?}");
    }
    let everyone = query
        .list_subjects(list("", "", None, None))
        .await
        .unwrap()
        .into_inner();
    let s1_row = &everyone.subjects[0];
    assert_eq!(
        (s1_row.region.as_str(), s1_row.score, s1_row.tier.as_str()),
        ("north", 910.0, "C")
    );
    assert_eq!(s1_row.display_name, format!("Synthetic {S1}"));
    assert_eq!(s1_row.last_event_time, Some(ts("2026-01-10T00:00:00Z")));
    let mut paged = Vec::new();
    let mut token = String::new();
    for _ in 0..10 {
        let r = query
            .list_subjects(pb::ListSubjectsRequest {
                page_size: 1,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.subjects.len() <= 1);
        paged.extend(r.subjects.into_iter().map(|s| s.subject_id));
        token = r.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(paged, [S1, S2, S3, S4], "pages of one");

    // --- BatchGetScores: request order, missing ones named
    let batch = scoring
        .batch_get_scores(pb::BatchGetScoresRequest {
            subject_ids: vec![S4.into(), S1.into(), "SUBJ-NOBODY".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = batch
        .snapshots
        .iter()
        .map(|s| s.subject_id.as_str())
        .collect();
    assert_eq!(ids, [S4, S1]);
    assert_eq!(batch.missing_subject_ids, ["SUBJ-NOBODY"]);
    assert_eq!(batch.snapshots[1].score, 910.0);

    // the duplicate never got applied, even later
    let s1 = wait::scored(&node, S1, 7).await.unwrap();
    assert_eq!(s1.applied_events, 7);
}

type Row = (String, String, u64, u64, f64, f64, f64);

async fn aggregates(
    node: &Node,
    window: pb::AggregateWindow,
    group_by: pb::AggregateGroupBy,
    from: &str,
    to: &str,
    subject: &str,
) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut token = String::new();
    for _ in 0..50 {
        let r = node
            .query()
            .get_aggregates(pb::GetAggregatesRequest {
                window: window as i32,
                group_by: group_by as i32,
                from: Some(ts(from)),
                to: Some(ts(to)),
                subject_id: subject.into(),
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.rows.len() <= 2, "page_size is respected");
        rows.extend(r.rows.into_iter().map(|row| {
            let start = row.window_start.unwrap();
            let start = domain::Timestamp::from_nanos(nanos_of(&start)).to_rfc3339();
            (
                start,
                row.key,
                row.events,
                row.changes,
                row.delta_sum,
                row.delta_positive,
                row.delta_negative,
            )
        }));
        token = r.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    rows
}
