//! The InfluxDB v2 HTTP API through `influxdb2`, against the live server in
//! `CREDENCE_TEST_INFLUX` (an http URL; InfluxDB 1.8 with its v2-compatible API on the local
//! stack, where the bucket is the database and org and token are ignored). See docs/STACK.md.
#![cfg(feature = "influxdb")]

#[path = "common/stack.rs"]
mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{TestResult, endpoint, unique, var_or};
use influxdb2::Client;
use influxdb2::models::Query;
use influxdb2_structmap::value::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influx_line_protocol_write_then_flux_query() -> TestResult {
    let Some(url) = endpoint("CREDENCE_TEST_INFLUX", "influx round trip") else {
        return Ok(());
    };
    let bucket = var_or("CREDENCE_TEST_INFLUX_BUCKET", "credence");
    let org = var_or("CREDENCE_TEST_INFLUX_ORG", "credence");
    let client = Client::new(
        url,
        &org,
        var_or("CREDENCE_TEST_INFLUX_TOKEN", "credence-local"),
    );

    // One measurement per run, so kept data from an earlier run cannot match.
    let measurement = format!("score_{}", unique());
    let now_ns = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as i64;
    let mut body = String::new();
    for i in 0..30_i64 {
        let subject = ["alice", "bob", "carol"][(i % 3) as usize];
        let kind = if i % 2 == 0 { "login" } else { "payment" };
        let ts = now_ns - (30 - i) * 1_000_000_000;
        let _ = writeln!(
            body,
            "{measurement},subject={subject},kind={kind} score={}i,weight={:.1},flagged={} {ts}",
            i,
            i as f64 / 2.0,
            i % 5 == 0
        );
    }
    client.write_line_protocol(&org, &bucket, body).await?;

    let flux = format!(
        r#"from(bucket: "{bucket}")
  |> range(start: -10m)
  |> filter(fn: (r) => r._measurement == "{measurement}" and r.subject == "bob")
  |> filter(fn: (r) => r._field == "score" or r._field == "weight")"#
    );
    let records = client.query_raw(Some(Query::new(flux))).await?;
    // bob is i % 3 == 1: ten points, two fields each.
    assert_eq!(records.len(), 20, "records: {records:#?}");

    let mut scores = BTreeMap::new();
    let mut weights = BTreeMap::new();
    for r in &records {
        let v = &r.values;
        assert_eq!(
            v.get("_measurement"),
            Some(&Value::String(measurement.clone()))
        );
        assert_eq!(v.get("subject"), Some(&Value::String("bob".to_owned())));
        let Some(Value::String(kind)) = v.get("kind") else {
            panic!("kind tag missing: {v:?}")
        };
        let Some(Value::TimeRFC(t)) = v.get("_time") else {
            panic!("_time missing: {v:?}")
        };
        let key = t.timestamp_nanos_opt().unwrap_or_default();
        match (v.get("_field"), v.get("_value")) {
            (Some(Value::String(f)), Some(Value::Long(n))) if f == "score" => {
                assert_eq!(kind, if n % 2 == 0 { "login" } else { "payment" });
                scores.insert(key, *n);
            }
            (Some(Value::String(f)), Some(Value::Double(w))) if f == "weight" => {
                weights.insert(key, w.into_inner());
            }
            other => panic!("unexpected field/value {other:?}"),
        }
    }
    let expect: Vec<i64> = (0..30).filter(|i| i % 3 == 1).collect();
    assert_eq!(scores.values().copied().collect::<Vec<_>>(), expect);
    for (t, n) in &scores {
        assert_eq!(
            weights.get(t).copied(),
            Some(*n as f64 / 2.0),
            "weight at {t}"
        );
    }

    // A Flux aggregate over a tag: points per subject.
    let flux = format!(
        r#"from(bucket: "{bucket}")
  |> range(start: -10m)
  |> filter(fn: (r) => r._measurement == "{measurement}" and r._field == "flagged")
  |> group(columns: ["subject"])
  |> count()"#
    );
    let counts = client.query_raw(Some(Query::new(flux))).await?;
    let mut per_subject = BTreeMap::new();
    for r in &counts {
        if let (Some(Value::String(s)), Some(Value::Long(n))) =
            (r.values.get("subject"), r.values.get("_value"))
        {
            per_subject.insert(s.clone(), *n);
        }
    }
    assert_eq!(
        per_subject,
        BTreeMap::from([
            ("alice".to_owned(), 10),
            ("bob".to_owned(), 10),
            ("carol".to_owned(), 10)
        ])
    );
    Ok(())
}
