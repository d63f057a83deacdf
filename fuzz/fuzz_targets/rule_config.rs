//! Rule and config validation, from every way they come in: `PutRule`, `PutConfig` and
//! `Simulate` requests (decoded by the server's codec, converted and validated as the
//! handlers do), and rule files in YAML or JSON (`RuleFile`). The first byte picks which.
//! Nothing may panic; and:
//! - a rule or config that validates survives the trip to the contract and back unchanged;
//! - a rule file that validates compiles into an engine, and reads back the same from the
//!   YAML or JSON it writes.
#![no_main]

use credence_proto::codec::decode_message;
use credence_proto::v1 as pb;
use credence_scorer::{RuleFile, RuleSet, ScoringConfig, validate_config, validate_rule};
use credence_simulation::convert;
use libfuzzer_sys::fuzz_target;

fn rule(bytes: &[u8]) {
    let Ok(request) = decode_message::<pb::PutRuleRequest>(bytes) else {
        return;
    };
    let Some(r) = request.rule else { return };
    let Ok(rule) = convert::rule(&r) else { return };
    if validate_rule(&rule).is_err() {
        return;
    }
    let back = match convert::rule(&convert::rule_to_pb(&rule)) {
        Ok(back) => back,
        Err(e) => panic!("a valid rule does not convert back from the contract: {e}"),
    };
    assert_eq!(
        back, rule,
        "a valid rule changed on its way through the contract"
    );
    if let Err(e) = RuleSet::compile(1, vec![rule]) {
        panic!("a valid rule does not compile: {e}");
    }
}

fn config(bytes: &[u8]) {
    let Ok(request) = decode_message::<pb::PutConfigRequest>(bytes) else {
        return;
    };
    let Some(c) = request.config else { return };
    let current = ScoringConfig::default();
    let Ok(config) = convert::config(&c, &current) else {
        return;
    };
    if validate_config(&config).is_err() {
        return;
    }
    let back = match convert::config(&convert::config_to_pb(&config), &current) {
        Ok(back) => back,
        Err(e) => panic!("a valid config does not convert back from the contract: {e}"),
    };
    assert_eq!(
        back, config,
        "a valid config changed on its way through the contract"
    );
}

fn file(text: &str, json: bool) {
    let parsed = if json {
        RuleFile::from_json_str(text, "fuzz.json")
    } else {
        RuleFile::from_yaml_str(text, "fuzz.yaml")
    };
    let Ok(file) = parsed else { return };
    if let Err(e) = file.engine(1) {
        panic!("a rule file that validates does not compile: {e}");
    }
    let again = if json {
        file.to_json_string()
            .and_then(|t| RuleFile::from_json_str(&t, "again.json"))
    } else {
        file.to_yaml_string()
            .and_then(|t| RuleFile::from_yaml_str(&t, "again.yaml"))
    };
    match again {
        Ok(again) => assert_eq!(
            again, file,
            "a rule file changed when written and read back"
        ),
        Err(e) => panic!("a valid rule file does not read back what it writes: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => rule(bytes),
        1 => config(bytes),
        2 => {
            if let Ok(request) = decode_message::<pb::SimulateRequest>(bytes) {
                let _ = credence_simulation::simulate(&request);
            }
        }
        3 => {
            if let Ok(text) = std::str::from_utf8(bytes) {
                file(text, false);
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(bytes) {
                file(text, true);
            }
        }
    }
});
