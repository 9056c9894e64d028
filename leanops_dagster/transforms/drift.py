"""Schema drift: Standardized keys the curated schema does not use (they stay in Standardized).

A drift record per unknown column: ``topic_name``, ``column_name``, ``first_seen`` (earliest
``publish_time`` of a row with a value), ``sample_value`` (the value of that row), and
``rows_seen`` (rows with a value in this increment). Metadata and lineage columns are never
drift; a column only null in the increment is not "seen".
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from leanops_dagster.constants import METADATA_COLUMNS, PUBLISH_TIME, TOPIC_NAME
from leanops_dagster.schemas.models import RESERVED_COLUMNS, CuratedSchema

DRIFT_SCHEMA = pa.schema(
    [
        pa.field(TOPIC_NAME, pa.string()),
        pa.field("column_name", pa.string()),
        pa.field("first_seen", pa.timestamp("us", tz="UTC")),
        pa.field("sample_value", pa.string()),
        pa.field("rows_seen", pa.int64()),
    ]
)


def drift_keys(keys: Iterable[str], schema: CuratedSchema) -> list[str]:
    """Keys (Standardized column names) that are not metadata and no curated column uses."""
    known = schema.source_columns | RESERVED_COLUMNS
    return sorted({k for k in keys if k not in known})


def drift_columns(rows: pa.Table, schema: CuratedSchema) -> list[str]:
    """Unknown columns of ``rows`` with at least one value."""
    return [
        name
        for name in drift_keys(rows.column_names, schema)
        if rows.column(name).null_count < rows.num_rows
    ]


def drift_records(rows: pa.Table, schema: CuratedSchema, topic: str) -> pa.Table:
    """One drift record per unknown column with a value (sorted by column name)."""
    out: dict[str, list] = {name: [] for name in DRIFT_SCHEMA.names}
    times = rows.column(PUBLISH_TIME) if PUBLISH_TIME in rows.column_names else None
    for name in drift_columns(rows, schema):  # each has a value: ``first`` exists
        # only this column and the publish time are filtered: filtering the whole increment
        # per column made a wide drift (thousands of new keys) quadratic in its width
        column = rows.column(name)
        present = pc.is_valid(column)
        values = column.filter(present)
        first_seen = None
        first = 0
        if times is not None:
            seen = pa.table({"time": times.filter(present), "value": values})
            first = pc.sort_indices(seen, sort_keys=[("time", "ascending", "at_end"),
                                                     ("value", "ascending", "at_end")])[0].as_py()
            first_seen = seen.column("time")[first].as_py()
        out[TOPIC_NAME].append(topic)
        out["column_name"].append(name)
        out["first_seen"].append(first_seen)
        out["sample_value"].append(values[first].as_py())
        out["rows_seen"].append(len(values))
    return pa.Table.from_pydict(out, schema=DRIFT_SCHEMA)


__all__ = ["DRIFT_SCHEMA", "METADATA_COLUMNS", "drift_columns", "drift_keys", "drift_records"]
