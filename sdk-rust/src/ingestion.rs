//! `IngestionService`: events and profiles in.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use credence_proto::json;
use credence_proto::v1 as pb;

use crate::client::{Retry, all, rpc};
use crate::time::{time_opt, timestamp};
use crate::{Client, Error, Result};

/// Where an event happened.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default, deny_unknown_fields)
)]
pub struct Location {
    /// Region.
    pub region: String,
    /// District within the region.
    pub district: String,
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub lon: f64,
}

/// Something that happened to a subject. Build one with [`Event::new`] and the setters.
///
/// ```
/// use serde_json::json;
///
/// let event = credence::Event::new("e-1", "subject-0001", "financial", chrono::Utc::now())
///     .subtype("late_payment")
///     .payload(json!({"days_late": 45}));
/// assert_eq!(event.payload["days_late"], 45);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct Event {
    /// The idempotency key: publishing the same id again is answered DUPLICATE.
    pub event_id: String,
    /// The subject's id.
    pub subject_id: String,
    /// `financial`, `social`, `online`...
    pub event_type: String,
    /// `late_payment`, `volunteer_work`... (empty: none).
    #[cfg_attr(feature = "serde", serde(default))]
    pub event_subtype: String,
    /// The system that reported it.
    #[cfg_attr(feature = "serde", serde(default))]
    pub source_system: String,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Where, if known.
    pub location: Option<Location>,
    /// What rules read as `payload.*`: a JSON object.
    #[cfg_attr(feature = "serde", serde(default))]
    pub payload: serde_json::Map<String, serde_json::Value>,
    /// A link to the evidence.
    #[cfg_attr(feature = "serde", serde(default))]
    pub evidence_uri: String,
    /// When the node received it (set by the server; ignored when publishing).
    pub received_at: Option<DateTime<Utc>>,
}

impl Event {
    /// An event with its required fields; `occurred_at` takes a `chrono::DateTime<Utc>` or
    /// a `std::time::SystemTime`.
    pub fn new(
        event_id: impl Into<String>,
        subject_id: impl Into<String>,
        event_type: impl Into<String>,
        occurred_at: impl Into<DateTime<Utc>>,
    ) -> Self {
        Self {
            event_id: event_id.into(),
            subject_id: subject_id.into(),
            event_type: event_type.into(),
            event_subtype: String::new(),
            source_system: String::new(),
            occurred_at: occurred_at.into(),
            location: None,
            payload: serde_json::Map::new(),
            evidence_uri: String::new(),
            received_at: None,
        }
    }

    /// Sets the subtype.
    #[must_use]
    pub fn subtype(mut self, subtype: impl Into<String>) -> Self {
        self.event_subtype = subtype.into();
        self
    }

    /// Sets the source system.
    #[must_use]
    pub fn source_system(mut self, source: impl Into<String>) -> Self {
        self.source_system = source.into();
        self
    }

    /// Sets the location.
    #[must_use]
    pub fn location(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    /// Sets the payload; anything but a JSON object (or null) is kept under the key
    /// `value`, so nothing given is silently dropped.
    #[must_use]
    pub fn payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = match payload {
            serde_json::Value::Object(map) => map,
            serde_json::Value::Null => serde_json::Map::new(),
            other => serde_json::Map::from_iter([("value".to_owned(), other)]),
        };
        self
    }

    /// Sets the evidence link.
    #[must_use]
    pub fn evidence_uri(mut self, uri: impl Into<String>) -> Self {
        self.evidence_uri = uri.into();
        self
    }

