//! Score points and score changes: append-only tables filled with an `Appender`, one point
//! per (partition, offset) and one change per (partition, offset, index in the event) (see
//! `HighWater` in `duck.rs`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use credence_scorer::{ScoreChange, Timestamp, Value};
use duckdb::{Connection, Row};

use crate::embedded::columns as col;
use crate::embedded::duck::{Ctx, Duck, HighWater, Listing, in_transaction};
use crate::embedded::sql::Where;
use crate::error::Result;
use crate::page::{KeyKind, KeyPart, Page, Paged};
use crate::series::{
    AggregateGroupBy, AggregateQuery, AggregateRow, AggregateWindow, ScorePoint, Series, TimeRange,
};
use crate::stored::{from_json, to_json};

const HOUR_NANOS: i64 = 3_600_000_000_000;
const DAY_NANOS: i64 = 24 * HOUR_NANOS;

fn point_from_row(row: &Row<'_>) -> Result<ScorePoint> {
    let what = "reading a score point";
    Ok(ScorePoint {
        subject_id: row.get(0).ctx(what)?,
        event_id: row.get(1).ctx(what)?,
        event_type: row.get(2).ctx(what)?,
        region: row.get(3).ctx(what)?,
        at: Timestamp::from_nanos(row.get(4).ctx(what)?),
        score: row.get(5).ctx(what)?,
        tier: row.get(6).ctx(what)?,
        delta: row.get(7).ctx(what)?,
        changes: row.get(8).ctx(what)?,
        partition: row.get(9).ctx(what)?,
        offset: row.get(10).ctx(what)?,
    })
}

/// A change and its sort key (partition, offset, index: the time is in the change).
fn change_from_row(row: &Row<'_>) -> Result<(ScoreChange, [u64; 3])> {
    let what = "reading a score change";
    let rule_id: String = row.get(2).ctx(what)?;
    let reason: String = row.get(10).ctx(what)?;
    let inputs: String = row.get(11).ctx(what)?;
    let key = [
        row.get(12).ctx(what)?,
        row.get(13).ctx(what)?,
        row.get(14).ctx(what)?,
    ];
    let change = ScoreChange {
        event_id: row.get(0).ctx(what)?,
        subject_id: row.get(1).ctx(what)?,
        rule_id: rule_id.into(),
        rule_version: row.get(3).ctx(what)?,
        config_version: row.get(4).ctx(what)?,
        old_score: row.get(5).ctx(what)?,
        new_score: row.get(6).ctx(what)?,
        delta: row.get(7).ctx(what)?,
        factor: row.get(8).ctx(what)?,
        at: Timestamp::from_nanos(row.get(9).ctx(what)?),
        reason: reason.into(),
        inputs: from_json::<BTreeMap<String, Value>>(&inputs, "score change inputs")?,
    };
    Ok((change, key))
}

/// Subject and time filters of the history listings.
fn subject_range(subject_id: &str, range: TimeRange) -> Where {
    let mut filters = Where::default();
    filters.add("subject_id = ?", subject_id.to_owned());
    filters.opt("occurred_at >= ?", range.from.map(Timestamp::nanos));
    filters.opt("occurred_at < ?", range.to.map(Timestamp::nanos));
    filters
}

/// Each change with its index within its event: its position among the changes of its
/// offset (they come in the engine's order, an event's changes together).
fn indexed(changes: &[(u64, ScoreChange)]) -> Vec<(u64, u64, &ScoreChange)> {
    let mut out = Vec::with_capacity(changes.len());
    let mut index = 0;
    let mut previous = None;
    for (offset, change) in changes {
        index = if previous == Some(*offset) {
            index + 1
        } else {
            0
        };
        previous = Some(*offset);
        out.push((*offset, index, change));
    }
    out
}

/// The rows of one series append: what is written, and where the marks go after.
pub(super) struct SeriesRows<'a> {
    partition: u32,
    points: Vec<&'a ScorePoint>,
    changes: Vec<(u64, u64, &'a ScoreChange)>,
}

impl<'a> SeriesRows<'a> {
    /// The points and changes of `partition` not yet stored, by the marks of `high_water`.
    pub(super) fn new(
        high_water: &HighWater,
        partition: u32,
        points: &'a [ScorePoint],
        changes: &'a [(u64, ScoreChange)],
    ) -> Self {
        Self {
            partition,
            points: points
                .iter()
                .filter(|p| HighWater::is_new(&high_water.points, p.partition, p.offset))
                .collect(),
            changes: indexed(changes)
                .into_iter()
                .filter(|(offset, _, _)| HighWater::is_new(&high_water.changes, partition, *offset))
                .collect(),
        }
    }

