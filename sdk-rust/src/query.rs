//! `QueryService`: profiles, listings, histories, distributions, aggregates and SQL.

use std::time::Duration;

use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use credence_proto::v1 as pb;
use futures::stream::BoxStream;

use crate::client::{Page, Retry, all, follow_query, paged, rpc};
use crate::ingestion::{Event, Profile};
use crate::scoring::ScoreSnapshot;
use crate::time::{duration_opt, time, time_opt, timestamp, timestamp_opt};
use crate::{Client, Error, Result};

/// A subject's profile and score ([`Client::get_profile`]).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SubjectView {
    /// The stored profile, if any.
    pub profile: Option<Profile>,
    /// The score, if the subject has one.
    pub snapshot: Option<ScoreSnapshot>,
}

/// Which subjects [`Client::list_subjects`] lists.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct SubjectQuery {
    /// Only this region.
    pub region: Option<String>,
    /// Only this tier.
    pub tier: Option<String>,
    /// Only scores at or above.
    pub min_score: Option<f64>,
    /// Only scores at or below.
    pub max_score: Option<f64>,
    /// Subjects per page (0: the server's default).
    pub page_size: u32,
    /// The page to read (empty: the first).
    pub page_token: String,
}

/// One subject in a listing.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SubjectSummary {
    /// The subject.
    pub subject_id: String,
    /// Its (fake) name.
    pub display_name: String,
    /// Its region.
    pub region: String,
    /// Its score.
    pub score: f64,
    /// Its tier.
    pub tier: String,
    /// The time of its latest applied event.
    pub last_event_time: Option<DateTime<Utc>>,
}

/// Which points of a subject's score history [`Client::get_score_history`] reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct HistoryQuery {
    /// The subject.
    pub subject_id: String,
    /// From this time on.
    pub from: Option<DateTime<Utc>>,
    /// Before this time.
    pub to: Option<DateTime<Utc>>,
    /// Points per page (0: the server's default).
    #[cfg_attr(feature = "serde", serde(default))]
    pub page_size: u32,
    /// The page to read (empty: the first).
    #[cfg_attr(feature = "serde", serde(default))]
    pub page_token: String,
}

impl HistoryQuery {
    /// The whole history of `subject_id`.
    pub fn new(subject_id: impl Into<String>) -> Self {
        Self {
            subject_id: subject_id.into(),
            ..Self::default()
        }
    }
}

/// A subject's score after one event.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ScorePoint {
    /// The event's time.
    pub at: DateTime<Utc>,
    /// The event.
    pub event_id: String,
    /// The score after it.
    pub score: f64,
    /// The tier after it.
    pub tier: String,
    /// What it changed.
    pub delta: f64,
}

/// Which archived events [`Client::list_events`] lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct EventQuery {
    /// Only this subject.
    pub subject_id: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// From this time on.
    pub from: Option<DateTime<Utc>>,
    /// Before this time.
    pub to: Option<DateTime<Utc>>,
    /// Events per page (0: the server's default).
    pub page_size: u32,
    /// The page to read (empty: the first).
    pub page_token: String,
}

/// How many subjects a tier holds.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TierCount {
    /// The tier.
    pub tier: String,
    /// Its lower bound.
    pub min_score: f64,
    /// Subjects in it.
    pub subjects: u64,
}

/// Subjects per tier ([`Client::get_tier_distribution`]).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TierDistribution {
    /// Per tier, lowest first.
    pub tiers: Vec<TierCount>,
    /// All subjects counted.
    pub total_subjects: u64,
}

/// The time bucket of aggregates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum AggregateWindow {
    /// Hourly.
    Hour,
    /// Daily.
    Day,
}

wire_enum!(AggregateWindow, pb::AggregateWindow, [Hour, Day]);

/// What aggregates are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum AggregateGroupBy {
    /// Per subject.
    Subject,
    /// Per region.
    Region,
    /// Per event type.
    EventType,
}

wire_enum!(
    AggregateGroupBy,
    pb::AggregateGroupBy,
    [Subject, Region, EventType]
);

/// What [`Client::get_aggregates`] sums.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct AggregateQuery {
    /// The bucket.
    pub window: AggregateWindow,
    /// The grouping.
    pub group_by: AggregateGroupBy,
    /// From this time on (aggregates always cover a bounded range).
    pub from: DateTime<Utc>,
    /// Before this time.
    pub to: DateTime<Utc>,
    /// Only this subject.
    pub subject_id: Option<String>,
    /// Only this region.
    pub region: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Rows per page (0: the server's default).
    #[cfg_attr(feature = "serde", serde(default))]
    pub page_size: u32,
    /// The page to read (empty: the first).
    #[cfg_attr(feature = "serde", serde(default))]
    pub page_token: String,
}