    /// The event as the generated message.
    pub fn to_proto(&self) -> pb::Event {
        pb::Event {
            event_id: self.event_id.clone(),
            subject_id: self.subject_id.clone(),
            event_type: self.event_type.clone(),
            event_subtype: self.event_subtype.clone(),
            source_system: self.source_system.clone(),
            occurred_at: Some(timestamp(self.occurred_at)),
            location: self.location.as_ref().map(|l| pb::Location {
                region: l.region.clone(),
                district: l.district.clone(),
                lat: l.lat,
                lon: l.lon,
            }),
            payload: (!self.payload.is_empty()).then(|| json::map_to_struct(&self.payload)),
            evidence_uri: self.evidence_uri.clone(),
            received_at: None,
        }
    }

    pub(crate) fn from_proto(e: pb::Event) -> Result<Self> {
        let occurred_at = time_opt(e.occurred_at.as_ref())?.ok_or_else(|| {
            Error::missing(&format!("occurred_at on event {}", short(&e.event_id)))
        })?;
        Ok(Self {
            event_id: e.event_id,
            subject_id: e.subject_id,
            event_type: e.event_type,
            event_subtype: e.event_subtype,
            source_system: e.source_system,
            occurred_at,
            location: e.location.map(|l| Location {
                region: l.region,
                district: l.district,
                lat: l.lat,
                lon: l.lon,
            }),
            payload: e
                .payload
                .as_ref()
                .map(json::struct_to_map)
                .unwrap_or_default(),
            evidence_uri: e.evidence_uri,
            received_at: time_opt(e.received_at.as_ref())?,
        })
    }
}

/// At most 32 characters of a value, for messages.
pub(crate) fn short(text: &str) -> String {
    let mut out: String = text.chars().take(32).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// What the node did with one published event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum EventOutcome {
    /// Stored durably; it is scored shortly.
    Accepted,
    /// Its id was published before (also what a retried event that had landed reads).
    Duplicate,
    /// Refused; the result's reason names the field.
    Rejected,
    /// Behind the subject's duplicate window (only `simulate` tells this).
    TooLate,
}

wire_enum!(
    EventOutcome,
    pb::EventOutcome,
    [Accepted, Duplicate, Rejected, TooLate]
);

/// One event's result.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EventResult {
    /// Its position in the request.
    pub index: u32,
    /// Its id.
    pub event_id: String,
    /// What happened to it.
    pub outcome: EventOutcome,
    /// Why, when it was not accepted.
    pub reason: String,
}

impl EventResult {
    pub(crate) fn from_proto(r: pb::EventResult) -> Result<Self> {
        Ok(Self {
            index: r.index,
            event_id: r.event_id,
            outcome: EventOutcome::from_proto(r.outcome)?,
            reason: r.reason,
        })
    }
}

/// The answer to [`Client::publish_events`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PublishResult {
    /// Events stored.
    pub accepted: u32,
    /// Events whose id was seen before.
    pub duplicates: u32,
    /// Events refused.
    pub rejected: u32,
    /// One result per event, in request order.
    pub results: Vec<EventResult>,
}

/// The answer to [`Client::stream_events`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct StreamSummary {
    /// Batches received.
    pub batches: u32,
    /// Events stored.
    pub accepted: u64,
    /// Events whose id was seen before.
    pub duplicates: u64,
    /// Events refused.
    pub rejected: u64,
    /// The events not accepted (index counted over the whole stream), at most 1,000.
    pub not_accepted: Vec<EventResult>,
}

impl StreamSummary {
    pub(crate) fn from_proto(r: pb::StreamEventsResponse) -> Result<Self> {
        Ok(Self {
            batches: r.batches,
            accepted: r.accepted,
            duplicates: r.duplicates,
            rejected: r.rejected,
            not_accepted: all(r.not_accepted, EventResult::from_proto)?,
        })
    }
}