    /// After the commit: raises the marks past the rows written.
    pub(super) fn raise(&self, high_water: &mut HighWater) {
        HighWater::raise(
            &mut high_water.points,
            self.points.iter().map(|p| (p.partition, p.offset)),
        );
        HighWater::raise(
            &mut high_water.changes,
            self.changes.iter().map(|(o, _, _)| (self.partition, *o)),
        );
    }
}

/// Appends score points and changes inside the caller's transaction.
pub(super) fn append_in(conn: &Connection, rows: &SeriesRows<'_>) -> Result<()> {
    let SeriesRows {
        partition,
        points,
        changes,
    } = rows;
    let partition = *partition;
    let p = || points.iter();
    let point_columns = vec![
        ("subject_id", col::text(p().map(|p| p.subject_id.as_str()))),
        ("event_id", col::text(p().map(|p| p.event_id.as_str()))),
        ("event_type", col::text(p().map(|p| p.event_type.as_str()))),
        ("region", col::text(p().map(|p| p.region.as_str()))),
        ("occurred_at", col::i64s(p().map(|p| p.at.nanos()))),
        ("score", col::f64s(p().map(|p| p.score))),
        ("tier", col::text(p().map(|p| p.tier.as_str()))),
        ("delta", col::f64s(p().map(|p| p.delta))),
        ("changes", col::u32s(p().map(|p| p.changes))),
        ("bus_partition", col::u32s(p().map(|p| p.partition))),
        ("bus_offset", col::u64s(p().map(|p| p.offset))),
    ];
    let c = || changes.iter().map(|(_, _, c)| *c);
    let inputs = c()
        .map(|c| to_json(&c.inputs, "score change inputs"))
        .collect::<Result<Vec<_>>>()?;
    let change_columns = vec![
        (
            "change_index",
            col::u64s(changes.iter().map(|(_, i, _)| *i)),
        ),
        ("event_id", col::text(c().map(|c| c.event_id.as_str()))),
        ("subject_id", col::text(c().map(|c| c.subject_id.as_str()))),
        ("rule_id", col::text(c().map(|c| &*c.rule_id))),
        ("rule_version", col::u32s(c().map(|c| c.rule_version))),
        ("config_version", col::u32s(c().map(|c| c.config_version))),
        ("old_score", col::f64s(c().map(|c| c.old_score))),
        ("new_score", col::f64s(c().map(|c| c.new_score))),
        ("delta", col::f64s(c().map(|c| c.delta))),
        ("factor", col::f64s(c().map(|c| c.factor))),
        ("occurred_at", col::i64s(c().map(|c| c.at.nanos()))),
        ("reason", col::text(c().map(|c| &*c.reason))),
        ("inputs", col::text(inputs.iter().map(String::as_str))),
        (
            "bus_partition",
            col::u32s(changes.iter().map(|_| partition)),
        ),
        (
            "bus_offset",
            col::u64s(changes.iter().map(|(offset, _, _)| *offset)),
        ),
    ];
    col::append(
        conn,
        "store",
        "score_points",
        point_columns,
        "appending score points",
    )?;
    col::append(
        conn,
        "store",
        "score_changes",
        change_columns,
        "appending score changes",
    )
}

#[async_trait]
impl Series for Duck {
    async fn append_scores(
        &self,
        partition: u32,
        points: Vec<ScorePoint>,
        changes: Vec<(u64, ScoreChange)>,
    ) -> Result<()> {
        if points.is_empty() && changes.is_empty() {
            return Ok(());
        }
        self.write(|w| {
            let rows = SeriesRows::new(&w.high_water, partition, &points, &changes);
            in_transaction(&w.conn, "appending scores", |conn| append_in(conn, &rows))?;
            rows.raise(&mut w.high_water);
            Ok(())
        })
    }

