//! Polling the server until it reaches an expected state, with a deadline.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::bail;
use credence_proto::v1 as pb;

use crate::Node;

/// How long scoring may take to reflect an acknowledged event in the tests.
pub const SCORING_TIMEOUT: Duration = Duration::from_secs(20);

/// Calls `probe` every 50 ms until it returns `Ok(Some(_))`; fails after `timeout` with the
/// last error or "still not ..." message.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => "not yet".to_owned(),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!("waited {timeout:?} for {what}; last probe: {last}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `subject` has a snapshot with at least `applied` events applied.
pub async fn scored(node: &Node, subject: &str, applied: u64) -> anyhow::Result<pb::ScoreSnapshot> {
    let what = format!("{subject} to have {applied} applied events");
    until(&what, SCORING_TIMEOUT, || async {
        let request = pb::GetScoreRequest {
            subject_id: subject.into(),
        };
        match node.scoring().get_score(request).await {
            Ok(r) => {
                let snapshot = r.into_inner().snapshot;
                Ok(snapshot.filter(|s| s.applied_events >= applied))
            }
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(s.into()),
        }
    })
    .await
}