/// A subject's profile. Build one with [`Profile::new`] and the setters.
///
/// ```
/// let profile = credence::Profile::new("subject-0001")
///     .display_name("Synthetic Person 1")
///     .region("north")
///     .flag("student")
///     .attribute("segment", "a");
/// assert_eq!(profile.flags, ["student"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(deny_unknown_fields)
)]
pub struct Profile {
    /// The subject's id.
    pub subject_id: String,
    /// A (fake) name.
    #[cfg_attr(feature = "serde", serde(default))]
    pub display_name: String,
    /// Year of birth (0: unknown).
    #[cfg_attr(feature = "serde", serde(default))]
    pub birth_year: i32,
    /// Region.
    #[cfg_attr(feature = "serde", serde(default))]
    pub region: String,
    /// District.
    #[cfg_attr(feature = "serde", serde(default))]
    pub district: String,
    /// Occupation.
    #[cfg_attr(feature = "serde", serde(default))]
    pub occupation: String,
    /// Flags rules read as `subject.flags`.
    #[cfg_attr(feature = "serde", serde(default))]
    pub flags: Vec<String>,
    /// Consents given or refused.
    #[cfg_attr(feature = "serde", serde(default))]
    pub consent: BTreeMap<String, bool>,
    /// Other attributes rules read as `subject.attributes.*`.
    #[cfg_attr(feature = "serde", serde(default))]
    pub attributes: BTreeMap<String, String>,
    /// When it was last written (set by the server).
    pub updated_at: Option<DateTime<Utc>>,
}

impl Profile {
    /// An empty profile of `subject_id`.
    pub fn new(subject_id: impl Into<String>) -> Self {
        Self {
            subject_id: subject_id.into(),
            ..Self::default()
        }
    }

    /// Sets the display name.
    #[must_use]
    pub fn display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = name.into();
        self
    }

    /// Sets the year of birth.
    #[must_use]
    pub fn birth_year(mut self, year: i32) -> Self {
        self.birth_year = year;
        self
    }

    /// Sets the region.
    #[must_use]
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Sets the district.
    #[must_use]
    pub fn district(mut self, district: impl Into<String>) -> Self {
        self.district = district.into();
        self
    }

    /// Sets the occupation.
    #[must_use]
    pub fn occupation(mut self, occupation: impl Into<String>) -> Self {
        self.occupation = occupation.into();
        self
    }

    /// Adds a flag.
    #[must_use]
    pub fn flag(mut self, flag: impl Into<String>) -> Self {
        self.flags.push(flag.into());
        self
    }

    /// Records a consent.
    #[must_use]
    pub fn consent(mut self, purpose: impl Into<String>, given: bool) -> Self {
        self.consent.insert(purpose.into(), given);
        self
    }

    /// Sets an attribute.
    #[must_use]
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(key.into(), value.into());
        self
    }

    /// The profile as the generated message.
    pub fn to_proto(&self) -> pb::Profile {
        pb::Profile {
            subject_id: self.subject_id.clone(),
            display_name: self.display_name.clone(),
            birth_year: self.birth_year,
            region: self.region.clone(),
            district: self.district.clone(),
            occupation: self.occupation.clone(),
            flags: self.flags.clone(),
            consent: self.consent.clone().into_iter().collect(),
            attributes: self.attributes.clone().into_iter().collect(),
            updated_at: None,
        }
    }

    pub(crate) fn from_proto(p: pb::Profile) -> Result<Self> {
        Ok(Self {
            updated_at: time_opt(p.updated_at.as_ref())?,
            subject_id: p.subject_id,
            display_name: p.display_name,
            birth_year: p.birth_year,
            region: p.region,
            district: p.district,
            occupation: p.occupation,
            flags: p.flags,
            consent: p.consent.into_iter().collect(),
            attributes: p.attributes.into_iter().collect(),
        })
    }
}

/// What the node did with one profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum ProfileOutcome {
    /// It did not exist before.
    Created,
    /// It replaced the stored one.
    Updated,
    /// Refused; the reason names the field.
    Rejected,
}

wire_enum!(
    ProfileOutcome,
    pb::ProfileOutcome,
    [Created, Updated, Rejected]
);