    async fn score_history(
        &self,
        subject_id: &str,
        range: TimeRange,
        page: &Page,
    ) -> Result<Paged<ScorePoint>> {
        let listing = Listing {
            name: "history",
            what: "listing score history",
            select: "SELECT subject_id, event_id, event_type, region, occurred_at, score, tier, \
                     delta, changes, bus_partition, bus_offset FROM store.score_points"
                .to_owned(),
            leading: Vec::new(),
            keys: &[
                ("occurred_at", KeyKind::I64),
                ("bus_partition", KeyKind::U64),
                ("bus_offset", KeyKind::U64),
            ],
        };
        self.list(
            &listing,
            subject_range(subject_id, range),
            page,
            point_from_row,
            |p| {
                vec![
                    KeyPart::I64(p.at.nanos()),
                    KeyPart::U64(u64::from(p.partition)),
                    KeyPart::U64(p.offset),
                ]
            },
        )
    }

    async fn score_changes(
        &self,
        subject_id: &str,
        range: TimeRange,
        page: &Page,
    ) -> Result<Paged<ScoreChange>> {
        let listing = Listing {
            name: "changes",
            what: "listing score changes",
            select: "SELECT event_id, subject_id, rule_id, rule_version, config_version, \
                     old_score, new_score, delta, factor, occurred_at, reason, inputs, \
                     bus_partition, bus_offset, change_index FROM store.score_changes"
                .to_owned(),
            leading: Vec::new(),
            keys: &[
                ("occurred_at", KeyKind::I64),
                ("bus_partition", KeyKind::U64),
                ("bus_offset", KeyKind::U64),
                ("change_index", KeyKind::U64),
            ],
        };
        let paged = self.list(
            &listing,
            subject_range(subject_id, range),
            page,
            change_from_row,
            |(c, [partition, offset, index])| {
                vec![
                    KeyPart::I64(c.at.nanos()),
                    KeyPart::U64(*partition),
                    KeyPart::U64(*offset),
                    KeyPart::U64(*index),
                ]
            },
        )?;
        Ok(Paged {
            items: paged.items.into_iter().map(|(c, _)| c).collect(),
            next_token: paged.next_token,
        })
    }

    async fn aggregates(&self, query: &AggregateQuery, page: &Page) -> Result<Paged<AggregateRow>> {
        let width = match query.window {
            AggregateWindow::Hour => HOUR_NANOS,
            AggregateWindow::Day => DAY_NANOS,
        };
        let key = match query.group_by {
            AggregateGroupBy::Subject => "subject_id",
            AggregateGroupBy::Region => "region",
            AggregateGroupBy::EventType => "event_type",
        };
        let mut filters = Where::default();
        filters.text("subject_id = ?", &query.subject_id);
        filters.text("region = ?", &query.region);
        filters.text("event_type = ?", &query.event_type);
        filters.opt("occurred_at >= ?", query.range.from.map(Timestamp::nanos));
        filters.opt("occurred_at < ?", query.range.to.map(Timestamp::nanos));
        // Windows are UTC aligned; the double modulo floors times before 1970 too. The
        // keyset applies to the grouped rows, so the grouping is a subquery.
        let select = format!(
            "SELECT * FROM (SELECT occurred_at - ((occurred_at % {width}) + {width}) % {width} \
             AS window_start, coalesce({key}, '') AS grp, \
             count(*)::UBIGINT AS events, sum(changes)::UBIGINT AS changes, sum(delta) AS delta, \
             sum(CASE WHEN delta > 0 THEN delta ELSE 0 END) AS positive, \
             sum(CASE WHEN delta < 0 THEN delta ELSE 0 END) AS negative \
             FROM store.score_points{} GROUP BY window_start, grp) AS grouped",
            filters.sql()
        );
        let listing = Listing {
            name: "aggregates",
            what: "computing aggregates",
            select,
            leading: filters.params(&[]),
            keys: &[("window_start", KeyKind::I64), ("grp", KeyKind::Text)],
        };
        let key = |r: &AggregateRow| {
            vec![
                KeyPart::I64(r.window_start.nanos()),
                KeyPart::Text(r.key.clone()),
            ]
        };
        self.list(
            &listing,
            Where::default(),
            page,
            |row| {
                let what = "reading an aggregate";
                Ok(AggregateRow {
                    window_start: Timestamp::from_nanos(row.get(0).ctx(what)?),
                    key: row.get(1).ctx(what)?,
                    events: row.get(2).ctx(what)?,
                    changes: row.get(3).ctx(what)?,
                    delta_sum: row.get(4).ctx(what)?,
                    delta_positive: row.get(5).ctx(what)?,
                    delta_negative: row.get(6).ctx(what)?,
                })
            },
            key,
        )
    }
}
