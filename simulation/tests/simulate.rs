//! `simulate` through its public API: the offline engine's numbers to the bit, and refusals
//! that name the request field at fault.

use credence_proto::v1 as pb;
use credence_scorer::{Event, EventOutcome, Outcomes, RuleFile, Scorer, SubjectContext, Timestamp};
use credence_simulation::convert;
use credence_simulation::{MAX_EVENTS, SimulationError, simulate};

const EVENTS: &str = include_str!("../../docs/examples/events.jsonl");
const CONTEXTS: &str = include_str!("../../docs/examples/contexts.jsonl");

#[derive(serde::Deserialize)]
struct ContextLine {
    subject_id: String,
    #[serde(flatten)]
    context: SubjectContext,
}

fn lines<T: serde::de::DeserializeOwned>(text: &str) -> Vec<T> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("the example files are valid JSON lines"))
        .collect()
}

fn event_to_pb(e: &Event) -> pb::Event {
    pb::Event {
        event_id: e.event_id.clone(),
        subject_id: e.subject_id.clone(),
        event_type: e.event_type.clone(),
        event_subtype: e.event_subtype.clone(),
        source_system: e.source_system.clone(),
        occurred_at: Some(convert::timestamp_to_pb(e.occurred_at)),
        location: e.location.as_ref().map(|l| pb::Location {
            region: l.region.clone(),
            district: l.district.clone(),
            ..Default::default()
        }),
        payload: Some(convert::payload_to_pb(&e.payload)),
        ..Default::default()
    }
}

/// The request the example files make: the example rule file, its events and contexts.
fn example_request(
    file: &RuleFile,
    events: &[Event],
    contexts: &[ContextLine],
) -> pb::SimulateRequest {
    let mut request = pb::SimulateRequest {
        rules: file.rules.iter().map(convert::rule_to_pb).collect(),
        config: Some(convert::config_to_pb(&file.config)),
        events: events.iter().map(event_to_pb).collect(),
        ..Default::default()
    };
    for line in contexts {
        let c = &line.context;
        if let Some(p) = &c.profile {
            request.profiles.push(pb::Profile {
                subject_id: line.subject_id.clone(),
                region: p.region.clone().unwrap_or_default(),
                district: p.district.clone().unwrap_or_default(),
                occupation: p.occupation.clone().unwrap_or_default(),
                birth_year: p.birth_year.unwrap_or_default(),
                flags: p.flags.clone(),
                ..Default::default()
            });
        }
        for entry in &c.lists {
            request.list_entries.push(pb::ListEntry {
                subject_id: line.subject_id.clone(),
                kind: convert::list_kind_to_pb(entry.kind).into(),
                expires_at: entry.expires_at.map(convert::timestamp_to_pb),
                ..Default::default()
            });
        }
        if let Some(a) = c.association {
            request.associations.insert(line.subject_id.clone(), a);
        }
    }
    request
}

#[test]
fn the_example_files_give_the_offline_engines_numbers_to_the_bit() {
    let file = RuleFile::example().unwrap();
    let events: Vec<Event> = lines(EVENTS);
    let contexts: Vec<ContextLine> = lines(CONTEXTS);
    assert!(
        contexts
            .iter()
            .all(|c| c.context.profile.is_some() || !c.context.lists.is_empty()),
        "the contexts exercise profiles and lists"
    );

    // `credence simulate`'s way: the scorer over the domain types.
    let mut scorer = Scorer::new(file.engine(1).unwrap());
    for line in &contexts {
        scorer.set_context(&line.subject_id, line.context.clone());
    }
    let mut out = Outcomes::default();
    let outcomes: Vec<_> = events.iter().map(|e| scorer.apply(e, &mut out)).collect();
    let mut states: Vec<_> = scorer.states().collect();
    states.sort_by(|a, b| a.subject_id.cmp(&b.subject_id));

    let before = Timestamp::now();
    let response = simulate(&example_request(&file, &events, &contexts)).unwrap();

    let expected: Vec<_> = outcomes
        .iter()
        .map(|o| match o {
            EventOutcome::Applied { .. } => pb::EventOutcome::Accepted,
            EventOutcome::Duplicate => pb::EventOutcome::Duplicate,
            EventOutcome::TooLate => pb::EventOutcome::TooLate,
            EventOutcome::UnknownSubject => pb::EventOutcome::Rejected,
        })
        .collect();
    let got: Vec<_> = response
        .results
        .iter()
        .map(pb::EventResult::outcome)
        .collect();
    assert_eq!(got, expected);
    assert!(
        got.contains(&pb::EventOutcome::Duplicate),
        "e-007 is sent twice"
    );
    let changes: Vec<_> = out
        .changes
        .iter()
        .map(convert::score_change_to_pb)
        .collect();
    assert!(changes.len() > 10, "{}", changes.len());
    assert_eq!(response.changes, changes);
    let alerts: Vec<_> = out.alerts.iter().map(convert::alert_to_pb).collect();
    assert_eq!(response.alerts, alerts);
    let final_state: Vec<_> = states.iter().map(|s| convert::state_to_pb(s)).collect();
    assert_eq!(response.final_state, final_state);
    for (snapshot, state) in response.snapshots.iter().zip(&states) {
        let at = convert::timestamp("updated_at", snapshot.updated_at.as_ref().unwrap()).unwrap();
        assert!(at >= before, "updated_at is the time of the run");
        assert_eq!(snapshot, &convert::snapshot_to_pb(state, at));
        assert_eq!(snapshot.score.to_bits(), state.score.to_bits());
    }
    assert_eq!(response.snapshots.len(), states.len());
}

