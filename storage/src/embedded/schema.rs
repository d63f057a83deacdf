//! The DuckDB schema: tables in `store`, friendly views for analytics in `main`.
//!
//! Times are stored as BIGINT nanoseconds since the epoch (exact round trips, cheap
//! appends); the views turn them into `TIMESTAMP_NS` and nested JSON text into `JSON`.
//! No table has a key constraint: DuckDB's index maintenance made keyed upserts about twice
//! as slow as delete-then-insert from a staging table, and uniqueness is kept by the code:
//! every keyed document write deletes the old row in the same transaction, and the rows
//! keyed by bus position (events, score points, score changes) are skipped below the
//! partition's high-water mark (`HighWater` in `duck.rs`).

use crate::embedded::duck::Ctx;
use crate::error::Result;

/// The tables. Idempotent.
pub(super) const TABLES: &str = r"
CREATE SCHEMA IF NOT EXISTS store;
CREATE TABLE IF NOT EXISTS store.profiles (
    subject_id VARCHAR NOT NULL, display_name VARCHAR, birth_year INTEGER, region VARCHAR,
    district VARCHAR, occupation VARCHAR, flags VARCHAR, consent VARCHAR, attributes VARCHAR,
    updated_at BIGINT);
CREATE TABLE IF NOT EXISTS store.snapshots (
    sid BIGINT NOT NULL, subject_id VARCHAR NOT NULL, bus_partition UINTEGER, score DOUBLE,
    tier VARCHAR, last_time BIGINT, last_event_id VARCHAR, applied_events UBIGINT,
    config_version UINTEGER, rules VARCHAR, updated_at BIGINT, region VARCHAR, dedup BLOB,
    rule_histories BLOB);
CREATE TABLE IF NOT EXISTS store.offsets (
    bus_partition UINTEGER NOT NULL, next_offset UBIGINT, epoch UBIGINT);
CREATE TABLE IF NOT EXISTS store.rules (
    rule_id VARCHAR NOT NULL, version UINTEGER NOT NULL, name VARCHAR, status VARCHAR,
    event_type VARCHAR, points DOUBLE, body VARCHAR, stored_at BIGINT);
CREATE TABLE IF NOT EXISTS store.configs (version UINTEGER NOT NULL, body VARCHAR, stored_at BIGINT);
CREATE TABLE IF NOT EXISTS store.events (
    event_id VARCHAR, subject_id VARCHAR, event_type VARCHAR, event_subtype VARCHAR,
    source_system VARCHAR, occurred_at BIGINT, region VARCHAR, district VARCHAR, lat DOUBLE,
    lon DOUBLE, payload VARCHAR, evidence_uri VARCHAR, received_at BIGINT,
    bus_partition UINTEGER, bus_offset UBIGINT, applied BOOLEAN);
CREATE TABLE IF NOT EXISTS store.score_points (
    subject_id VARCHAR, event_id VARCHAR, event_type VARCHAR, region VARCHAR, occurred_at BIGINT,
    score DOUBLE, tier VARCHAR, delta DOUBLE, changes UINTEGER, bus_partition UINTEGER,
    bus_offset UBIGINT);
CREATE TABLE IF NOT EXISTS store.score_changes (
    change_index UBIGINT, event_id VARCHAR, subject_id VARCHAR, rule_id VARCHAR, rule_version UINTEGER,
    config_version UINTEGER, old_score DOUBLE, new_score DOUBLE, delta DOUBLE, factor DOUBLE,
    occurred_at BIGINT, reason VARCHAR, inputs VARCHAR, bus_partition UINTEGER, bus_offset UBIGINT);
CREATE TABLE IF NOT EXISTS store.dead_letters (
    bus_partition UINTEGER NOT NULL, bus_offset UBIGINT NOT NULL, reason VARCHAR, payload BLOB,
    parked_at BIGINT);
CREATE TABLE IF NOT EXISTS store.relations (
    subject_id VARCHAR NOT NULL, other_subject_id VARCHAR NOT NULL, kind INTEGER NOT NULL,
    weight DOUBLE, since BIGINT);
CREATE TABLE IF NOT EXISTS store.list_entries (
    subject_id VARCHAR NOT NULL, kind INTEGER NOT NULL, reason VARCHAR, expires_at BIGINT,
    created_at BIGINT);
CREATE TABLE IF NOT EXISTS store.audit (
    seq BIGINT NOT NULL, recorded_at BIGINT NOT NULL, actor VARCHAR, action VARCHAR,
    target VARCHAR, detail VARCHAR);
";