/// One profile's result.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ProfileResult {
    /// Its position in the request.
    pub index: u32,
    /// Its subject.
    pub subject_id: String,
    /// What happened to it.
    pub outcome: ProfileOutcome,
    /// Why, when rejected.
    pub reason: String,
}

/// The answer to [`Client::upsert_profiles`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct UpsertResult {
    /// Profiles created.
    pub created: u32,
    /// Profiles replaced.
    pub updated: u32,
    /// Profiles refused.
    pub rejected: u32,
    /// One result per profile, in request order.
    pub results: Vec<ProfileResult>,
}

impl Client {
    /// Publishes events in one request; each gets its own result. Retried on UNAVAILABLE:
    /// an event that landed before the failure is answered DUPLICATE the second time.
    ///
    /// ```no_run
    /// # async fn run(client: credence::Client) -> credence::Result<()> {
    /// use serde_json::json;
    /// let event = credence::Event::new("e-1", "subject-0001", "financial", chrono::Utc::now())
    ///     .subtype("late_payment")
    ///     .payload(json!({"days_late": 45}));
    /// let result = client.publish_events(&[event]).await?;
    /// assert_eq!(result.accepted + result.duplicates, 1);
    /// # Ok(()) }
    /// ```
    pub async fn publish_events(&self, events: &[Event]) -> Result<PublishResult> {
        let request = pb::PublishEventsRequest {
            events: events.iter().map(Event::to_proto).collect(),
        };
        let r = rpc!(
            self,
            ingestion.publish_events,
            "PublishEvents",
            Retry::Safe,
            request
        )?;
        Ok(PublishResult {
            accepted: r.accepted,
            duplicates: r.duplicates,
            rejected: r.rejected,
            results: all(r.results, EventResult::from_proto)?,
        })
    }

    /// Publishes batches over one `StreamEvents` call and returns the node's summary.
    /// Retried whole on UNAVAILABLE (events already stored come back as duplicates). For a
    /// continuous flow with batching and backpressure, use [`Client::producer`].
    pub async fn stream_events(&self, batches: &[Vec<Event>]) -> Result<StreamSummary> {
        let requests: Vec<pb::StreamEventsRequest> = batches
            .iter()
            .map(|b| pb::StreamEventsRequest {
                events: b.iter().map(Event::to_proto).collect(),
            })
            .collect();
        let r = self
            .call("StreamEvents", Retry::Safe, requests, |m| {
                let mut c = self.ingestion();
                let (metadata, extensions, requests) = m.into_parts();
                let stream = futures::stream::iter(requests);
                async move {
                    c.stream_events(tonic::Request::from_parts(metadata, extensions, stream))
                        .await
                }
            })
            .await?;
        StreamSummary::from_proto(r)
    }

    /// Creates or replaces profiles.
    ///
    /// ```no_run
    /// # async fn run(client: credence::Client) -> credence::Result<()> {
    /// let profile = credence::Profile::new("subject-0001").region("north");
    /// let result = client.upsert_profiles(&[profile]).await?;
    /// assert_eq!(result.rejected, 0);
    /// # Ok(()) }
    /// ```
    pub async fn upsert_profiles(&self, profiles: &[Profile]) -> Result<UpsertResult> {
        let request = pb::UpsertProfilesRequest {
            profiles: profiles.iter().map(Profile::to_proto).collect(),
        };
        let r = rpc!(
            self,
            ingestion.upsert_profiles,
            "UpsertProfiles",
            Retry::Safe,
            request
        )?;
        let results = r
            .results
            .into_iter()
            .map(|p| {
                Ok(ProfileResult {
                    index: p.index,
                    subject_id: p.subject_id,
                    outcome: ProfileOutcome::from_proto(p.outcome)?,
                    reason: p.reason,
                })
            })
            .collect::<Result<_>>()?;
        Ok(UpsertResult {
            created: r.created,
            updated: r.updated,
            rejected: r.rejected,
            results,
        })
    }
}