fn event(id: &str, subject: &str, seconds: i64) -> pb::Event {
    pb::Event {
        event_id: id.into(),
        subject_id: subject.into(),
        event_type: "financial".into(),
        event_subtype: "late_payment".into(),
        occurred_at: Some(prost_types::Timestamp { seconds, nanos: 0 }),
        ..Default::default()
    }
}

#[test]
fn refusals_name_the_request_field_at_fault() {
    let refused = |request: pb::SimulateRequest| simulate(&request).unwrap_err().to_string();
    let rule = pb::Rule {
        id: "r".into(),
        event_type: "financial".into(),
        cap: Some(pb::Cap {
            max: 1,
            window: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        refused(pb::SimulateRequest {
            rules: vec![pb::Rule::default(), rule],
            ..Default::default()
        }),
        "rules[1].cap.window: is required"
    );
    assert_eq!(
        refused(pb::SimulateRequest {
            config: Some(pb::ScoringConfig {
                dedup_horizon: Some(prost_types::Duration {
                    seconds: -1,
                    nanos: 0
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        "config.dedup_horizon: must not be negative"
    );
    assert_eq!(
        refused(pb::SimulateRequest {
            list_entries: vec![pb::ListEntry {
                subject_id: "S".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        "list_entries[0].kind: is required: LIST_KIND_BLOCK or LIST_KIND_ALLOW"
    );
    assert_eq!(
        refused(pb::SimulateRequest {
            initial_state: vec![pb::SubjectState::default()],
            ..Default::default()
        }),
        "initial_state[0].subject_id: is required"
    );
    // What the engine refuses comes with the rule's id.
    let engine_refused = simulate(&pb::SimulateRequest {
        rules: vec![pb::Rule {
            id: "r".into(),
            event_type: "financial".into(),
            points: f64::NAN,
            ..Default::default()
        }],
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        matches!(engine_refused, SimulationError::Scorer(_)),
        "{engine_refused:?}"
    );
    assert!(
        engine_refused.to_string().starts_with("rule \"r\": points"),
        "{engine_refused}"
    );
    let too_many = simulate(&pb::SimulateRequest {
        events: vec![pb::Event::default(); MAX_EVENTS + 1],
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(
        too_many.to_string(),
        format!(
            "events: at most {MAX_EVENTS} per simulation, not {}",
            MAX_EVENTS + 1
        )
    );
}

#[test]
fn an_event_that_cannot_be_scored_is_refused_in_its_result() {
    let config = pb::ScoringConfig {
        auto_create_subjects: Some(false),
        ..convert::config_to_pb(&credence_scorer::ScoringConfig::default())
    };
    let start = pb::SubjectState {
        subject_id: "KNOWN".into(),
        score: 1000.0,
        tier: "C".into(),
        ..Default::default()
    };
    let day = 86_400;
    let response = simulate(&pb::SimulateRequest {
        config: Some(config),
        initial_state: vec![start],
        events: vec![
            event("a", "KNOWN", 1_767_225_600),
            event("a", "KNOWN", 1_767_225_600),
            event("b", "KNOWN", 1_767_225_600 - 60 * day),
            event("c", "NEW", 1_767_225_600),
            pb::Event {
                occurred_at: None,
                ..event("d", "KNOWN", 0)
            },
        ],
        ..Default::default()
    })
    .unwrap();
    let results: Vec<_> = response
        .results
        .iter()
        .map(|r| (r.index, r.event_id.as_str(), r.outcome(), r.reason.as_str()))
        .collect();
    assert_eq!(
        results,
        [
            (0, "a", pb::EventOutcome::Accepted, ""),
            (
                1,
                "a",
                pb::EventOutcome::Duplicate,
                "event_id \"a\" was applied before"
            ),
            (
                2,
                "b",
                pb::EventOutcome::TooLate,
                "occurred_at 2025-11-02T00:00:00Z is at or before the subject's dedup floor"
            ),
            (
                3,
                "c",
                pb::EventOutcome::Rejected,
                "subject_id: \"NEW\" has no initial state and auto_create_subjects is off"
            ),
            (
                4,
                "d",
                pb::EventOutcome::Rejected,
                "occurred_at: is required"
            ),
        ]
    );
    assert_eq!(response.final_state.len(), 1, "no subject was created");
}
