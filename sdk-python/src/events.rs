//! Events from an Arrow table (an IPC stream made by pyarrow from a table or a DataFrame),
//! converted here so publishing a million rows costs no Python per row.
//!
//! Columns `event_id`, `subject_id`, `event_type` (text) and `occurred_at` (a timestamp with
//! a time zone) are required; `event_subtype`, `source_system`, `evidence_uri` (text) and
//! `payload` (a JSON object as text) are optional; every other column is a payload field of
//! that name (numbers, text, booleans; a null leaves the field out). A table that lacks a
//! required column or has one of the wrong type is refused whole; a row that cannot be an
//! event (a null id, a payload that is not a JSON object) is refused alone, with its reason.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, TimestampNanosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, TimeUnit};
use arrow::ipc::reader::StreamReader;
use arrow::record_batch::RecordBatch;
use chrono::DateTime;
use credence::{Error, Event, Result};
use serde_json::{Map, Number, Value};

/// Columns that are fields of the event rather than of its payload.
const FIELDS: &[&str] = &[
    "event_id",
    "subject_id",
    "event_type",
    "occurred_at",
    "event_subtype",
    "source_system",
    "evidence_uri",
    "payload",
];

/// A row refused: its number (from 0 over the whole stream) and why.
pub(crate) type Refused = (usize, String);

/// The events of an IPC stream, and the rows refused with why (row numbers count from 0
/// over the whole stream).
pub(crate) fn from_ipc(bytes: &[u8]) -> Result<(Vec<Event>, Vec<Refused>)> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)
        .map_err(|e| Error::Input(format!("the table is not an Arrow IPC stream: {e}")))?;
    let mut events = Vec::new();
    let mut refused = Vec::new();
    let mut offset = 0;
    for batch in reader {
        let batch =
            batch.map_err(|e| Error::Input(format!("an Arrow batch does not read: {e}")))?;
        let rows = batch.num_rows();
        Batch::new(&batch)?.convert(offset, &mut events, &mut refused);
        offset += rows;
    }
    Ok((events, refused))
}

/// The columns of one record batch, cast to the types read below.
struct Batch {
    event_id: ArrayRef,
    subject_id: ArrayRef,
    event_type: ArrayRef,
    occurred_at: TimestampNanosecondArray,
    event_subtype: Option<ArrayRef>,
    source_system: Option<ArrayRef>,
    evidence_uri: Option<ArrayRef>,
    payload: Option<ArrayRef>,
    /// Payload fields: name and column.
    extra: Vec<(String, ArrayRef)>,
}

fn text(batch: &RecordBatch, name: &str) -> Result<Option<ArrayRef>> {
    let Some(col) = batch.column_by_name(name) else {
        return Ok(None);
    };
    match col.data_type() {
        DataType::Utf8 => Ok(Some(Arc::clone(col))),
        DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) | DataType::Null => {
            cast(col, &DataType::Utf8)
                .map(Some)
                .map_err(|e| Error::Input(format!("column `{name}`: cannot be read as text: {e}")))
        }
        other => Err(Error::Input(format!(
            "column `{name}` must be text, not {other}"
        ))),
    }
}

fn required(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    text(batch, name)?.ok_or_else(|| Error::Input(format!("the table has no `{name}` column")))
}

