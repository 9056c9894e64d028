"""Appends of large increments: one grouping pass per write instead of pyiceberg's one filter
pass per partition (``merge.write_data_files``), committed as a normal fast append."""

from __future__ import annotations

import uuid

import pyarrow as pa
from pyiceberg.table import Table

from leanops_dagster.iceberg.merge import write_data_files


def append_rows(table: Table, rows: pa.Table, snapshot_properties: dict[str, str]) -> None:
    """Append ``rows`` in one APPEND snapshot carrying ``snapshot_properties`` (even if empty:
    the watermark must still be committed)."""
    if rows.num_rows == 0:
        table.append(rows, snapshot_properties=snapshot_properties)
        return
    write_uuid = uuid.uuid4()
    data_files = write_data_files(table.metadata, table.io, rows, write_uuid=write_uuid)
    with table.transaction() as tx, tx.update_snapshot(
        snapshot_properties=snapshot_properties
    ).fast_append() as append:
        for data_file in data_files:
            append.append_data_file(data_file)
