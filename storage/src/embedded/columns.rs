//! Bulk appends as Arrow record batches: DuckDB takes a column at a time instead of a value
//! at a time (the per-value appender spent most of a micro-batch commit in call overhead).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, StringArray, UInt32Array,
    UInt64Array,
};
use arrow::record_batch::RecordBatch;
use duckdb::Connection;

use crate::embedded::duck::Ctx;
use crate::error::{Result, StorageError};

/// Appends the columns (named, in the table's column order and types) to `schema.table`.
pub(super) fn append(
    conn: &Connection,
    schema: &str,
    table: &str,
    columns: Vec<(&str, ArrayRef)>,
    what: &str,
) -> Result<()> {
    let batch = RecordBatch::try_from_iter(columns)
        .map_err(|e| StorageError::Backend(format!("{what}: building the batch: {e}")))?;
    if batch.num_rows() == 0 {
        return Ok(());
    }
    let mut app = if schema == "temp" {
        conn.appender_to_catalog_and_db(table, "temp", "main")
    } else {
        conn.appender_to_db(table, schema)
    }
    .ctx(what)?;
    app.append_record_batch(batch).ctx(what)?;
    app.flush().ctx(what)
}

/// A VARCHAR column.
pub(super) fn text<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

/// A BLOB column.
pub(super) fn blobs<'a>(values: impl Iterator<Item = &'a [u8]>) -> ArrayRef {
    Arc::new(BinaryArray::from_iter_values(values))
}

/// A VARCHAR column with NULLs.
pub(super) fn opt_text<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.collect::<StringArray>())
}

/// A BIGINT column.
pub(super) fn i64s(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(values))
}

/// A BIGINT column with NULLs.
pub(super) fn opt_i64s(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(values.collect::<Int64Array>())
}

/// A UINTEGER column.
pub(super) fn u32s(values: impl Iterator<Item = u32>) -> ArrayRef {
    Arc::new(UInt32Array::from_iter_values(values))
}

/// A UBIGINT column.
pub(super) fn u64s(values: impl Iterator<Item = u64>) -> ArrayRef {
    Arc::new(UInt64Array::from_iter_values(values))
}

/// A DOUBLE column.
pub(super) fn f64s(values: impl Iterator<Item = f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(values))
}

/// A DOUBLE column with NULLs.
pub(super) fn opt_f64s(values: impl Iterator<Item = Option<f64>>) -> ArrayRef {
    Arc::new(values.collect::<Float64Array>())
}

/// A BOOLEAN column.
pub(super) fn bools(values: impl Iterator<Item = bool>) -> ArrayRef {
    Arc::new(values.map(Some).collect::<BooleanArray>())
}