impl AggregateQuery {
    /// Every row of `window` buckets grouped by `group_by`, over `[from, to)`.
    pub fn new(
        window: AggregateWindow,
        group_by: AggregateGroupBy,
        from: impl Into<DateTime<Utc>>,
        to: impl Into<DateTime<Utc>>,
    ) -> Self {
        Self {
            window,
            group_by,
            from: from.into(),
            to: to.into(),
            subject_id: None,
            region: None,
            event_type: None,
            page_size: 0,
            page_token: String::new(),
        }
    }
}

paged!(SubjectQuery, HistoryQuery, EventQuery, AggregateQuery);

/// One bucket of one group.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct AggregateRow {
    /// The bucket's start.
    pub window_start: DateTime<Utc>,
    /// The group (subject, region or event type).
    pub key: String,
    /// Events.
    pub events: u64,
    /// Score changes.
    pub changes: u64,
    /// Sum of deltas.
    pub delta_sum: f64,
    /// Sum of positive deltas.
    pub delta_positive: f64,
    /// Sum of negative deltas.
    pub delta_negative: f64,
}

/// The result of an analytics query: one Arrow IPC stream.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Analytics {
    /// The Arrow IPC stream (schema, batches, end marker), as any Arrow reader takes it.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_support::base64"))]
    pub arrow_ipc: Vec<u8>,
    /// Rows in it.
    pub rows: u64,
}

impl Analytics {
    /// The record batches.
    pub fn record_batches(&self) -> Result<Vec<RecordBatch>> {
        let reader =
            arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(&self.arrow_ipc), None)
                .map_err(|e| Error::Protocol(format!("the Arrow stream does not read: {e}")))?;
        reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Protocol(format!("an Arrow batch does not read: {e}")))
    }
}

impl Client {
    /// A subject's profile and score.
    pub async fn get_profile(&self, subject_id: &str) -> Result<SubjectView> {
        let request = pb::GetProfileRequest {
            subject_id: subject_id.to_owned(),
        };
        let r = rpc!(self, query.get_profile, "GetProfile", Retry::Safe, request)?;
        Ok(SubjectView {
            profile: r.profile.map(Profile::from_proto).transpose()?,
            snapshot: r.snapshot.map(ScoreSnapshot::from_proto).transpose()?,
        })
    }

    /// One page of subjects.
    pub async fn list_subjects(&self, query: &SubjectQuery) -> Result<Page<SubjectSummary>> {
        let request = pb::ListSubjectsRequest {
            region: query.region.clone().unwrap_or_default(),
            tier: query.tier.clone().unwrap_or_default(),
            min_score: query.min_score,
            max_score: query.max_score,
            page_size: query.page_size,
            page_token: query.page_token.clone(),
        };
        let r = rpc!(
            self,
            query.list_subjects,
            "ListSubjects",
            Retry::Safe,
            request
        )?;
        let subjects = all(r.subjects, |s| {
            Ok(SubjectSummary {
                last_event_time: time_opt(s.last_event_time.as_ref())?,
                subject_id: s.subject_id,
                display_name: s.display_name,
                region: s.region,
                score: s.score,
                tier: s.tier,
            })
        })?;
        Ok(Page::new(subjects, r.next_page_token))
    }

