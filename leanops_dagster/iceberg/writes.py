"""Appends of large increments: one grouping pass per write instead of pyiceberg's one filter
pass per partition (``datafiles.write_data_files``), committed as a normal fast append
that also carries the table's key index (``iceberg.key_index``) forward, its state set as
table properties in the same commit (``iceberg.state``)."""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
from pyiceberg.table import Table

from leanops_dagster.iceberg.datafiles import write_data_files
from leanops_dagster.iceberg.key_index import Entries
from leanops_dagster.iceberg.lookup import StoredRows
from leanops_dagster.iceberg.state import append_with_state, stage_state


def append_rows(
    table: Table,
    rows: pa.Table,
    snapshot_properties: dict[str, str],
    *,
    indexed: StoredRows | None = None,
    hashes: np.ndarray | None = None,
) -> None:
    """Append ``rows`` in one APPEND snapshot carrying ``snapshot_properties`` (even if empty:
    the watermark must still be committed).

    ``indexed``: the lookup of ``rows``' keys this run made (``lookup.find_stored``) on the
    same snapshot; the commit then carries the key index of that column with the new rows'
    entries, so the next lookup reads the index instead of the table (``hashes``: their
    ``key_hashes``, if the caller has them).
    """
    if rows.num_rows == 0:
        properties = dict(snapshot_properties)
        if indexed is not None:  # the index as it is (or as the lookup rebuilt it)
            properties |= indexed.index_property(table, Entries.empty())
        append_with_state(table, rows, properties)
        return
    write_uuid = uuid.uuid4()
    written = write_data_files(
        table.metadata, table.io, rows, write_uuid=write_uuid,
        index_column=indexed.column if indexed is not None else None, hashes=hashes,
    )
    properties = dict(snapshot_properties)
    if indexed is not None:
        properties |= indexed.index_property(table, written.entries)
    with table.transaction() as tx:
        with tx.update_snapshot(snapshot_properties=properties).fast_append() as append:
            for data_file in written.files:
                append.append_data_file(data_file)
        stage_state(tx, properties)
