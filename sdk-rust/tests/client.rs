//! Every typed method of the client against a real `credence dev` node.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::time::Duration;

use common::{at, late, node_and_client, scored, settle};
use credence::{
    AggregateGroupBy, AggregateQuery, AggregateWindow, Client, Condition, EventOutcome, EventQuery,
    ExplainQuery, HistoryQuery, ListEntry, ListEntryQuery, ListKind, NeighborQuery, Operator,
    Profile, ProfileOutcome, Relation, RelationKind, Rule, RuleQuery, RuleStatus, Simulation,
    SubjectQuery,
};
use credence_tests::Node;
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::json;

/// Ingestion and every query, through a client with gzip and a bearer token on (the node
/// ignores the token today; the header must not disturb it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingestion_and_queries_with_gzip() {
    let node = Node::start().await.unwrap();
    let client = Client::builder(&node.endpoint())
        .gzip(true)
        .auth_token("synthetic-token")
        .keep_alive(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();

    // profiles: created, then updated; one refused
    let profiles = [
        Profile::new("SDK-1")
            .display_name("Synthetic One")
            .region("north")
            .flag("student")
            .consent("scoring", true)
            .attribute("segment", "a"),
        Profile::new("SDK-2").region("south"),
    ];
    let created = client.upsert_profiles(&profiles).await.unwrap();
    assert_eq!((created.created, created.updated), (2, 0), "{created:?}");
    let again = client
        .upsert_profiles(&[profiles[0].clone(), Profile::new("")])
        .await
        .unwrap();
    assert_eq!(again.results[0].outcome, ProfileOutcome::Updated);
    assert_eq!(again.results[1].outcome, ProfileOutcome::Rejected);
    assert!(again.results[1].reason.contains("subject_id"), "{again:?}");

    // events: accepted, duplicate, rejected, one by one
    let first = late("sdk-e1", "SDK-1", "2026-01-01T10:00:00Z", 45);
    let published = client
        .publish_events(&[
            first.clone(),
            first.clone(),
            credence::Event::new("sdk-bad", "SDK-1", "", at("2026-01-01T10:00:00Z")),
        ])
        .await
        .unwrap();
    let outcomes: Vec<_> = published.results.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            EventOutcome::Accepted,
            EventOutcome::Duplicate,
            EventOutcome::Rejected
        ]
    );
    assert!(
        published.results[2].reason.contains("event_type"),
        "{published:?}"
    );

    // a stream of two batches
    let summary = client
        .stream_events(&[
            vec![late("sdk-e2", "SDK-1", "2026-01-03T10:00:00Z", 5)],
            vec![
                late("sdk-e3", "SDK-2", "2026-01-03T11:00:00Z", 5),
                late("sdk-e1", "SDK-1", "2026-01-01T10:00:00Z", 45),
            ],
        ])
        .await
        .unwrap();
    assert_eq!(
        (summary.batches, summary.accepted, summary.duplicates),
        (2, 2, 1),
        "{summary:?}"
    );
    assert_eq!(summary.not_accepted[0].event_id, "sdk-e1");
    assert_eq!(summary.not_accepted[0].index, 2, "counted over the stream");

    let snapshot = scored(&client, "SDK-1", 2).await;
    assert!(
        snapshot.score < 1000.0,
        "late payments lower it: {snapshot:?}"
    );
    scored(&client, "SDK-2", 1).await;

    // profile + score
    let view = client.get_profile("SDK-1").await.unwrap();
    let profile = view.profile.unwrap();
    assert_eq!(profile.region, "north");
    assert_eq!(profile.flags, ["student"]);
    assert_eq!(profile.attributes["segment"], "a");
    assert!(profile.updated_at.is_some());
    assert_eq!(view.snapshot.unwrap().subject_id, "SDK-1");

    // batch scores, with a missing subject
    let (found, missing) = client
        .batch_get_scores(&["SDK-1", "SDK-2", "SDK-none"])
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(missing, ["SDK-none"]);

    // subjects, a page at a time and as a stream
    let page = client
        .list_subjects(&SubjectQuery {
            page_size: 1,
            ..SubjectQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(page.next_page_token.is_some());
    let ids: Vec<String> = client
        .list_subjects_stream(SubjectQuery {
            page_size: 1,
            ..SubjectQuery::default()
        })
        .map_ok(|s| s.subject_id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ids, ["SDK-1", "SDK-2"]);
    let north: Vec<_> = client
        .list_subjects_stream(SubjectQuery {
            region: Some("north".into()),
            ..SubjectQuery::default()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(north.len(), 1);
    assert_eq!(north[0].display_name, "Synthetic One");

    // history
    let history: Vec<_> = client
        .get_score_history_stream(HistoryQuery {
            page_size: 1,
            ..HistoryQuery::new("SDK-1")
        })
        .try_collect()
        .await
        .unwrap();
    let events: Vec<&str> = history.iter().map(|p| p.event_id.as_str()).collect();
    assert_eq!(events, ["sdk-e1", "sdk-e2"]);
    assert_eq!(history[0].at, at("2026-01-01T10:00:00Z"));
    let first_page = client
        .get_score_history(&HistoryQuery {
            page_size: 1,
            ..HistoryQuery::new("SDK-1")
        })
        .await
        .unwrap();
    assert_eq!(first_page.items, history[..1]);

    // archived events: the payload comes back as the JSON sent
    let archived: Vec<_> = client
        .list_events_stream(EventQuery {
            subject_id: Some("SDK-1".into()),
            page_size: 1,
            ..EventQuery::default()
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(archived.len(), 2, "{archived:?}");
    assert_eq!(archived[0].payload, first.payload);
    assert_eq!(archived[0].occurred_at, first.occurred_at);
    assert!(archived[0].received_at.is_some());
    let one = client
        .list_events(&EventQuery {
            event_type: Some("financial".into()),
            page_size: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(one.items.len(), 3);
    assert_eq!(one.next_page_token, None);

    // tiers, aggregates, explanation, SQL
    let tiers = client.get_tier_distribution(None).await.unwrap();
    assert_eq!(tiers.total_subjects, 2);
    assert_eq!(tiers.tiers.iter().map(|t| t.subjects).sum::<u64>(), 2);
    let south = client.get_tier_distribution(Some("south")).await.unwrap();
    assert_eq!(south.total_subjects, 1);
    let rows: Vec<_> = client
        .get_aggregates_stream(AggregateQuery::new(
            AggregateWindow::Day,
            AggregateGroupBy::EventType,
            at("2025-12-01T00:00:00Z"),
            at("2026-02-01T00:00:00Z"),
        ))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.iter().map(|r| r.events).sum::<u64>(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r.key == "financial"), "{rows:?}");
    let page = client
        .get_aggregates(&AggregateQuery {
            subject_id: Some("SDK-2".into()),
            ..AggregateQuery::new(
                AggregateWindow::Hour,
                AggregateGroupBy::Subject,
                at("2026-01-01T00:00:00Z"),
                at("2026-01-04T00:00:00Z"),
            )
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].key, "SDK-2");

    let explanation = client
        .explain_score(&ExplainQuery::new("SDK-1"))
        .await
        .unwrap();
    assert_eq!(explanation.changes.len(), 2);
    assert_eq!(explanation.changes[0].rule_id, "late_payment");
    assert_eq!(
        explanation.changes[0].factor, 2.0,
        "45 days late doubles it"
    );
    let streamed: Vec<_> = client
        .explain_score_stream(ExplainQuery {
            page_size: 1,
            ..ExplainQuery::new("SDK-1")
        })
        .try_collect()
        .await
        .unwrap();
    assert_eq!(streamed, explanation.changes);

    let sql = client
        .run_analytics(
            "select subject_id, count(*) as n from events group by 1 order by 1",
            Some(10),
            Some(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    assert_eq!(sql.rows, 2);
    let batches = sql.record_batches().unwrap();
    assert_eq!(
        batches
            .iter()
            .map(arrow::array::RecordBatch::num_rows)
            .sum::<usize>(),
        2
    );
    assert_eq!(batches[0].schema().field(0).name(), "subject_id");
}

/// Rules, config, simulation, lists and alerts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_config_simulation_lists_and_alerts() {
    let (_node, client) = node_and_client().await;

    // config: read, change, read a version back
    let config = client.get_config(None).await.unwrap();
    assert!(
        config.version >= 1 && !config.tiers.is_empty(),
        "{config:?}"
    );
    let mut changed = config.clone();
    changed.alert_thresholds = vec![500.0, 800.0];
    let stored = client.put_config(&changed).await.unwrap();
    assert_eq!(stored.version, config.version + 1);
    assert_eq!(stored.alert_thresholds, [500.0, 800.0]);
    assert_eq!(stored.half_life, config.half_life);
    let old = client.get_config(Some(config.version)).await.unwrap();
    assert_eq!(old.alert_thresholds, config.alert_thresholds);

    // rules: put, get, status, list
    let rule = Rule::new("sdk_rule", "sdk", 7.0)
        .name("SDK rule")
        .description("a rule written by the SDK test")
        .subtype("ping")
        .status(RuleStatus::Active)
        .condition(Condition::new("payload.n", Operator::Gte, 1))
        .multiplier(Condition::new("payload.tags", Operator::Contains, "x"), 3.0)
        .cooldown(Duration::from_secs(60))
        .cap(5, Duration::from_secs(86_400))
        .valid(Some(at("2020-01-01T00:00:00Z")), None)
        .priority(3);
    let put = client.put_rule(&rule).await.unwrap();
    assert_eq!(put.version, 1);
    assert!(put.updated_at.is_some());
    let got = client.get_rule("sdk_rule", None).await.unwrap();
    assert_eq!(got, put);
    assert_eq!(got.conditions, rule.conditions);
    assert_eq!(got.multipliers, rule.multipliers);
    assert_eq!(got.cap, rule.cap);
    assert_eq!(got.cooldown, rule.cooldown);
    let retired = client
        .set_rule_status("sdk_rule", RuleStatus::Retired)
        .await
        .unwrap();
    assert_eq!((retired.status, retired.version), (RuleStatus::Retired, 2));
    assert_eq!(
        client.get_rule("sdk_rule", Some(1)).await.unwrap().status,
        RuleStatus::Active
    );
    let list = client
        .list_rules(&RuleQuery {
            event_type: Some("sdk".into()),
            all_versions: true,
            ..RuleQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(list.rules.len(), 2, "{list:?}");
    assert!(list.rule_set_version > 0);
    let active: Vec<_> = client
        .list_rules_stream(RuleQuery {
            status: Some(RuleStatus::Active),
            page_size: 3,
            ..RuleQuery::default()
        })
        .try_collect()
        .await
        .unwrap();
    assert!(
        active.len() > 3,
        "the example rules are active: {}",
        active.len()
    );
    assert!(active.iter().all(|r| r.status == RuleStatus::Active));

    // a dry run: the rule applies with its multiplier, nothing is stored
    let simulation = Simulation {
        rules: vec![rule.clone().status(RuleStatus::Active)],
        config: Some(config.clone()),
        events: vec![
            credence::Event::new("sim-1", "SIM-1", "sdk", at("2026-02-01T00:00:00Z"))
                .subtype("ping")
                .payload(json!({"n": 2, "tags": ["x"]})),
        ],
        ..Simulation::default()
    };
    let result = client.simulate(&simulation).await.unwrap();
    assert_eq!(result.results[0].outcome, EventOutcome::Accepted);
    assert_eq!(result.changes.len(), 1);
    assert_eq!(result.changes[0].delta, 21.0);
    assert_eq!(result.snapshots[0].score, config.baseline + 21.0);
    assert_eq!(result.final_state.len(), 1);
    let again = client
        .simulate(&Simulation {
            initial_state: result.final_state.clone(),
            events: vec![
                credence::Event::new("sim-2", "SIM-1", "sdk", at("2026-02-01T00:00:30Z"))
                    .subtype("ping")
                    .payload(json!({"n": 2})),
            ],
            ..simulation.clone()
        })
        .await
        .unwrap();
    assert!(
        again.changes.is_empty(),
        "the cooldown holds from the given state"
    );
    assert!(matches!(
        client.get_score("SIM-1").await,
        Err(credence::Error::NotFound { .. })
    ));

    // lists
    let entry = client
        .put_list_entry(
            &ListEntry::new("SDK-L", ListKind::Block)
                .reason("synthetic case")
                .expires_at(at("2099-01-01T00:00:00Z")),
        )
        .await
        .unwrap();
    assert!(entry.created_at.is_some());
    assert_eq!(entry.expires_at, Some(at("2099-01-01T00:00:00Z")));
    client
        .put_list_entry(&ListEntry::new("SDK-M", ListKind::Block))
        .await
        .unwrap();
    let blocked: Vec<_> = client
        .list_list_entries_stream(ListEntryQuery {
            kind: Some(ListKind::Block),
            page_size: 1,
            ..ListEntryQuery::default()
        })
        .map_ok(|e| e.subject_id)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(blocked, ["SDK-L", "SDK-M"]);
    let page = client
        .list_list_entries(&ListEntryQuery {
            subject_id: Some("SDK-L".into()),
            ..ListEntryQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items[0].reason, "synthetic case");
    assert!(
        client
            .remove_list_entry("SDK-L", ListKind::Block)
            .await
            .unwrap()
    );
    assert!(
        !client
            .remove_list_entry("SDK-L", ListKind::Block)
            .await
            .unwrap()
    );

    // alerts: a bankruptcy takes a subject from C to D
    let mut alerts = client.watch_alerts(&["SDK-A"], &[]).await.unwrap();
    settle().await;
    let bankruptcy =
        credence::Event::new("sdk-a1", "SDK-A", "financial", at("2026-06-01T00:00:00Z"))
            .subtype("bankruptcy");
    client.publish_events(&[bankruptcy]).await.unwrap();
    let alert = tokio::time::timeout(Duration::from_secs(30), alerts.next())
        .await
        .expect("an alert within 30 s")
        .expect("the stream is open")
        .unwrap();
    assert_eq!(alert.subject_id, "SDK-A");
    assert_eq!(
        (alert.old_tier.as_str(), alert.new_tier.as_str()),
        ("C", "D")
    );
    assert_eq!(alert.event_id, "sdk-a1");
}

/// Relations, neighbours, paths and association.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph() {
    let (_node, client) = node_and_client().await;
    let relations = [
        Relation::new("SG-A", "SG-B", RelationKind::Friend),
        Relation::new("SG-B", "SG-C", RelationKind::Colleague).weight(0.5),
        Relation::new("SG-C", "SG-D", RelationKind::Family)
            .weight(0.8)
            .since(at("2020-01-01T00:00:00Z")),
        Relation::new("SG-A", "SG-A", RelationKind::Friend),
    ];
    let put = client.put_relations(&relations).await.unwrap();
    assert_eq!(put.upserted, 3);
    assert_eq!(put.rejected.len(), 1);
    assert_eq!(put.rejected[0].0, 3);

    let neighbors = client
        .get_neighbors(
            "SG-A",
            &NeighborQuery {
                depth: 3,
                ..NeighborQuery::default()
            },
        )
        .await
        .unwrap();
    let reached: Vec<(&str, u32)> = neighbors
        .neighbors
        .iter()
        .map(|n| (n.subject_id.as_str(), n.depth))
        .collect();
    assert_eq!(reached, [("SG-B", 1), ("SG-C", 2), ("SG-D", 3)]);
    assert_eq!(
        neighbors.neighbors[2].path,
        ["SG-B", "SG-C", "SG-D"],
        "the path from the start, the start left out"
    );
    assert_eq!(neighbors.neighbors[2].kind, RelationKind::Family);
    let friends = client
        .get_neighbors(
            "SG-A",
            &NeighborQuery {
                depth: 3,
                kinds: vec![RelationKind::Friend],
                limit: 0,
            },
        )
        .await
        .unwrap();
    assert_eq!(friends.neighbors.len(), 1);

    let path = client.find_path("SG-A", "SG-D", 5, &[]).await.unwrap();
    assert!(path.found);
    let steps: Vec<_> = path.steps.iter().map(|s| s.subject_id.as_str()).collect();
    assert_eq!(steps, ["SG-B", "SG-C", "SG-D"]);
    assert_eq!(path.steps[1].kind, RelationKind::Colleague);
    let none = client
        .find_path("SG-A", "SG-D", 5, &[RelationKind::Friend])
        .await
        .unwrap();
    assert!(!none.found);

    // SG-B scored below the baseline pulls SG-A's association down
    client
        .publish_events(&[late("sg-e1", "SG-B", "2026-01-01T10:00:00Z", 45)])
        .await
        .unwrap();
    scored(&client, "SG-B", 1).await;
    let association = client.get_association("SG-A", 2, &[]).await.unwrap();
    assert!(association.association < 0.0, "{association:?}");
    assert_eq!(association.contributors[0].subject_id, "SG-B");
    assert!(association.attenuation > 0.0);

    let removed = client
        .remove_relations(&[relations[0].key(), relations[0].key()])
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let after = client
        .get_neighbors("SG-A", &NeighborQuery::default())
        .await
        .unwrap();
    assert!(after.neighbors.is_empty(), "{after:?}");
}

/// The generated clients stay reachable for what the typed ones do not cover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_clients_share_the_channel() {
    let (_node, client) = node_and_client().await;
    let mut raw =
        credence::proto::scoring_service_client::ScoringServiceClient::new(client.channel());
    let config = raw
        .get_config(credence::proto::GetConfigRequest { version: 0 })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(
        config.version,
        client.get_config(None).await.unwrap().version
    );
}