impl Batch {
    fn new(batch: &RecordBatch) -> Result<Self> {
        let at = batch
            .column_by_name("occurred_at")
            .ok_or_else(|| Error::Input("the table has no `occurred_at` column".into()))?;
        let occurred_at = match at.data_type() {
            DataType::Timestamp(_, Some(_)) => {
                cast(at, &DataType::Timestamp(TimeUnit::Nanosecond, None))
                    .map_err(|e| Error::Input(format!("column `occurred_at`: {e}")))?
                    .as_primitive::<arrow::datatypes::TimestampNanosecondType>()
                    .clone()
            }
            DataType::Timestamp(_, None) => {
                return Err(Error::Input(
                    "column `occurred_at` has no time zone: a naive time is ambiguous; \
                     localise it (pandas: .dt.tz_localize(\"UTC\"))"
                        .into(),
                ));
            }
            other => {
                return Err(Error::Input(format!(
                    "column `occurred_at` must be a timestamp with a time zone, not {other}"
                )));
            }
        };
        let mut extra = Vec::new();
        for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
            let name = field.name();
            if FIELDS.contains(&name.as_str()) {
                continue;
            }
            extra.push((name.clone(), payload_column(name, col)?));
        }
        Ok(Self {
            event_id: required(batch, "event_id")?,
            subject_id: required(batch, "subject_id")?,
            event_type: required(batch, "event_type")?,
            occurred_at,
            event_subtype: text(batch, "event_subtype")?,
            source_system: text(batch, "source_system")?,
            evidence_uri: text(batch, "evidence_uri")?,
            payload: text(batch, "payload")?,
            extra,
        })
    }

    fn convert(&self, offset: usize, events: &mut Vec<Event>, refused: &mut Vec<Refused>) {
        for row in 0..self.event_id.len() {
            match self.event(row) {
                Ok(e) => events.push(e),
                Err(reason) => refused.push((offset + row, reason)),
            }
        }
    }

    fn event(&self, row: usize) -> Result<Event, String> {
        let need = |col: &ArrayRef, name: &str| {
            str_at(col, row)
                .map(str::to_owned)
                .ok_or_else(|| format!("row {row}: `{name}` is null"))
        };
        let at = self
            .occurred_at
            .is_valid(row)
            .then(|| DateTime::from_timestamp_nanos(self.occurred_at.value(row)))
            .ok_or_else(|| format!("row {row}: `occurred_at` is null"))?;
        let mut event = Event::new(
            need(&self.event_id, "event_id")?,
            need(&self.subject_id, "subject_id")?,
            need(&self.event_type, "event_type")?,
            at,
        );
        if let Some(s) = opt_str(row, self.event_subtype.as_ref()) {
            event = event.subtype(s);
        }
        if let Some(s) = opt_str(row, self.source_system.as_ref()) {
            event = event.source_system(s);
        }
        if let Some(s) = opt_str(row, self.evidence_uri.as_ref()) {
            event = event.evidence_uri(s);
        }
        let mut payload = match opt_str(row, self.payload.as_ref()) {
            None => Map::new(),
            Some(text) => match serde_json::from_str(text) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(format!("row {row}: `payload` is not a JSON object")),
                Err(e) => return Err(format!("row {row}: `payload` is not JSON: {e}")),
            },
        };
        for (name, col) in &self.extra {
            if let Some(v) = value_at(col, row) {
                payload.insert(name.clone(), v);
            }
        }
        event.payload = payload;
        Ok(event)
    }
}

/// A payload column as one of the types [`value_at`] reads.
fn payload_column(name: &str, col: &ArrayRef) -> Result<ArrayRef> {
    let target = match col.data_type() {
        DataType::Boolean
        | DataType::Int64
        | DataType::UInt64
        | DataType::Float64
        | DataType::Utf8 => {
            return Ok(Arc::clone(col));
        }
        DataType::Int8 | DataType::Int16 | DataType::Int32 => DataType::Int64,
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => DataType::UInt64,
        DataType::Float16 | DataType::Float32 => DataType::Float64,
        DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) | DataType::Null => {
            DataType::Utf8
        }
        other => {
            return Err(Error::Input(format!(
                "column `{name}`: a payload column must be numbers, text or booleans, not {other}"
            )));
        }
    };
    cast(col, &target).map_err(|e| Error::Input(format!("column `{name}`: {e}")))
}

fn opt_str(row: usize, col: Option<&ArrayRef>) -> Option<&str> {
    col.and_then(|c| str_at(c, row))
}

fn str_at(col: &ArrayRef, row: usize) -> Option<&str> {
    col.is_valid(row).then(|| col.as_string::<i32>().value(row))
}

