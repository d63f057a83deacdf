//! Rule files: the example rule set, YAML and JSON round trips, errors that say where.

#![allow(
    clippy::unwrap_used,
    reason = "a test fails loudly on an unexpected error"
)]

use credence_scorer::{EXAMPLE_RULES_YAML, RuleFile, RuleStatus, ScorerError, ScoringConfig};

#[test]
fn the_example_rule_set_is_realistic_and_valid() {
    let file = RuleFile::example().unwrap();
    assert!(file.rules.len() >= 20, "{} rules", file.rules.len());
    for event_type in ["financial", "social", "online"] {
        assert!(
            file.rules
                .iter()
                .filter(|r| r.event_type == event_type)
                .count()
                >= 5,
            "{event_type}"
        );
    }
    let has = |f: &dyn Fn(&credence_scorer::Rule) -> bool| file.rules.iter().any(f);
    assert!(has(&|r| r.status == RuleStatus::Draft));
    assert!(has(&|r| r.status == RuleStatus::Retired));
    assert!(has(&|r| r.cooldown.is_some()));
    assert!(has(&|r| r.cap.is_some()));
    assert!(has(&|r| r.valid_from.is_some() && r.valid_until.is_some()));
    assert!(has(&|r| !r.multipliers.is_empty()));
    for path in [
        "subject.flags",
        "subject.lists",
        "subject.association",
        "subject.score",
    ] {
        let reads = |r: &credence_scorer::Rule| {
            r.conditions
                .iter()
                .chain(r.multipliers.iter().map(|m| &m.when))
                .any(|c| c.field == path)
        };
        assert!(has(&reads), "no rule reads {path}");
    }
    let engine = file.engine(1).unwrap();
    assert_eq!(engine.rules().active_count(), file.rules.len() - 2);
}

#[test]
fn yaml_and_json_round_trip() {
    let file = RuleFile::example().unwrap();
    let yaml = file.to_yaml_string().unwrap();
    assert_eq!(RuleFile::from_yaml_str(&yaml, "again.yaml").unwrap(), file);
    let json = file.to_json_string().unwrap();
    assert_eq!(RuleFile::from_json_str(&json, "again.json").unwrap(), file);

    let dir = tempfile::tempdir().unwrap();
    for name in ["rules.yaml", "rules.json"] {
        let path = dir.path().join(name);
        file.save(&path).unwrap();
        assert_eq!(RuleFile::load(&path).unwrap(), file, "{name}");
    }
}

#[test]
fn an_invalid_rule_set_is_never_written() {
    let mut file = RuleFile::example().unwrap();
    file.rules[0].points = f64::NAN;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.json");
    let error = file.save(&path).unwrap_err().to_string();
    assert!(error.contains("points: must be a finite number"), "{error}");
    assert!(!path.exists());
}

#[test]
fn a_file_without_config_gets_the_default_config() {
    let file = RuleFile::from_yaml_str(
        "rules:\n  - {id: r, event_type: x, points: 1, status: active, cooldown: 1d}\n",
        "small.yaml",
    )
    .unwrap();
    assert_eq!(file.config, ScoringConfig::default());
    assert_eq!(file.rules[0].version, 1);
}

#[test]
fn bad_files_say_what_and_where() {
    let parse = |text: &str| {
        RuleFile::from_yaml_str(text, "bad.yaml")
            .unwrap_err()
            .to_string()
    };
    assert!(
        parse("rules:\n  - {id: r, event_type: x, points: 1, colour: red}\n").contains("colour")
    );
    assert!(
        parse("rules:\n  - {id: r, event_type: x, points: 1, cooldown: soon}\n")
            .contains("not a duration")
    );
    assert!(parse("rules:\n  - {id: r, event_type: x, points: 1, conditions: [{field: payload.a, op: like, value: 1}]}\n").contains("like"));
    assert_eq!(
        parse(
            "rules:\n  - {id: r, event_type: x, points: 1, conditions: [{field: payload.a, op: in, value: 1}]}\n"
        ),
        "rule \"r\": conditions[0].value: In needs a list, got a number"
    );
    assert!(parse("config: {baseline: 5000}\n").starts_with("config: baseline:"));
    assert!(parse("rules: [").starts_with("bad.yaml:"));
    let missing = RuleFile::load(std::path::Path::new("/nonexistent/rules.yaml")).unwrap_err();
    assert!(matches!(missing, ScorerError::Io { .. }));
}

#[test]
fn the_example_text_is_what_the_crate_ships() {
    assert!(EXAMPLE_RULES_YAML.contains("id: late_payment"));
}

#[test]
fn the_readme_rule_file_example_parses() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme.find("```yaml\n").expect("README has a yaml example") + "```yaml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let file = RuleFile::from_yaml_str(&readme[start..end], "README.md").unwrap();
    assert_eq!(file.config, ScoringConfig::default());
    assert_eq!(file.rules.len(), 1);
}