    /// Every subject the query selects, page after page.
    ///
    /// ```no_run
    /// # async fn run(client: credence::Client) -> credence::Result<()> {
    /// use futures::TryStreamExt as _;
    /// let query = credence::SubjectQuery { tier: Some("E".into()), ..Default::default() };
    /// let mut subjects = client.list_subjects_stream(query);
    /// while let Some(s) = subjects.try_next().await? {
    ///     println!("{} {:.1}", s.subject_id, s.score);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn list_subjects_stream(
        &self,
        query: SubjectQuery,
    ) -> BoxStream<'static, Result<SubjectSummary>> {
        follow_query(self, query, |client, query| async move {
            client.list_subjects(&query).await
        })
    }

    /// One page of a subject's score history.
    pub async fn get_score_history(&self, query: &HistoryQuery) -> Result<Page<ScorePoint>> {
        let request = pb::GetScoreHistoryRequest {
            subject_id: query.subject_id.clone(),
            from: timestamp_opt(query.from),
            to: timestamp_opt(query.to),
            page_size: query.page_size,
            page_token: query.page_token.clone(),
        };
        let r = rpc!(
            self,
            query.get_score_history,
            "GetScoreHistory",
            Retry::Safe,
            request
        )?;
        let points = all(r.points, |p| {
            Ok(ScorePoint {
                at: time(p.at.as_ref().ok_or_else(|| Error::missing("point time"))?)?,
                event_id: p.event_id,
                score: p.score,
                tier: p.tier,
                delta: p.delta,
            })
        })?;
        Ok(Page::new(points, r.next_page_token))
    }

    /// A subject's whole score history, page after page.
    pub fn get_score_history_stream(
        &self,
        query: HistoryQuery,
    ) -> BoxStream<'static, Result<ScorePoint>> {
        follow_query(self, query, |client, query| async move {
            client.get_score_history(&query).await
        })
    }

    /// One page of archived events.
    pub async fn list_events(&self, query: &EventQuery) -> Result<Page<Event>> {
        let request = pb::ListEventsRequest {
            subject_id: query.subject_id.clone().unwrap_or_default(),
            event_type: query.event_type.clone().unwrap_or_default(),
            from: timestamp_opt(query.from),
            to: timestamp_opt(query.to),
            page_size: query.page_size,
            page_token: query.page_token.clone(),
        };
        let r = rpc!(self, query.list_events, "ListEvents", Retry::Safe, request)?;
        Ok(Page::new(
            all(r.events, Event::from_proto)?,
            r.next_page_token,
        ))
    }

    /// Every archived event the query selects, page after page.
    pub fn list_events_stream(&self, query: EventQuery) -> BoxStream<'static, Result<Event>> {
        follow_query(self, query, |client, query| async move {
            client.list_events(&query).await
        })
    }

    /// Subjects per tier, in one region or all (`None`).
    pub async fn get_tier_distribution(&self, region: Option<&str>) -> Result<TierDistribution> {
        let request = pb::GetTierDistributionRequest {
            region: region.unwrap_or_default().to_owned(),
        };
        let r = rpc!(
            self,
            query.get_tier_distribution,
            "GetTierDistribution",
            Retry::Safe,
            request
        )?;
        Ok(TierDistribution {
            tiers: r
                .tiers
                .into_iter()
                .map(|t| TierCount {
                    tier: t.tier,
                    min_score: t.min_score,
                    subjects: t.subjects,
                })
                .collect(),
            total_subjects: r.total_subjects,
        })
    }

    /// One page of aggregates.
    pub async fn get_aggregates(&self, query: &AggregateQuery) -> Result<Page<AggregateRow>> {
        let request = pb::GetAggregatesRequest {
            window: query.window.to_proto(),
            group_by: query.group_by.to_proto(),
            from: Some(timestamp(query.from)),
            to: Some(timestamp(query.to)),
            subject_id: query.subject_id.clone().unwrap_or_default(),
            region: query.region.clone().unwrap_or_default(),
            event_type: query.event_type.clone().unwrap_or_default(),
            page_size: query.page_size,
            page_token: query.page_token.clone(),
        };
        let r = rpc!(
            self,
            query.get_aggregates,
            "GetAggregates",
            Retry::Safe,
            request
        )?;
        let rows = all(r.rows, |row| {
            Ok(AggregateRow {
                window_start: time(
                    row.window_start
                        .as_ref()
                        .ok_or_else(|| Error::missing("window start"))?,
                )?,
                key: row.key,
                events: row.events,
                changes: row.changes,
                delta_sum: row.delta_sum,
                delta_positive: row.delta_positive,
                delta_negative: row.delta_negative,
            })
        })?;
        Ok(Page::new(rows, r.next_page_token))
    }

    /// Every aggregate row the query selects, page after page.
    pub fn get_aggregates_stream(
        &self,
        query: AggregateQuery,
    ) -> BoxStream<'static, Result<AggregateRow>> {
        follow_query(self, query, |client, query| async move {
            client.get_aggregates(&query).await
        })
    }

    /// Runs one read-only SQL statement over the node's analytics views (`events`,
    /// `score_changes`, `snapshots`...); `max_rows` and `timeout` bound it (`None`: the
    /// node's limits).
    ///
    /// ```no_run
    /// # async fn run(client: credence::Client) -> credence::Result<()> {
    /// let result = client
    ///     .run_analytics("select event_type, count(*) as n from events group by 1", None, None)
    ///     .await?;
    /// for batch in result.record_batches()? {
    ///     println!("{} rows", batch.num_rows());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn run_analytics(
        &self,
        sql: &str,
        max_rows: Option<u64>,
        timeout: Option<Duration>,
    ) -> Result<Analytics> {
        let request = pb::RunAnalyticsRequest {
            sql: sql.to_owned(),
            max_rows: max_rows.unwrap_or(0),
            timeout: duration_opt(timeout),
        };
        let parts: Vec<pb::RunAnalyticsResponse> = self
            .collect("RunAnalytics", request, |m| {
                let mut c = self.query();
                async move { c.run_analytics(m).await }
            })
            .await?;
        let mut result = Analytics {
            arrow_ipc: Vec::new(),
            rows: 0,
        };
        for part in parts {
            result.arrow_ipc.extend_from_slice(&part.arrow_ipc);
            result.rows += part.rows;
        }
        Ok(result)
    }
}
