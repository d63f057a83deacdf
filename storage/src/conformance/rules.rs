//! Rules and scoring configs: versioned, old versions readable.

#![allow(clippy::wildcard_imports, reason = "the suite's shared helpers")]

use super::*;

/// Rule writes get version latest + 1 unless they carry a higher one, old versions stay
/// readable, the rule-set version grows with every write; configs are versioned the same way.
pub async fn rules_and_configs_are_versioned(stores: Stores) {
    let r = &stores.rules;
    assert_eq!(r.get_config(None).await.expect("no config"), None);
    let v0 = r.rule_set_version().await.expect("rule set version");
    let mut late = Rule::new("late", "financial", -25.5);
    late.version = 0; // 0: always the next version
    late.status = RuleStatus::Active;
    assert_eq!(r.put_rule(late.clone()).await.expect("put v1").version, 1);
    let v1 = r.rule_set_version().await.expect("rule set version");
    assert!(v1 > v0, "rule set version must grow: {v0} then {v1}");
    let mut late2 = late.clone();
    late2.points = -30.0;
    late2.name = "Late payment".into();
    late2.version = 1; // not above the latest: the next one
    assert_eq!(r.put_rule(late2.clone()).await.expect("put v2").version, 2);
    let v2 = r.rule_set_version().await.expect("rule set version");
    assert!(v2 > v1, "rule set version must grow: {v1} then {v2}");
    let mut late7 = late2.clone();
    late7.version = 7; // above the latest: kept
    assert_eq!(r.put_rule(late7).await.expect("put v7").version, 7);
    let v3 = r.rule_set_version().await.expect("rule set version");
    assert!(v3 > v2, "rule set version must grow: {v2} then {v3}");
    let mut late8 = late2.clone();
    late8.version = 3;
    assert_eq!(r.put_rule(late8).await.expect("put v8").version, 8);
    let alpha = Rule::new("alpha", "social", 3.0);
    assert_eq!(r.put_rule(alpha).await.expect("put alpha").version, 1);
    assert!(r.rule_set_version().await.expect("rule set version") > v3);

    let latest = r
        .get_rule("late", None)
        .await
        .expect("get")
        .expect("latest exists");
    assert_eq!(
        (latest.version, latest.points, latest.name.as_str()),
        (8, -30.0, "Late payment")
    );
    let first = r
        .get_rule("late", Some(1))
        .await
        .expect("get v1")
        .expect("v1 exists");
    assert_eq!(first, Rule { version: 1, ..late });
    let second = r
        .get_rule("late", Some(2))
        .await
        .expect("get v2")
        .expect("v2 exists");
    assert_eq!(
        second,
        Rule {
            version: 2,
            ..late2
        }
    );
    assert_eq!(r.get_rule("late", Some(3)).await.expect("get v3"), None);
    assert_eq!(r.get_rule("nope", None).await.expect("get unknown"), None);

    let ids = |rules: Vec<Rule>| {
        rules
            .into_iter()
            .map(|r| (r.id, r.version))
            .collect::<Vec<_>>()
    };
    let late_id = |v| ("late".to_owned(), v);
    assert_eq!(
        ids(r.list_rules(false).await.expect("list latest")),
        vec![("alpha".to_owned(), 1), late_id(8)]
    );
    assert_eq!(
        ids(r.list_rules(true).await.expect("list all")),
        vec![
            ("alpha".to_owned(), 1),
            late_id(1),
            late_id(2),
            late_id(7),
            late_id(8)
        ]
    );

    let config = ScoringConfig {
        version: 0,
        baseline: 1000.5,
        ..ScoringConfig::default()
    };
    assert_eq!(
        r.put_config(config.clone())
            .await
            .expect("config 1")
            .version,
        1
    );
    let second = ScoringConfig {
        version: 5,
        baseline: 900.25,
        ..config.clone()
    };
    assert_eq!(
        r.put_config(second.clone())
            .await
            .expect("config 5")
            .version,
        5
    );
    let third = ScoringConfig {
        version: 2,
        baseline: 950.0,
        ..config.clone()
    };
    assert_eq!(
        r.put_config(third.clone()).await.expect("config 6").version,
        6
    );
    assert_eq!(
        r.get_config(None).await.expect("latest config"),
        Some(ScoringConfig {
            version: 6,
            ..third
        })
    );
    assert_eq!(r.get_config(Some(5)).await.expect("config 5"), Some(second));
    assert_eq!(
        r.get_config(Some(1)).await.expect("config 1"),
        Some(ScoringConfig {
            version: 1,
            ..config
        })
    );
    assert_eq!(r.get_config(Some(2)).await.expect("config 2"), None);
}
