//! `RunAnalytics` calls with the Arrow IPC answer decoded.

use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use credence_proto::v1 as pb;

use crate::Node;

/// Runs `sql`; returns the record batches, or the status the server answered with. An
/// answer that does not decode as one Arrow IPC stream is a `DATA_LOSS` status made here.
pub async fn run_sql(
    node: &Node,
    sql: &str,
    max_rows: u64,
    timeout: Option<Duration>,
) -> Result<Vec<RecordBatch>, tonic::Status> {
    let request = pb::RunAnalyticsRequest {
        sql: sql.into(),
        max_rows,
        timeout: timeout.map(|t| prost_types::Duration {
            seconds: t.as_secs() as i64,
            nanos: t.subsec_nanos() as i32,
        }),
    };
    let mut stream = node.query().run_analytics(request).await?.into_inner();
    let mut ipc = Vec::new();
    let mut rows = 0;
    let mut saw_last = false;
    while let Some(part) = stream.message().await? {
        if saw_last {
            return Err(tonic::Status::data_loss(
                "a part came after the one marked last",
            ));
        }
        ipc.extend_from_slice(&part.arrow_ipc);
        rows += part.rows;
        saw_last = part.last;
    }
    if !saw_last {
        return Err(tonic::Status::data_loss("no part was marked last"));
    }
    let reader = StreamReader::try_new(std::io::Cursor::new(ipc), None)
        .map_err(|e| tonic::Status::data_loss(format!("not an Arrow IPC stream: {e}")))?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tonic::Status::data_loss(format!("bad Arrow IPC batch: {e}")))?;
    let decoded: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if decoded as u64 != rows {
        return Err(tonic::Status::data_loss(format!(
            "the parts announced {rows} rows but the stream holds {decoded}"
        )));
    }
    Ok(batches)
}

/// The single integer of a one-row, one-column result (any integer Arrow type).
pub fn single_int(batches: &[RecordBatch]) -> Option<i64> {
    let batch = batches.iter().find(|b| b.num_rows() > 0)?;
    int_at(batch, 0, 0)
}

/// An integer cell, whatever its integer type.
pub fn int_at(batch: &RecordBatch, column: usize, row: usize) -> Option<i64> {
    use arrow::array::{Array as _, AsArray as _};
    use arrow::datatypes::{Int32Type, Int64Type, UInt32Type, UInt64Type};
    let col = batch.column(column);
    if col.is_null(row) {
        return None;
    }
    if let Some(a) = col.as_primitive_opt::<Int64Type>() {
        return Some(a.value(row));
    }
    if let Some(a) = col.as_primitive_opt::<UInt64Type>() {
        return i64::try_from(a.value(row)).ok();
    }
    if let Some(a) = col.as_primitive_opt::<Int32Type>() {
        return Some(i64::from(a.value(row)));
    }
    col.as_primitive_opt::<UInt32Type>()
        .map(|a| i64::from(a.value(row)))
}

/// A string cell (Utf8 or LargeUtf8 or Utf8View).
pub fn str_at(batch: &RecordBatch, column: usize, row: usize) -> Option<String> {
    use arrow::array::{Array as _, AsArray as _};
    let col = batch.column(column);
    if col.is_null(row) {
        return None;
    }
    if let Some(a) = col.as_string_opt::<i32>() {
        return Some(a.value(row).to_owned());
    }
    if let Some(a) = col.as_string_opt::<i64>() {
        return Some(a.value(row).to_owned());
    }
    col.as_string_view_opt().map(|a| a.value(row).to_owned())
}
