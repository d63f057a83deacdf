//! A `RunAnalytics` answer (one Arrow IPC stream) as a JSON table a page can show: column
//! names and types, then rows of values. Numbers and booleans stay JSON numbers and
//! booleans, so the page can chart them; every other type is its Arrow display text.

use crate::error::Error;
use arrow::array::{Array, ArrayRef, AsArray as _};
use arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Value, json};
use tonic::Status;

/// The zone timestamps are shown in.
const UTC: &str = "+00:00";

/// The result of `ipc` (a complete Arrow IPC stream) as
/// `{"columns": [{"name", "type"}], "rows": [[...]], "row_count": n}`.
pub(super) fn to_json(ipc: &[u8]) -> Result<Value, Status> {
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None)
        .map_err(|e| Error::internal::<Status>(format!("reading the analytics result: {e}")))?;
    let schema = reader.schema();
    let columns: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    let mut rows: Vec<Vec<Value>> = Vec::new();
    for batch in reader {
        let batch = batch
            .map_err(|e| Error::internal::<Status>(format!("reading the analytics result: {e}")))?;
        let start = rows.len();
        rows.resize_with(start + batch.num_rows(), || {
            Vec::with_capacity(batch.num_columns())
        });
        for column in batch.columns() {
            for (row, value) in column_values(column)?.into_iter().enumerate() {
                rows[start + row].push(value);
            }
        }
    }
    Ok(json!({"columns": columns, "row_count": rows.len(), "rows": rows}))
}

/// One column's values as JSON, NULL as null.
fn column_values(column: &ArrayRef) -> Result<Vec<Value>, Status> {
    let cast = |to: &DataType| {
        arrow::compute::cast(column, to)
            .map_err(|e| Error::internal::<Status>(format!("converting a column: {e}")))
    };
    let values: Vec<Value> = match column.data_type() {
        DataType::Boolean => column
            .as_boolean()
            .iter()
            .map(|v| v.map_or(Value::Null, Value::Bool))
            .collect(),
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            cast(&DataType::Int64)?
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| v.map_or(Value::Null, Value::from))
                .collect()
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            cast(&DataType::UInt64)?
                .as_primitive::<UInt64Type>()
                .iter()
                .map(|v| v.map_or(Value::Null, Value::from))
                .collect()
        }
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => cast(&DataType::Float64)?
            .as_primitive::<Float64Type>()
            .iter()
            // JSON has no NaN or infinity: those show as null, like SQL NULL.
            .map(|v| {
                v.and_then(serde_json::Number::from_f64)
                    .map_or(Value::Null, Value::Number)
            })
            .collect(),
        // Instants with a named zone (DuckDB's TIMESTAMPTZ says "Etc/UTC"): the same
        // instants shown in UTC, since the formatter reads offsets only.
        DataType::Timestamp(unit, Some(zone)) if zone.as_ref() != UTC => {
            column_values(&cast(&DataType::Timestamp(*unit, Some(UTC.into())))?)?
        }
        _ => {
            let options = FormatOptions::default();
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)
                .map_err(|e| Error::internal::<Status>(format!("showing a column: {e}")))?;
            (0..column.len())
                .map(|i| {
                    if column.is_null(i) {
                        Value::Null
                    } else {
                        Value::String(formatter.value(i).to_string())
                    }
                })
                .collect()
        }
    };
    Ok(values)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BooleanArray, Float64Array, Int32Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use arrow::record_batch::RecordBatch;

    use super::*;

    fn ipc(batch: &RecordBatch) -> Vec<u8> {
        let mut out = Vec::new();
        let mut writer =
            arrow::ipc::writer::StreamWriter::try_new(&mut out, batch.schema().as_ref()).unwrap();
        writer.write(batch).unwrap();
        writer.finish().unwrap();
        drop(writer);
        out
    }

    #[test]
    fn numbers_stay_numbers_and_nulls_null() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("tier", DataType::Utf8, true),
            Field::new("n", DataType::Int32, true),
            Field::new("avg", DataType::Float64, true),
            Field::new("ok", DataType::Boolean, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec![Some("A"), None])),
                Arc::new(Int32Array::from(vec![Some(3), None])),
                Arc::new(Float64Array::from(vec![Some(1.5), Some(f64::NAN)])),
                Arc::new(BooleanArray::from(vec![Some(true), None])),
            ],
        )
        .unwrap();
        let table = to_json(&ipc(&batch)).unwrap();
        assert_eq!(
            table,
            json!({
                "columns": [
                    {"name": "tier", "type": "Utf8"},
                    {"name": "n", "type": "Int32"},
                    {"name": "avg", "type": "Float64"},
                    {"name": "ok", "type": "Boolean"},
                ],
                "row_count": 2,
                "rows": [["A", 3, 1.5, true], [null, null, null, null]],
            })
        );
    }

    #[test]
    fn instants_in_a_named_zone_show_in_utc() {
        let at = arrow::array::TimestampMicrosecondArray::from(vec![Some(1_000_000), None])
            .with_timezone("Etc/UTC");
        let schema = Arc::new(Schema::new(vec![Field::new(
            "t",
            at.data_type().clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(at)]).unwrap();
        let table = to_json(&ipc(&batch)).unwrap();
        assert_eq!(table["rows"], json!([["1970-01-01T00:00:01Z"], [null]]));
    }

    #[test]
    fn bytes_that_are_no_arrow_stream_are_an_error_not_a_panic() {
        assert!(to_json(b"not arrow").is_err());
    }
}
