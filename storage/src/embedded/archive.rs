//! The archive: an append-only table of events, filled with an `Appender`, one row per
//! (partition, offset) (see `HighWater` in `duck.rs`).

use async_trait::async_trait;
use credence_scorer::Timestamp;
use duckdb::{Connection, Row};
use rustc_hash::FxHashMap;

use crate::archive::{Archive, ArchivedEvent, EventFilter, EventLocation, ReceivedEvent};
use crate::commit::DeadLetter;
use crate::embedded::columns as col;
use crate::embedded::convert::{payload_from_json, payload_to_json};
use crate::embedded::duck::{Ctx, Duck, HighWater, Listing, in_transaction};
use crate::embedded::sql::Where;
use crate::error::Result;
use crate::page::{KeyKind, KeyPart, Page, Paged};

const COLUMNS: &str = "event_id, subject_id, event_type, event_subtype, source_system, \
    occurred_at, region, district, lat, lon, payload, evidence_uri, received_at, bus_partition, \
    bus_offset, applied";

fn event_from_row(row: &Row<'_>) -> Result<ArchivedEvent> {
    let what = "reading an archived event";
    let region: Option<String> = row.get(6).ctx(what)?;
    // A stored location has every column set; none set means the event had no location.
    let location = match region {
        Some(region) => Some(EventLocation {
            region,
            district: row
                .get::<_, Option<String>>(7)
                .ctx(what)?
                .unwrap_or_default(),
            lat: row.get::<_, Option<f64>>(8).ctx(what)?.unwrap_or_default(),
            lon: row.get::<_, Option<f64>>(9).ctx(what)?.unwrap_or_default(),
        }),
        None => None,
    };
    let payload = row
        .get::<_, Option<String>>(10)
        .ctx(what)?
        .map(|text| payload_from_json(&text))
        .transpose()?;
    let time = |i| -> Result<Option<Timestamp>> {
        Ok(row
            .get::<_, Option<i64>>(i)
            .ctx(what)?
            .map(Timestamp::from_nanos))
    };
    Ok(ArchivedEvent {
        event: ReceivedEvent {
            event_id: row.get(0).ctx(what)?,
            subject_id: row.get(1).ctx(what)?,
            event_type: row.get(2).ctx(what)?,
            event_subtype: row.get(3).ctx(what)?,
            source_system: row.get(4).ctx(what)?,
            occurred_at: time(5)?,
            location,
            payload,
            evidence_uri: row.get(11).ctx(what)?,
            received_at: time(12)?,
        },
        partition: row.get(13).ctx(what)?,
        offset: row.get(14).ctx(what)?,
        applied: row.get(15).ctx(what)?,
    })
}

/// Appends the archived events not yet stored (by `marks`, the archive's high-water marks)
/// inside the caller's transaction; the caller raises the marks once it commits.
pub(super) fn append_in(
    conn: &Connection,
    events: &[ArchivedEvent],
    marks: &FxHashMap<u32, u64>,
) -> Result<()> {
    let what = "archiving events";
    let events: Vec<&ArchivedEvent> = events
        .iter()
        .filter(|a| HighWater::is_new(marks, a.partition, a.offset))
        .collect();
    let ev = || events.iter().map(|a| &a.event);
    let loc = || ev().map(|e| e.location.as_ref());
    let payloads = ev()
        .map(|e| e.payload.as_ref().map(payload_to_json).transpose())
        .collect::<Result<Vec<_>>>()?;
    let columns = vec![
        ("event_id", col::text(ev().map(|e| e.event_id.as_str()))),
        ("subject_id", col::text(ev().map(|e| e.subject_id.as_str()))),
        ("event_type", col::text(ev().map(|e| e.event_type.as_str()))),
        (
            "event_subtype",
            col::text(ev().map(|e| e.event_subtype.as_str())),
        ),
        (
            "source_system",
            col::text(ev().map(|e| e.source_system.as_str())),
        ),
        (
            "occurred_at",
            col::opt_i64s(ev().map(|e| e.occurred_at.map(Timestamp::nanos))),
        ),
        (
            "region",
            col::opt_text(loc().map(|l| l.map(|l| l.region.as_str()))),
        ),
        (
            "district",
            col::opt_text(loc().map(|l| l.map(|l| l.district.as_str()))),
        ),
        ("lat", col::opt_f64s(loc().map(|l| l.map(|l| l.lat)))),
        ("lon", col::opt_f64s(loc().map(|l| l.map(|l| l.lon)))),
        (
            "payload",
            col::opt_text(payloads.iter().map(Option::as_deref)),
        ),
        (
            "evidence_uri",
            col::text(ev().map(|e| e.evidence_uri.as_str())),
        ),
        (
            "received_at",
            col::opt_i64s(ev().map(|e| e.received_at.map(Timestamp::nanos))),
        ),
        (
            "bus_partition",
            col::u32s(events.iter().map(|a| a.partition)),
        ),
        ("bus_offset", col::u64s(events.iter().map(|a| a.offset))),
        ("applied", col::bools(events.iter().map(|a| a.applied))),
    ];
    col::append(conn, "store", "events", columns, what)
}

#[async_trait]
impl Archive for Duck {
    async fn append_events(&self, events: Vec<ArchivedEvent>) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.write(|w| {
            in_transaction(&w.conn, "archiving events", |conn| {
                append_in(conn, &events, &w.high_water.events)
            })?;
            HighWater::raise(
                &mut w.high_water.events,
                events.iter().map(|a| (a.partition, a.offset)),
            );
            Ok(())
        })
    }

    async fn park_dead_letters(&self, letters: Vec<DeadLetter>, at: Timestamp) -> Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        self.write(|w| {
            in_transaction(&w.conn, "parking dead letters", |conn| {
                super::dead_letters::park_in(conn, &letters, at)
            })
        })
    }

    async fn list_events(&self, filter: &EventFilter, page: &Page) -> Result<Paged<ArchivedEvent>> {
        let mut filters = Where::default();
        filters.text("subject_id = ?", &filter.subject_id);
        filters.text("event_type = ?", &filter.event_type);
        filters.opt("occurred_at >= ?", filter.from.map(Timestamp::nanos));
        filters.opt("occurred_at < ?", filter.to.map(Timestamp::nanos));
        let listing = Listing {
            name: "events",
            what: "listing events",
            select: format!("SELECT {COLUMNS} FROM store.events"),
            leading: Vec::new(),
            keys: &[
                // Ingestion requires an event time; a missing one sorts as 1970.
                ("coalesce(occurred_at, 0)", KeyKind::I64),
                ("event_id", KeyKind::Text),
                ("bus_partition", KeyKind::U64),
                ("bus_offset", KeyKind::U64),
            ],
        };
        self.list(&listing, filters, page, event_from_row, |a| {
            vec![
                KeyPart::I64(a.event.occurred_at.map_or(0, Timestamp::nanos)),
                KeyPart::Text(a.event.event_id.clone()),
                KeyPart::U64(u64::from(a.partition)),
                KeyPart::U64(a.offset),
            ]
        })
    }
}
