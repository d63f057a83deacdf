//! `credence dev`'s demo: within a minute of the start, the demo world is on the node
//! (people with fake national ids, their relations), its events are scored, and the status
//! line reports rates, tiers, and duplicates and malformed events refused exactly.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::time::{Duration, Instant};

use credence_proto::v1 as pb;
use credence_tests::{Node, NodeOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_world_is_published_and_scored_within_a_minute() {
    let node = Node::start_with(NodeOptions {
        demo: true,
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    // Two status lines: the first may come before anything was scored.
    let status = loop {
        let log = node.log_tail(400);
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.starts_with("demo: ") && l.contains("events/s sent"))
            .collect();
        if lines.len() >= 2 {
            break lines[lines.len() - 1].to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no demo status within 90 s:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(status.contains(" scored/s, lag "), "{status}");
    assert!(status.contains("| tiers "), "{status}");
    assert!(!status.contains("otherwise than expected"), "{status}");

    let tiers = node
        .query()
        .get_tier_distribution(pb::GetTierDistributionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(tiers.total_subjects > 100, "scored subjects: {tiers:?}");

    let profile = node
        .query()
        .get_profile(pb::GetProfileRequest {
            subject_id: "CIT-0000000".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .profile
        .expect("the demo's first person has a profile");
    let national_id = &profile.attributes["national_id"];
    assert_eq!(national_id.len(), 10, "{profile:?}");
    assert!(
        !profile.region.is_empty() && !profile.display_name.is_empty(),
        "{profile:?}"
    );
    let neighbours = node
        .graph()
        .get_neighbors(pb::GetNeighborsRequest {
            subject_id: "CIT-0000000".into(),
            depth: 1,
            kinds: vec![],
            limit: 50,
        })
        .await
        .unwrap()
        .into_inner()
        .neighbors;
    assert!(!neighbours.is_empty(), "a family, colleagues or friends");
}