fn value_at(col: &ArrayRef, row: usize) -> Option<Value> {
    if !col.is_valid(row) {
        return None;
    }
    match col.data_type() {
        DataType::Boolean => Some(Value::Bool(col.as_boolean().value(row))),
        DataType::Int64 => Some(Value::from(
            col.as_primitive::<arrow::datatypes::Int64Type>().value(row),
        )),
        DataType::UInt64 => Some(Value::from(
            col.as_primitive::<arrow::datatypes::UInt64Type>()
                .value(row),
        )),
        // NaN has no JSON form: it leaves the field out, like a null.
        DataType::Float64 => Number::from_f64(
            col.as_primitive::<arrow::datatypes::Float64Type>()
                .value(row),
        )
        .map(Value::Number),
        _ => Some(Value::String(col.as_string::<i32>().value(row).to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int32Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema};
    use arrow::ipc::writer::StreamWriter;

    fn ipc(columns: Vec<(&str, ArrayRef)>) -> Vec<u8> {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|(n, c)| Field::new(*n, c.data_type().clone(), true))
                .collect::<Vec<_>>(),
        ));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            columns.into_iter().map(|(_, c)| c).collect(),
        )
        .expect("batch");
        let mut out = Vec::new();
        let mut w = StreamWriter::try_new(&mut out, &schema).expect("writer");
        w.write(&batch).expect("write");
        w.finish().expect("finish");
        drop(w);
        out
    }

    fn strings(v: &[Option<&str>]) -> ArrayRef {
        Arc::new(StringArray::from(v.to_vec()))
    }

    fn utc_micros(v: &[i64]) -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(v.to_vec()).with_timezone("UTC"))
    }

    #[test]
    fn rows_become_events_and_other_columns_payload_fields() {
        let bytes = ipc(vec![
            ("event_id", strings(&[Some("e1"), Some("e2")])),
            ("subject_id", strings(&[Some("s1"), Some("s2")])),
            ("event_type", strings(&[Some("financial"), Some("civic")])),
            (
                "occurred_at",
                utc_micros(&[1_700_000_000_000_000, 1_700_000_000_000_001]),
            ),
            ("event_subtype", strings(&[Some("late_payment"), None])),
            (
                "days_late",
                Arc::new(Int32Array::from(vec![Some(45), None])),
            ),
            ("amount", Arc::new(Float64Array::from(vec![1.5, 2.0]))),
            ("payload", strings(&[Some(r#"{"channel": "web"}"#), None])),
        ]);
        let (events, refused) = from_ipc(&bytes).expect("readable");
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(events.len(), 2);
        let first = &events[0];
        assert_eq!(first.event_id, "e1");
        assert_eq!(first.event_subtype, "late_payment");
        assert_eq!(first.occurred_at.timestamp_micros(), 1_700_000_000_000_000);
        assert_eq!(
            Value::Object(first.payload.clone()),
            serde_json::json!({"channel": "web", "days_late": 45, "amount": 1.5})
        );
        assert_eq!(
            Value::Object(events[1].payload.clone()),
            serde_json::json!({"amount": 2.0})
        );
        assert_eq!(events[1].occurred_at.timestamp_subsec_micros(), 1);
    }

    #[test]
    fn a_bad_row_is_refused_alone() {
        let bytes = ipc(vec![
            ("event_id", strings(&[None, Some("e2"), Some("e3")])),
            ("subject_id", strings(&[Some("s1"), Some("s2"), Some("s3")])),
            ("event_type", strings(&[Some("t"), Some("t"), Some("t")])),
            ("occurred_at", utc_micros(&[1, 2, 3])),
            ("payload", strings(&[None, Some("[1]"), None])),
        ]);
        let (events, refused) = from_ipc(&bytes).expect("readable");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_id, "e3");
        assert_eq!(
            refused,
            vec![
                (0, "row 0: `event_id` is null".to_owned()),
                (1, "row 1: `payload` is not a JSON object".to_owned())
            ]
        );
    }

    #[test]
    fn a_naive_time_or_a_missing_column_refuses_the_table() {
        let naive = ipc(vec![
            ("event_id", strings(&[Some("e1")])),
            ("subject_id", strings(&[Some("s1")])),
            ("event_type", strings(&[Some("t")])),
            (
                "occurred_at",
                Arc::new(TimestampMicrosecondArray::from(vec![1])),
            ),
        ]);
        let e = from_ipc(&naive).err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|m| m.contains("`occurred_at` has no time zone")),
            "{e:?}"
        );
        let missing = ipc(vec![
            ("event_id", strings(&[Some("e1")])),
            ("occurred_at", utc_micros(&[1])),
        ]);
        let e = from_ipc(&missing).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("invalid input: the table has no `subject_id` column")
        );
    }
}
