//! Score points and score changes: append-only tables filled with an `Appender`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use credence_proto::v1 as pb;
use credence_scorer::{ScoreChange, Timestamp, Value};
use duckdb::{Connection, Row, params};

use crate::embedded::columns as col;
use crate::embedded::convert::{from_json, timestamp, to_json};
use crate::embedded::duck::{Ctx, Duck, in_transaction};
use crate::embedded::sql::Where;
use crate::error::{Result, StorageError};
use crate::page::{Page, Paged};
use crate::series::{AggregateQuery, ScorePoint, Series, TimeRange};

const HOUR_NANOS: i64 = 3_600_000_000_000;
const DAY_NANOS: i64 = 24 * HOUR_NANOS;

/// The sequence number the next stored score change gets.
pub(super) fn next_change_seq(conn: &Connection) -> Result<u64> {
    conn.query_row(
        "SELECT coalesce(max(seq) + 1, 0)::UBIGINT FROM store.score_changes",
        [],
        |row| row.get(0),
    )
    .ctx("reading the score change sequence")
}

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

fn change_from_row(row: &Row<'_>) -> Result<ScoreChange> {
    let what = "reading a score change";
    let rule_id: String = row.get(2).ctx(what)?;
    let reason: String = row.get(10).ctx(what)?;
    let inputs: String = row.get(11).ctx(what)?;
    Ok(ScoreChange {
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
    })
}

/// Subject and time filters of the history listings.
fn subject_range(subject_id: &str, range: TimeRange) -> Where {
    let mut filters = Where::default();
    filters.add("subject_id = ?", subject_id.to_owned());
    filters.opt("occurred_at >= ?", range.from.map(Timestamp::nanos));
    filters.opt("occurred_at < ?", range.to.map(Timestamp::nanos));
    filters
}

/// Appends score points and changes inside the caller's transaction; changes get the
/// sequence numbers from `first_seq` on.
pub(super) fn append_in(
    conn: &Connection,
    first_seq: u64,
    partition: u32,
    points: &[ScorePoint],
    changes: &[(u64, ScoreChange)],
) -> Result<()> {
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
    let c = || changes.iter().map(|(_, c)| c);
    let inputs = c()
        .map(|c| to_json(&c.inputs, "score change inputs"))
        .collect::<Result<Vec<_>>>()?;
    let change_columns = vec![
        (
            "seq",
            col::u64s(first_seq..first_seq + changes.len() as u64),
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
            col::u64s(changes.iter().map(|(offset, _)| *offset)),
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
            let first_seq = w.next_change_seq;
            in_transaction(&w.conn, "appending scores", |conn| {
                append_in(conn, first_seq, partition, &points, &changes)
            })?;
            w.next_change_seq = first_seq + changes.len() as u64;
            Ok(())
        })
    }

    async fn truncate_scores(&self, partition: u32, offset: u64) -> Result<u64> {
        self.write(|w| {
            in_transaction(&w.conn, "truncating scores", |conn| {
                let mut n = 0;
                for table in ["store.score_points", "store.score_changes"] {
                    n += conn
                        .execute(
                            &format!(
                                "DELETE FROM {table} WHERE bus_partition = ? AND bus_offset >= ?"
                            ),
                            params![partition, offset],
                        )
                        .ctx("truncating scores")?;
                }
                Ok(n as u64)
            })
        })
    }

    async fn score_history(
        &self,
        subject_id: &str,
        range: TimeRange,
        page: &Page,
    ) -> Result<Paged<ScorePoint>> {
        let filters = subject_range(subject_id, range);
        let sql = format!(
            "SELECT subject_id, event_id, event_type, region, occurred_at, score, tier, delta, changes, \
             bus_partition, bus_offset FROM store.score_points{} \
             ORDER BY occurred_at, bus_partition, bus_offset LIMIT ? OFFSET ?",
            filters.sql()
        );
        self.list(
            "listing score history",
            &sql,
            &filters,
            page,
            point_from_row,
        )
    }

    async fn score_changes(
        &self,
        subject_id: &str,
        range: TimeRange,
        page: &Page,
    ) -> Result<Paged<ScoreChange>> {
        let filters = subject_range(subject_id, range);
        let sql = format!(
            "SELECT event_id, subject_id, rule_id, rule_version, config_version, old_score, \
             new_score, delta, factor, occurred_at, reason, inputs FROM store.score_changes{} \
             ORDER BY occurred_at, seq LIMIT ? OFFSET ?",
            filters.sql()
        );
        self.list(
            "listing score changes",
            &sql,
            &filters,
            page,
            change_from_row,
        )
    }

    async fn aggregates(
        &self,
        query: &AggregateQuery,
        page: &Page,
    ) -> Result<Paged<pb::AggregateRow>> {
        let width = match query.window {
            pb::AggregateWindow::Hour => HOUR_NANOS,
            pb::AggregateWindow::Day => DAY_NANOS,
            pb::AggregateWindow::Unspecified => {
                return Err(StorageError::Invalid(
                    "window: pick AGGREGATE_WINDOW_HOUR or AGGREGATE_WINDOW_DAY".into(),
                ));
            }
        };
        let key = match query.group_by {
            pb::AggregateGroupBy::Subject => "subject_id",
            pb::AggregateGroupBy::Region => "region",
            pb::AggregateGroupBy::EventType => "event_type",
            pb::AggregateGroupBy::Unspecified => {
                return Err(StorageError::Invalid(
                    "group_by: pick AGGREGATE_GROUP_BY_SUBJECT, _REGION or _EVENT_TYPE".into(),
                ));
            }
        };
        let mut filters = Where::default();
        filters.text("subject_id = ?", &query.subject_id);
        filters.text("region = ?", &query.region);
        filters.text("event_type = ?", &query.event_type);
        filters.opt("occurred_at >= ?", query.range.from.map(Timestamp::nanos));
        filters.opt("occurred_at < ?", query.range.to.map(Timestamp::nanos));
        // Windows are UTC aligned; the double modulo floors times before 1970 too.
        let sql = format!(
            "SELECT occurred_at - ((occurred_at % {width}) + {width}) % {width} AS window_start, {key} AS grp, \
             count(*)::UBIGINT, sum(changes)::UBIGINT, sum(delta), \
             sum(CASE WHEN delta > 0 THEN delta ELSE 0 END), \
             sum(CASE WHEN delta < 0 THEN delta ELSE 0 END) \
             FROM store.score_points{} GROUP BY window_start, grp ORDER BY window_start, grp \
             LIMIT ? OFFSET ?",
            filters.sql()
        );
        self.list("computing aggregates", &sql, &filters, page, |row| {
            let what = "reading an aggregate";
            Ok(pb::AggregateRow {
                window_start: Some(timestamp(row.get(0).ctx(what)?)),
                key: row.get(1).ctx(what)?,
                events: row.get(2).ctx(what)?,
                changes: row.get(3).ctx(what)?,
                delta_sum: row.get(4).ctx(what)?,
                delta_positive: row.get(5).ctx(what)?,
                delta_negative: row.get(6).ctx(what)?,
            })
        })
    }
}
