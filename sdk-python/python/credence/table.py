"""Tabular results: a ``Table`` over a ``pyarrow.Table`` that speaks the Arrow PyCapsule
stream interface, so ``pyarrow.table(t)``, ``polars.DataFrame(t)`` and DuckDB read it
without a copy, and ``t.to_pandas()`` is one call away."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    import pandas

TIME = pa.timestamp("ns", tz="UTC")


class Table:
    """Rows of a result. ``next_page_token`` is set when more pages follow."""

    def __init__(self, data: pa.Table, next_page_token: str | None = None) -> None:
        self.arrow = data
        self.next_page_token = next_page_token

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self.arrow.__arrow_c_stream__(requested_schema)

    def __len__(self) -> int:
        return int(self.arrow.num_rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.arrow.to_pylist())

    def __repr__(self) -> str:
        return f"Table({self.arrow.num_rows} rows: {', '.join(self.arrow.column_names)})"

    @property
    def columns(self) -> list[str]:
        """The column names."""
        return list(self.arrow.column_names)

    def to_pylist(self) -> list[dict[str, Any]]:
        """The rows as dicts."""
        return list(self.arrow.to_pylist())

    def to_pandas(self) -> pandas.DataFrame:
        """The rows as a pandas DataFrame (pandas must be installed)."""
        frame: pandas.DataFrame = self.arrow.to_pandas()
        return frame


def from_rows(
    rows: Sequence[dict[str, Any]],
    schema: pa.Schema,
    next_page_token: str | None = None,
) -> Table:
    """A table of JSON rows in ``schema``: times (RFC 3339 text) become UTC timestamps,
    object fields become JSON text."""
    columns = []
    for f in schema:
        values = [r.get(f.name) for r in rows]
        if f.type == TIME:
            columns.append(pa.array(values, pa.string()).cast(TIME))
        elif pa.types.is_string(f.type):
            columns.append(
                pa.array(
                    [json.dumps(v) if isinstance(v, (dict, list)) else v for v in values],
                    pa.string(),
                )
            )
        else:
            columns.append(pa.array(values, f.type))
    return Table(pa.Table.from_arrays(columns, schema=schema), next_page_token)


def concat(tables: Sequence[Table]) -> Table:
    """One table of the pages ``tables``."""
    return Table(pa.concat_tables([t.arrow for t in tables]))


def schema(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    """A schema of named types."""
    return pa.schema([pa.field(n, t) for n, t in fields])


SUBJECTS = schema(
    ("subject_id", pa.string()),
    ("display_name", pa.string()),
    ("region", pa.string()),
    ("score", pa.float64()),
    ("tier", pa.string()),
    ("last_event_time", TIME),
)
SCORE_HISTORY = schema(
    ("at", TIME),
    ("event_id", pa.string()),
    ("score", pa.float64()),
    ("tier", pa.string()),
    ("delta", pa.float64()),
)
EVENTS = schema(
    ("event_id", pa.string()),
    ("subject_id", pa.string()),
    ("event_type", pa.string()),
    ("event_subtype", pa.string()),
    ("source_system", pa.string()),
    ("occurred_at", TIME),
    ("payload", pa.string()),
    ("evidence_uri", pa.string()),
    ("received_at", TIME),
)
AGGREGATES = schema(
    ("window_start", TIME),
    ("key", pa.string()),
    ("events", pa.uint64()),
    ("changes", pa.uint64()),
    ("delta_sum", pa.float64()),
    ("delta_positive", pa.float64()),
    ("delta_negative", pa.float64()),
)
CHANGES = schema(
    ("event_id", pa.string()),
    ("subject_id", pa.string()),
    ("rule_id", pa.string()),
    ("rule_version", pa.uint32()),
    ("config_version", pa.uint32()),
    ("old_score", pa.float64()),
    ("new_score", pa.float64()),
    ("delta", pa.float64()),
    ("at", TIME),
    ("reason", pa.string()),
    ("inputs", pa.string()),
    ("factor", pa.float64()),
)
LIST_ENTRIES = schema(
    ("subject_id", pa.string()),
    ("kind", pa.string()),
    ("reason", pa.string()),
    ("expires_at", TIME),
    ("created_at", TIME),
)
