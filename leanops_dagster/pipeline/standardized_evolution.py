"""Additive schema evolution for Standardized: new keys add STRING columns, none is dropped."""

from __future__ import annotations

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from leanops_dagster.constants import publish_day_spec
from leanops_dagster.iceberg.catalog import ensure_table, schema_from_arrow
from leanops_dagster.iceberg.datafiles import cast_columns
from leanops_dagster.pipeline.layout import Identifier


def stored_schema(arrow_schema: pa.Schema) -> pa.Schema:
    """large_string -> string and all fields nullable, so the Iceberg schema stays plain: the
    schema Standardized stores rows of ``arrow_schema`` under."""
    fields = []
    for f in arrow_schema:
        kind = pa.string() if pa.types.is_large_string(f.type) else f.type
        fields.append(pa.field(f.name, kind, nullable=True))
    return pa.schema(fields)


def evolve_and_align(
    catalog: Catalog, identifier: Identifier, table: Table | None, rows: pa.Table
) -> tuple[Table, pa.Table, list[str]]:
    """Create or evolve ``identifier`` to hold ``rows``' columns; return rows in table order."""
    incoming = stored_schema(rows.schema)
    if table is None:
        schema = schema_from_arrow(incoming)
        table = ensure_table(catalog, identifier, schema, publish_day_spec(schema))
        new_columns = list(incoming.names)
    else:
        known = set(table.schema().as_arrow().names)
        new_columns = [name for name in incoming.names if name not in known]
        if new_columns:
            with table.update_schema() as update:
                update.union_by_name(pa.schema([incoming.field(n) for n in new_columns]))
            table = catalog.load_table(identifier)
    target = table.schema().as_arrow()
    columns = [
        rows.column(f.name) if f.name in rows.column_names else pa.nulls(rows.num_rows, f.type)
        for f in target
    ]
    columns = cast_columns(columns, target.types)
    return table, pa.Table.from_arrays(columns, schema=target), new_columns
