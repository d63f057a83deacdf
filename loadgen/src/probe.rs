//! End-to-end latency, from publishing an event to its score being visible to a reader.
//!
//! **Method: probes beside the load.** A handful of probe subjects of the run's own
//! (`probe-<run>-<n>`, given profiles first so the scorer applies their events) get one
//! ordinary event every `every` (two a second by default). For each, the clock starts just
//! before `PublishEvents` and stops when `GetScore` of its subject first shows that event
//! as the subject's last (`last_event_id`), read again every 1 ms, doubling to at most 8 ms
//! while it is not there yet. A probe event travels the same path as every event of the
//! load (same connections' server, same partitions, same micro-batches), so it waits
//! behind whatever the load makes wait, and it is what a client reading scores sees.
//!
//! Why this does not distort what it measures: the probes add two events a second and a
//! few hundred small reads to a load of thousands of events a second, and the load's own
//! events are not timed (stamping every event would need a reader per event, which would
//! be most of the work). What it does not see: a probe is one sample every `every`, so a
//! stall shorter than that may fall between two probes; the resolution is the poll
//! interval (1 to 8 ms); a probe not visible within `timeout` is counted as lost, not as a
//! latency.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use credence_proto::client::Bearer;
use credence_proto::v1 as pb;
use credence_proto::v1::ingestion_service_client::IngestionServiceClient;
use credence_proto::v1::scoring_service_client::ScoringServiceClient;
use tonic::transport::Channel;

use crate::generate::{Rng, payload, source_system};
use crate::latency::Latencies;

/// How the probes run.
#[derive(Clone, Debug)]
pub struct ProbeConfig {
    /// Tag of the run, in the probe subjects' and events' ids.
    pub run_id: String,
    /// Time between two probes.
    pub every: Duration,
    /// Probe subjects, taken in turn.
    pub subjects: u32,
    /// Longest wait for a probe to be visible; past it the probe is lost.
    pub timeout: Duration,
}

/// What the probes measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProbeResult {
    /// Publish-to-visible latencies of the probes that became visible.
    pub latencies: Latencies,
    /// Probes not visible within the timeout (or refused when published).
    pub lost: u64,
}

/// Gives the probe subjects their profiles, so that the scorer applies their events.
pub async fn prepare(
    channel: &Channel,
    bearer: &Bearer,
    config: &ProbeConfig,
) -> anyhow::Result<()> {
    let profiles = (0..config.subjects)
        .map(|n| pb::Profile {
            subject_id: subject(config, n),
            display_name: format!("Probe {n}"),
            region: "probe".into(),
            ..pb::Profile::default()
        })
        .collect();
    let mut request = tonic::Request::new(pb::UpsertProfilesRequest { profiles });
    bearer.apply(&mut request);
    IngestionServiceClient::new(channel.clone())
        .upsert_profiles(request)
        .await
        .context("giving the probe subjects their profiles")?;
    Ok(())
}

fn subject(config: &ProbeConfig, n: u32) -> String {
    format!("probe-{}-{n}", config.run_id)
}

/// Sends a probe every `config.every` until `stop` turns true, and times each.
pub async fn run(
    channel: Channel,
    bearer: Bearer,
    config: ProbeConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> ProbeResult {
    let mut ingestion = IngestionServiceClient::new(channel.clone());
    let mut scoring = ScoringServiceClient::new(channel);
    let mut result = ProbeResult::default();
    let mut rng = Rng::new(0x5eed_f00d);
    let mut ticker = tokio::time::interval(config.every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for seq in 0_u64.. {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let subject_id = subject(&config, (seq % u64::from(config.subjects)) as u32);
        let event_id = format!("probe-{}-{seq:08}", config.run_id);
        let sent = Instant::now();
        let event = probe_event(&mut rng, &subject_id, &event_id);
        let mut request = tonic::Request::new(pb::PublishEventsRequest {
            events: vec![event],
        });
        bearer.apply(&mut request);
        let accepted = ingestion
            .publish_events(request)
            .await
            .is_ok_and(|r| r.into_inner().accepted == 1);
        if !accepted {
            result.lost += 1;
            continue;
        }
        // A probe sent before the stop is waited for even after it: the run's last
        // events are no less worth timing.
        match visible(
            &mut scoring,
            &bearer,
            &subject_id,
            &event_id,
            config.timeout,
        )
        .await
        {
            Some(()) => result
                .latencies
                .record_us(sent.elapsed().as_micros() as u64),
            None => result.lost += 1,
        }
    }
    result
}

/// Waits until `GetScore` of `subject_id` shows `event_id` as its last event; `None` past
/// `timeout`.
async fn visible(
    scoring: &mut ScoringServiceClient<Channel>,
    bearer: &Bearer,
    subject_id: &str,
    event_id: &str,
    timeout: Duration,
) -> Option<()> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        let mut request = tonic::Request::new(pb::GetScoreRequest {
            subject_id: subject_id.to_owned(),
        });
        bearer.apply(&mut request);
        if let Ok(response) = scoring.get_score(request).await {
            let last = response.into_inner().snapshot.map(|s| s.last_event_id);
            if last.as_deref() == Some(event_id) {
                return Some(());
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(8));
    }
}

/// An ordinary event of the mix (a bill paid), happening now.
fn probe_event(rng: &mut Rng, subject_id: &str, event_id: &str) -> pb::Event {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    pb::Event {
        event_id: event_id.to_owned(),
        subject_id: subject_id.to_owned(),
        event_type: "financial".into(),
        event_subtype: "bill_paid".into(),
        source_system: source_system("financial").into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: now.as_secs() as i64,
            nanos: now.subsec_nanos() as i32,
        }),
        payload: Some(payload(rng, "bill_paid")),
        ..pb::Event::default()
    }
}
