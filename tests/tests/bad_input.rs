//! Bad input: per-event rejections with index, id and reason while the rest of the batch is
//! accepted; duplicates; unknown subjects with auto-create off; requests refused as a whole;
//! and error statuses that say what is wrong.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::{SystemTime, UNIX_EPOCH};

use credence_proto::v1 as pb;
use credence_tests::events::{event, outcome, to_value, ts, ts_nanos};
use credence_tests::{Node, fixtures, wait};
use prost_types::value::Kind;
use serde_json::json;
use tonic::Code;

const S: &str = "SUBJ-BAD-1";

fn ok(id: &str) -> pb::Event {
    event(
        id,
        S,
        "social",
        "community_service",
        "2026-08-01T00:00:00Z",
        &json!({}),
    )
}

fn deep_payload(levels: usize) -> prost_types::Struct {
    let mut value = to_value(&json!(1));
    for _ in 0..levels {
        let mut s = prost_types::Struct::default();
        s.fields.insert("k".into(), value);
        value = prost_types::Value {
            kind: Some(Kind::StructValue(s)),
        };
    }
    let mut payload = prost_types::Struct::default();
    payload.fields.insert("deep".into(), value);
    payload
}

async fn publish(
    node: &Node,
    events: Vec<pb::Event>,
) -> Result<pb::PublishEventsResponse, tonic::Status> {
    node.ingestion()
        .publish_events(pb::PublishEventsRequest { events })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_rejected_one_by_one() {
    let node = Node::start().await.unwrap();
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let with = |f: &dyn Fn(&mut pb::Event)| {
        let mut e = ok("placeholder");
        f(&mut e);
        e
    };
    // (event, expected outcome, words one of which the reason must contain)
    let cases: Vec<(pb::Event, pb::EventOutcome, &[&str])> = vec![
        (ok("ok-1"), pb::EventOutcome::Accepted, &[]),
        (
            with(&|e| e.event_id = String::new()),
            pb::EventOutcome::Rejected,
            &["event_id"],
        ),
        (
            with(&|e| {
                e.event_id = "no-subject".into();
                e.subject_id = String::new();
            }),
            pb::EventOutcome::Rejected,
            &["subject_id"],
        ),
        (
            with(&|e| {
                e.event_id = "no-type".into();
                e.event_type = String::new();
            }),
            pb::EventOutcome::Rejected,
            &["event_type"],
        ),
        (
            with(&|e| {
                e.event_id = "no-time".into();
                e.occurred_at = None;
            }),
            pb::EventOutcome::Rejected,
            &["occurred_at"],
        ),
        (
            with(&|e| {
                e.event_id = "future".into();
                e.occurred_at = Some(ts_nanos(now_ns + 2 * 3_600_000_000_000));
            }),
            pb::EventOutcome::Rejected,
            &["occurred_at"],
        ),
        (
            with(&|e| {
                e.event_id = "year-10000".into();
                e.occurred_at = Some(prost_types::Timestamp {
                    seconds: 253_402_300_800,
                    nanos: 0,
                });
            }),
            pb::EventOutcome::Rejected,
            &["occurred_at"],
        ),
        (
            with(&|e| {
                e.event_id = "bad-nanos".into();
                e.occurred_at = Some(prost_types::Timestamp {
                    seconds: 1_780_000_000,
                    nanos: 1_500_000_000,
                });
            }),
            pb::EventOutcome::Rejected,
            &["occurred_at"],
        ),
        (
            with(&|e| {
                e.event_id = "before-1970".into();
                e.occurred_at = Some(ts("1960-01-01T00:00:00Z"));
            }),
            pb::EventOutcome::Rejected,
            &["occurred_at"],
        ),
        (
            with(&|e| {
                e.event_id = "too-deep".into();
                e.payload = Some(deep_payload(12));
            }),
            pb::EventOutcome::Rejected,
            &["payload"],
        ),
        (
            with(&|e| {
                e.event_id = "too-large".into();
                e.payload = Some(credence_tests::events::to_struct(
                    &json!({"blob": "x".repeat(100 * 1024)}),
                ));
            }),
            pb::EventOutcome::Rejected,
            &["payload"],
        ),
        (
            with(&|e| e.event_id = "i".repeat(200)),
            pb::EventOutcome::Rejected,
            &["event_id"],
        ),
        (ok("ok-2"), pb::EventOutcome::Accepted, &[]),
    ];
    let events: Vec<_> = cases.iter().map(|c| c.0.clone()).collect();
    let response = publish(&node, events.clone()).await.unwrap();
    assert_eq!(response.results.len(), cases.len());
    assert_eq!(
        (response.accepted, response.duplicates, response.rejected),
        (2, 0, cases.len() as u32 - 2),
        "{response:#?}"
    );
    for (i, ((sent, want, words), got)) in cases.iter().zip(&response.results).enumerate() {
        assert_eq!(got.index as usize, i);
        assert_eq!(got.event_id, sent.event_id, "the result echoes the id");
        assert_eq!(outcome(got), *want, "#{i} {}: {got:?}", sent.event_id);
        if *want == pb::EventOutcome::Rejected {
            let reason = got.reason.to_lowercase();
            assert!(
                words.iter().any(|w| reason.contains(w)),
                "#{i}: reason {reason:?} should name one of {words:?}"
            );
        } else {
            assert!(got.reason.is_empty());
        }
    }
    let snapshot = wait::scored(&node, S, 2).await.unwrap();
    let listed = node
        .query()
        .list_events(pb::ListEventsRequest {
            subject_id: S.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = listed.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(
        ids,
        ["ok-1", "ok-2"],
        "only the accepted events were stored"
    );

    // duplicates: across batches and inside one; never scored twice
    let response = publish(&node, vec![ok("ok-1"), ok("ok-3"), ok("ok-3")])
        .await
        .unwrap();
    let outcomes: Vec<_> = response.results.iter().map(outcome).collect();
    assert_eq!(
        outcomes,
        [
            pb::EventOutcome::Duplicate,
            pb::EventOutcome::Accepted,
            pb::EventOutcome::Duplicate
        ]
    );
    assert_eq!((response.accepted, response.duplicates), (1, 2));
    wait::scored(&node, S, 3).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let after = wait::scored(&node, S, 3).await.unwrap();
    assert_eq!(after.applied_events, 3, "the duplicates were not applied");
    assert!(snapshot.applied_events == 2);

    // unknown subjects with auto-create off: rejected; known ones still accepted
    let mut config = fixtures::worked_config();
    config.auto_create_subjects = Some(false);
    node.scoring()
        .put_config(pb::PutConfigRequest {
            config: Some(config),
        })
        .await
        .unwrap();
    let unknown = event(
        "who-1",
        "SUBJ-UNKNOWN",
        "social",
        "community_service",
        "2026-08-02T00:00:00Z",
        &json!({}),
    );
    let known = event(
        "known-1",
        S,
        "social",
        "community_service",
        "2026-08-03T00:00:00Z",
        &json!({}),
    );
    let response = publish(&node, vec![unknown, known]).await.unwrap();
    assert_eq!(
        outcome(&response.results[0]),
        pb::EventOutcome::Rejected,
        "{response:?}"
    );
    assert!(
        response.results[0].reason.contains("SUBJ-UNKNOWN")
            || response.results[0].reason.contains("subject"),
        "{response:?}"
    );
    assert_eq!(
        outcome(&response.results[1]),
        pb::EventOutcome::Accepted,
        "{response:?}"
    );
    wait::scored(&node, S, 4).await.unwrap();
    let err = node
        .scoring()
        .get_score(pb::GetScoreRequest {
            subject_id: "SUBJ-UNKNOWN".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_requests_refused_with_a_clear_status() {
    let node = Node::start().await.unwrap();

    // larger than the 16 MiB message limit
    let blob = "y".repeat(60 * 1024);
    let big: Vec<_> = (0..300)
        .map(|i| {
            let mut e = ok(&format!("big-{i}"));
            e.payload = Some(credence_tests::events::to_struct(&json!({"blob": blob})));
            e
        })
        .collect();
    let err = publish(&node, big).await.unwrap_err();
    assert!(
        matches!(err.code(), Code::ResourceExhausted | Code::OutOfRange),
        "{err:?}"
    );
    let msg = err.message().to_lowercase();
    assert!(
        msg.contains("large")
            || msg.contains("size")
            || msg.contains("limit")
            || msg.contains("bytes"),
        "{msg:?}"
    );

    // more events than a batch may hold
    let many: Vec<_> = (0..10_001).map(|i| ok(&format!("many-{i}"))).collect();
    let err = publish(&node, many).await.unwrap_err();
    assert!(
        matches!(
            err.code(),
            Code::InvalidArgument | Code::ResourceExhausted | Code::OutOfRange
        ),
        "{err:?}"
    );
    assert!(
        err.message().contains("10000")
            || err.message().contains("10,000")
            || err.message().contains("10001"),
        "{err:?}"
    );

    // the server is fine afterwards and stored none of it
    let r = publish(&node, vec![ok("after")]).await.unwrap();
    assert_eq!(r.accepted, 1);
    let s = wait::scored(&node, S, 1).await.unwrap();
    assert_eq!(s.applied_events, 1);

    // every error status names what is wrong
    let mut scoring = node.scoring();
    let mut query = node.query();
    let err = scoring
        .get_score(pb::GetScoreRequest {
            subject_id: "SUBJ-NOBODY".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("SUBJ-NOBODY"), "{err:?}");
    let err = scoring
        .get_score(pb::GetScoreRequest {
            subject_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("subject_id"), "{err:?}");
    let err = scoring
        .get_rule(pb::GetRuleRequest {
            rule_id: "nope".into(),
            version: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("nope"), "{err:?}");
    let err = query
        .list_subjects(pb::ListSubjectsRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_token"), "{err:?}");
    // page_size is at most 1000: refused naming it, or cut to 1000
    match query
        .list_subjects(pb::ListSubjectsRequest {
            page_size: 5000,
            ..Default::default()
        })
        .await
    {
        Ok(r) => assert!(r.into_inner().subjects.len() <= 1000),
        Err(err) => {
            assert_eq!(err.code(), Code::InvalidArgument);
            assert!(err.message().contains("page_size"), "{err:?}");
        }
    }
    let err = query
        .get_aggregates(pb::GetAggregatesRequest {
            window: 0,
            group_by: pb::AggregateGroupBy::Subject as i32,
            from: Some(ts("2026-01-01T00:00:00Z")),
            to: Some(ts("2026-02-01T00:00:00Z")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("window"), "{err:?}");
    let err = query
        .get_aggregates(pb::GetAggregatesRequest {
            window: pb::AggregateWindow::Day as i32,
            group_by: pb::AggregateGroupBy::Subject as i32,
            from: None,
            to: Some(ts("2026-02-01T00:00:00Z")),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("from"), "{err:?}");
    let err = node
        .graph()
        .get_neighbors(pb::GetNeighborsRequest {
            subject_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("subject_id"), "{err:?}");
    let err = node
        .ingestion()
        .upsert_profiles(pb::UpsertProfilesRequest {
            profiles: vec![pb::Profile::default()],
        })
        .await;
    match err {
        Ok(r) => {
            let r = r.into_inner();
            assert_eq!(r.rejected, 1);
            assert!(r.results[0].reason.contains("subject_id"), "{r:?}");
        }
        Err(e) => {
            assert_eq!(e.code(), Code::InvalidArgument);
            assert!(e.message().contains("subject_id"), "{e:?}");
        }
    }
}

/// `needle` in `bytes` replaced by `with` (same length): an encoding no encoder would write.
fn replaced(mut bytes: Vec<u8>, needle: &[u8], with: &[u8]) -> Vec<u8> {
    assert_eq!(needle.len(), with.len());
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the needle is in the encoding");
    bytes[at..at + needle.len()].copy_from_slice(with);
    bytes
}

const PUBLISH: &str = "/credence.v1.IngestionService/PublishEvents";

/// A payload nested past the protobuf decoder's recursion limit, or holding a string that
/// is not UTF-8, is that event's problem: it is REJECTED with the reason and the others of
/// its batch are accepted (before, the whole request failed INTERNAL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_payload_rejects_its_event_and_the_batch_goes_on() {
    use prost::Message as _;
    let node = Node::start().await.unwrap();
    let mut too_deep = ok("nested-past-the-decoder");
    too_deep.payload = Some(deep_payload(120));
    let mut not_utf8 = ok("payload-not-utf8");
    not_utf8.payload = Some(credence_tests::events::to_struct(
        &json!({"k": "MARK-1234"}),
    ));
    let request = pb::PublishEventsRequest {
        events: vec![ok("decodes-1"), too_deep, not_utf8, ok("decodes-2")],
    };
    let body = replaced(request.encode_to_vec(), b"MARK-1234", b"\xc3\x28RK-1234");
    assert!(pb::PublishEventsRequest::decode(body.as_slice()).is_err());
    let r: pb::PublishEventsResponse =
        credence_tests::raw::unary(node.channel().await.unwrap(), PUBLISH, body)
            .await
            .unwrap();
    assert_eq!((r.accepted, r.rejected), (2, 2), "{r:?}");
    let reasons: Vec<(&str, &str)> = r
        .results
        .iter()
        .filter(|x| outcome(x) == pb::EventOutcome::Rejected)
        .map(|x| (x.event_id.as_str(), x.reason.as_str()))
        .collect();
    assert_eq!(reasons[0].0, "nested-past-the-decoder");
    assert!(reasons[0].1.contains("recursion limit"), "{reasons:?}");
    assert_eq!(reasons[1].0, "payload-not-utf8");
    assert!(reasons[1].1.contains("UTF-8"), "{reasons:?}");
    for (id, reason) in &reasons {
        assert!(reason.starts_with("payload: "), "{id}: {reason}");
    }
    wait::scored(&node, S, 2).await.unwrap();
}

/// Bytes that are not the request message are INVALID_ARGUMENT, not INTERNAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_the_request_are_invalid_argument() {
    use prost::Message as _;
    let node = Node::start().await.unwrap();
    let channel = node.channel().await.unwrap();
    let bad_id = replaced(
        pb::PublishEventsRequest {
            events: vec![ok("ID-MARK")],
        }
        .encode_to_vec(),
        b"ID-MARK",
        b"\xff\xfe-MARK",
    );
    for (method, body) in [
        (PUBLISH, b"\xff\xff\xff\xff\xff\xff\xff".to_vec()),
        (PUBLISH, bad_id),
        (
            "/credence.v1.ScoringService/GetRule",
            vec![0x0a, 0x02, 0xc3, 0x28],
        ),
        (
            "/credence.v1.QueryService/ListSubjects",
            vec![0x0b, 0x0c, 0x0d],
        ),
    ] {
        let err =
            credence_tests::raw::unary::<pb::PublishEventsResponse>(channel.clone(), method, body)
                .await
                .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{method}: {err:?}");
        assert!(err.message().contains("protobuf"), "{method}: {err:?}");
    }
    // and the node still takes a good batch
    assert_eq!(publish(&node, vec![ok("fine")]).await.unwrap().accepted, 1);
}

/// Forged page tokens, on every paged RPC: INVALID_ARGUMENT naming the token as invalid,
/// quoting at most a short prefix of it (a 10,000-character token used to come back whole,
/// and `p-1` reached DuckDB as a negative OFFSET and came back INTERNAL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_page_tokens_are_invalid_argument_and_never_echoed_whole() {
    let node = Node::start().await.unwrap();
    assert_eq!(publish(&node, vec![ok("paged")]).await.unwrap().accepted, 1);
    wait::scored(&node, S, 1).await.unwrap();
    let long = "A".repeat(10_000);
    let from = Some(ts("2026-01-01T00:00:00Z"));
    let to = Some(ts("2027-01-01T00:00:00Z"));
    for token in ["p-1", "1", "1AAAA", "-1", long.as_str(), "1\u{0}\u{ffff}"] {
        let token = token.to_owned();
        let mut query = node.query();
        let mut scoring = node.scoring();
        let answers: Vec<(&str, Result<(), tonic::Status>)> = vec![
            (
                "ListSubjects",
                query
                    .list_subjects(pb::ListSubjectsRequest {
                        page_token: token.clone(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
            (
                "GetScoreHistory",
                query
                    .get_score_history(pb::GetScoreHistoryRequest {
                        subject_id: S.into(),
                        page_token: token.clone(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
            (
                "ListEvents",
                query
                    .list_events(pb::ListEventsRequest {
                        subject_id: S.into(),
                        page_token: token.clone(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
            (
                "GetAggregates",
                query
                    .get_aggregates(pb::GetAggregatesRequest {
                        window: pb::AggregateWindow::Day as i32,
                        group_by: pb::AggregateGroupBy::Subject as i32,
                        from,
                        to,
                        page_token: token.clone(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
            (
                "ListRules",
                scoring
                    .list_rules(pb::ListRulesRequest {
                        page_token: token.clone(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
            (
                "ExplainScore",
                scoring
                    .explain_score(pb::ExplainScoreRequest {
                        subject_id: S.into(),
                        page_token: token.clone(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
            (
                "ListListEntries",
                scoring
                    .list_list_entries(pb::ListListEntriesRequest {
                        page_token: token.clone(),
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            ),
        ];
        let shown: String = token.chars().take(12).collect();
        for (rpc, answer) in answers {
            let err = answer.expect_err(&format!("{rpc} took the token {shown:?}"));
            assert_eq!(
                err.code(),
                Code::InvalidArgument,
                "{rpc} {shown:?}: {err:?}"
            );
            assert!(
                err.message().contains("page_token"),
                "{rpc}: names the field: {err:?}"
            );
            assert!(
                err.message().len() < 400 && !err.message().contains(&"A".repeat(40)),
                "{rpc}: at most a short prefix of the token: {} bytes",
                err.message().len()
            );
        }
    }

    // Ids the node does not know are quoted short too.
    let mut scoring = node.scoring();
    let answers = [
        scoring
            .get_score(pb::GetScoreRequest {
                subject_id: long.clone(),
            })
            .await
            .map(drop),
        scoring
            .get_rule(pb::GetRuleRequest {
                rule_id: long.clone(),
                version: 0,
            })
            .await
            .map(drop),
        node.query()
            .get_profile(pb::GetProfileRequest {
                subject_id: long.clone(),
            })
            .await
            .map(drop),
    ];
    for answer in answers {
        let err = answer.unwrap_err();
        assert!(
            err.message().len() < 400 && !err.message().contains(&"A".repeat(60)),
            "{} bytes: {:?}",
            err.message().len(),
            err.message().get(..100)
        );
    }
}
