"""Dagster's standard table metadata of an Iceberg table, the same on every zone's asset.

- ``dagster/table_name``: the table's identifier, ``<namespace>.<table>``;
- ``dagster/row_count``: the table's total rows after the commit being reported (Iceberg's
  ``total-records`` of that snapshot), Dagster's documented meaning; what one run added or
  changed is reported under the layer's own keys (``rows_written``, ``inserted``, ``updated``,
  ``added_records``);
- ``dagster/column_schema``: the Iceberg schema as a ``dg.TableSchema`` (a Standardized table
  gains columns over time, so it belongs to the materialization, not to the definition).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.schema import Schema
from pyiceberg.table import Table

TABLE_NAME = "dagster/table_name"
ROW_COUNT = "dagster/row_count"
COLUMN_SCHEMA = "dagster/column_schema"


def column_schema(schema: Schema) -> dg.TableSchema:
    """The Iceberg schema's top-level fields as Dagster columns (type as Iceberg prints it)."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=field.name,
                type=str(field.field_type),
                description=field.doc,
                constraints=dg.TableColumnConstraints(nullable=not field.required),
            )
            for field in schema.fields
        ]
    )


def table_metadata(table: Table, snapshot_id: int | None = None) -> dict[str, Any]:
    """The three entries for ``table`` at ``snapshot_id`` (default: its current snapshot)."""
    snapshot = (
        table.snapshot_by_id(snapshot_id) if snapshot_id is not None else None
    ) or table.current_snapshot()
    summary = snapshot.summary if snapshot is not None else None
    return {
        TABLE_NAME: ".".join(table.name()),
        ROW_COUNT: int(summary.get("total-records", "0")) if summary is not None else 0,
        COLUMN_SCHEMA: column_schema(table.schema()),
    }


def layer_table_metadata(
    catalog: Catalog, identifier: Sequence[str], snapshot_id: int | None
) -> dict[str, Any]:
    """``table_metadata`` of a layer table; only the name while the table does not exist yet
    (a run that found another run creating it)."""
    try:
        table = catalog.load_table(tuple(identifier))
    except NoSuchTableError:
        return {TABLE_NAME: ".".join(identifier)}
    return table_metadata(table, snapshot_id)