/// Brings a database written by an earlier version to the tables above, before the views
/// are made. Each step is a no-op on a current database.
pub(super) fn migrate(conn: &duckdb::Connection) -> Result<()> {
    let has = |table: &str, column: &str| -> Result<bool> {
        conn.query_row(
            "SELECT count(*) FROM information_schema.columns \
             WHERE table_schema = 'store' AND table_name = ? AND column_name = ?",
            duckdb::params![table, column],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .ctx("reading the schema")
    };
    // Changes were ordered by a process-wide sequence; they are now keyed by (partition,
    // offset, index in the event). The old sequence numbers keep the order within an event,
    // so the column is renamed in place (its position is what the appender relies on).
    if has("score_changes", "seq")? {
        conn.execute_batch("ALTER TABLE store.score_changes RENAME COLUMN seq TO change_index")
            .ctx("migrating score changes")?;
    }
    if !has("offsets", "epoch")? {
        conn.execute_batch("ALTER TABLE store.offsets ADD COLUMN epoch UBIGINT DEFAULT 0")
            .ctx("migrating offsets")?;
    }
    // The region moved into the snapshot (listings filter without joining profiles); old
    // rows take it from the profile once.
    if !has("snapshots", "region")? {
        conn.execute_batch(
            "ALTER TABLE store.snapshots ADD COLUMN region VARCHAR; \
             UPDATE store.snapshots SET region = p.region FROM store.profiles p \
                 WHERE p.subject_id = store.snapshots.subject_id;",
        )
        .ctx("migrating snapshots")?;
    }
    // The duplicate window (bytes) came after the region; an old row's NULL reads as an
    // empty window.
    if !has("snapshots", "dedup")? {
        conn.execute_batch("ALTER TABLE store.snapshots ADD COLUMN dedup BLOB")
            .ctx("migrating snapshots")?;
    }
    // Rule histories became bytes after the window; an old row keeps its JSON in `rules`.
    if !has("snapshots", "rule_histories")? {
        conn.execute_batch("ALTER TABLE store.snapshots ADD COLUMN rule_histories BLOB")
            .ctx("migrating snapshots")?;
    }
    // Window entries had a table of their own for a while; the archive holds them all.
    conn.execute_batch("DROP TABLE IF EXISTS store.dedup_entries")
        .ctx("migrating duplicate windows")?;
    Ok(())
}

/// The analytics views. Replaced at every open, so they follow the code.
pub(super) const VIEWS: &str = r"
CREATE OR REPLACE VIEW main.profiles AS SELECT subject_id, display_name, birth_year, region,
    district, occupation, flags::JSON AS flags, consent::JSON AS consent,
    attributes::JSON AS attributes, make_timestamp_ns(updated_at) AS updated_at
    FROM store.profiles;
CREATE OR REPLACE VIEW main.snapshots AS SELECT subject_id, region, bus_partition, score, tier,
    make_timestamp_ns(last_time) AS last_time, last_event_id, applied_events, config_version,
    make_timestamp_ns(updated_at) AS updated_at FROM store.snapshots
    QUALIFY row_number() OVER (PARTITION BY subject_id ORDER BY sid DESC) = 1;
CREATE OR REPLACE VIEW main.committed_offsets AS SELECT bus_partition, next_offset, epoch
    FROM store.offsets;
CREATE OR REPLACE VIEW main.rules AS SELECT rule_id, version, name, status, event_type, points,
    body::JSON AS body, make_timestamp_ns(stored_at) AS stored_at FROM store.rules;
CREATE OR REPLACE VIEW main.configs AS SELECT version, body::JSON AS body,
    make_timestamp_ns(stored_at) AS stored_at FROM store.configs;
CREATE OR REPLACE VIEW main.events AS SELECT event_id, subject_id, event_type, event_subtype,
    source_system, make_timestamp_ns(occurred_at) AS occurred_at, region, district, lat, lon,
    payload::JSON AS payload, evidence_uri, make_timestamp_ns(received_at) AS received_at,
    bus_partition, bus_offset, applied FROM store.events;
CREATE OR REPLACE VIEW main.score_points AS SELECT subject_id, event_id, event_type, region,
    make_timestamp_ns(occurred_at) AS occurred_at, score, tier, delta, changes, bus_partition, bus_offset
    FROM store.score_points;
CREATE OR REPLACE VIEW main.score_changes AS SELECT change_index, event_id, subject_id, rule_id,
    rule_version, config_version, old_score, new_score, delta, factor,
    make_timestamp_ns(occurred_at) AS occurred_at, reason, inputs::JSON AS inputs, bus_partition, bus_offset
    FROM store.score_changes;
CREATE OR REPLACE VIEW main.dead_letters AS SELECT bus_partition, bus_offset, reason,
    octet_length(payload) AS payload_bytes, to_base64(payload) AS payload_base64,
    make_timestamp_ns(parked_at) AS parked_at FROM store.dead_letters;
CREATE OR REPLACE VIEW main.relations AS SELECT subject_id, other_subject_id, kind, weight,
    make_timestamp_ns(since) AS since FROM store.relations;
CREATE OR REPLACE VIEW main.list_entries AS SELECT subject_id, kind, reason,
    make_timestamp_ns(expires_at) AS expires_at, make_timestamp_ns(created_at) AS created_at
    FROM store.list_entries;
CREATE OR REPLACE VIEW main.audit AS SELECT seq, make_timestamp_ns(recorded_at) AS recorded_at,
    actor, action, target, detail FROM store.audit;
";

/// Per-connection staging tables of the writer: keyed upserts append here, then replace
/// the stored rows in one statement.
pub(super) const STAGING: &str = r"
CREATE TEMP TABLE IF NOT EXISTS profiles_stage AS SELECT * FROM store.profiles LIMIT 0;
CREATE TEMP TABLE IF NOT EXISTS relations_stage AS SELECT * FROM store.relations LIMIT 0;
";
