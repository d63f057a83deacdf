//! `simulate_locally` against a real node's `Simulate` (feature `local`): the example rule
//! file, events and contexts give the same answer to the bit, and a bad request the same
//! refusal.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::path::{Path, PathBuf};

use common::{at, node_and_client};
use credence::{Event, ListEntry, ListKind, Location, Profile, Rule, Simulation, SimulationResult};
use serde_json::Value;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// The JSON lines of a file in the repository.
fn lines(path: &str) -> Vec<Value> {
    std::fs::read_to_string(repo(path))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

/// `docs/examples/events.jsonl` as SDK events.
fn example_events() -> Vec<Event> {
    lines("docs/examples/events.jsonl")
        .iter()
        .map(|e| {
            let mut event = Event::new(
                text(e, "event_id"),
                text(e, "subject_id"),
                text(e, "event_type"),
                at(e["occurred_at"].as_str().unwrap()),
            )
            .subtype(text(e, "event_subtype"))
            .source_system(text(e, "source_system"))
            .payload(e["payload"].clone());
            if let Some(l) = e.get("location") {
                event = event.location(Location {
                    region: text(l, "region"),
                    district: text(l, "district"),
                    ..Location::default()
                });
            }
            event
        })
        .collect()
}

/// The example rule file, events and contexts (profiles, list entries, associations).
fn example_simulation() -> Simulation {
    let file = credence::load_rule_file(repo("scorer/rules/example.yaml")).unwrap();
    let mut simulation = Simulation {
        rules: file.rules,
        config: Some(file.config),
        events: example_events(),
        ..Simulation::default()
    };
    for c in lines("docs/examples/contexts.jsonl") {
        let subject = text(&c, "subject_id");
        if let Some(p) = c.get("profile") {
            simulation.profiles.push(Profile {
                region: text(p, "region"),
                district: text(p, "district"),
                occupation: text(p, "occupation"),
                birth_year: i32::try_from(p["birth_year"].as_i64().unwrap_or_default()).unwrap(),
                flags: serde_json::from_value(p["flags"].clone()).unwrap_or_default(),
                ..Profile::new(&subject)
            });
        }
        for l in c["lists"].as_array().into_iter().flatten() {
            let kind = match l["kind"].as_str() {
                Some("block") => ListKind::Block,
                _ => ListKind::Allow,
            };
            let mut entry = ListEntry::new(&subject, kind);
            if let Some(t) = l["expires_at"].as_str() {
                entry = entry.expires_at(at(t));
            }
            simulation.list_entries.push(entry);
        }
        if let Some(a) = c["association"].as_f64() {
            simulation.associations.insert(subject, a);
        }
    }
    simulation
}

/// The result with the snapshots' `updated_at` (the time of each run) checked and cleared.
fn without_run_times(mut result: SimulationResult) -> SimulationResult {
    for s in &mut result.snapshots {
        assert!(s.updated_at.is_some(), "{s:?}");
        s.updated_at = None;
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_simulation_is_the_nodes_to_the_bit() {
    let (_node, client) = node_and_client().await;
    let simulation = example_simulation();
    assert!(simulation.rules.len() > 10 && !simulation.profiles.is_empty());
    assert!(!simulation.list_entries.is_empty() && !simulation.associations.is_empty());

    let remote = without_run_times(client.simulate(&simulation).await.unwrap());
    let local = without_run_times(credence::simulate_locally(&simulation).unwrap());
    assert!(remote.changes.len() > 10, "{remote:?}");
    assert!(!remote.alerts.is_empty(), "{remote:?}");
    // `==` on f64 is exact; the bits say it again for the scores and deltas.
    assert_eq!(local, remote);
    let bits = |r: &SimulationResult| -> Vec<u64> {
        r.snapshots
            .iter()
            .map(|s| s.score.to_bits())
            .chain(r.changes.iter().map(|c| c.delta.to_bits()))
            .chain(r.final_state.iter().map(|s| s.score.to_bits()))
            .collect()
    };
    assert_eq!(bits(&local), bits(&remote));

    // From the final state on, both continue alike too.
    let next = Simulation {
        initial_state: local.final_state.clone(),
        events: example_events(),
        ..simulation
    };
    assert_eq!(
        without_run_times(credence::simulate_locally(&next).unwrap()),
        without_run_times(client.simulate(&next).await.unwrap())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_simulation_is_refused_with_the_nodes_message() {
    let (_node, client) = node_and_client().await;
    let bad_cap = Rule::new("capped", "sdk", 1.0).cap(0, std::time::Duration::from_secs(60));
    for simulation in [
        Simulation {
            rules: vec![Rule::new("nan", "sdk", f64::NAN)],
            ..Simulation::default()
        },
        Simulation {
            rules: vec![Rule::new("ok", "sdk", 1.0), bad_cap],
            ..Simulation::default()
        },
        Simulation {
            initial_state: vec![credence::proto::SubjectState::default()],
            ..Simulation::default()
        },
    ] {
        let remote = client.simulate(&simulation).await.unwrap_err();
        let local = credence::simulate_locally(&simulation).unwrap_err();
        assert!(
            matches!(remote, credence::Error::InvalidArgument { .. }),
            "{remote:?}"
        );
        assert_eq!(local.code(), remote.code());
        assert_eq!(local.message(), remote.message());
        assert_eq!(local.attempts(), 0);
    }
}
