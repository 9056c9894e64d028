"""A layer run's ``pipeline.materialization.RunReport`` as Dagster objects.

The report's typed values are in the wire form of Dagster Pipes; here each becomes the
``dg.MetadataValue`` of the same type, so a report reads the same whether the asset returned
it or the Spark job sent it over Pipes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from pyiceberg.schema import Schema

from leanops_dagster.pipeline import materialization
from leanops_dagster.pipeline.materialization import RunReport


def _table_schema(raw: Mapping[str, Any]) -> dg.TableSchemaMetadataValue:
    return dg.MetadataValue.table_schema(dg.TableSchema(columns=[
        dg.TableColumn(
            name=c["name"], type=c["type"], description=c.get("description"),
            tags=c.get("tags") or {},
            constraints=dg.TableColumnConstraints(**c.get("constraints", {})),
        )
        for c in raw["columns"]
    ]))


_TYPED = {
    "text": dg.MetadataValue.text,
    "json": dg.MetadataValue.json,
    "md": dg.MetadataValue.md,
    "table_schema": _table_schema,
}


def dagster_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Report metadata as Dagster metadata: raw numbers as they are, typed entries converted."""
    out: dict[str, Any] = {}
    for name, value in metadata.items():
        if isinstance(value, Mapping):
            value = _TYPED[value["type"]](value["raw_value"])
        out[name] = value
    return out


def materialize_result(report: RunReport) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata=dagster_metadata(report.metadata),
        check_results=[
            dg.AssetCheckResult(
                check_name=check.name,
                passed=check.passed,
                severity=dg.AssetCheckSeverity(check.severity),
                description=check.description,
                metadata=dagster_metadata(check.metadata),
            )
            for check in report.checks
        ],
    )


def column_schema(schema: Schema) -> dg.TableSchema:
    """The Iceberg schema as the ``dg.TableSchema`` of ``dagster/column_schema``."""
    return _table_schema(materialization.column_schema(schema)["raw_value"]).schema


def table_metadata(table, snapshot_id: int | None = None) -> dict[str, Any]:
    """``materialization.table_metadata`` as Dagster metadata (the RAW sensor's
    materializations)."""
    return dagster_metadata(materialization.table_metadata(table, snapshot_id))


def layer_table_metadata(catalog, identifier, snapshot_id: int | None) -> dict[str, Any]:
    return dagster_metadata(materialization.layer_table_metadata(catalog, identifier, snapshot_id))
