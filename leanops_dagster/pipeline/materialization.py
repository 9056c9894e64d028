"""What one layer run reports to Dagster, as plain data: its materialization metadata and its
per-run check outcomes.

Both ways a run reports build the same ``RunReport`` here: the in-process asset turns it into
a ``dg.MaterializeResult`` (``assets.reporting``), the Spark job sends it over Dagster Pipes
(``engines.spark.job``). Building it needs no Dagster, so the job runs where only
``dagster-pipes`` is installed (a Glue or EMR worker).

Metadata values are ints, floats and bools as they are, and everything else in the wire form
of Dagster Pipes (``PipesMetadataValue``: ``{"raw_value": ..., "type": "text" | "json" | "md"
| "table_schema"}``), which Pipes carries unchanged and ``assets.reporting`` maps to Dagster's
``MetadataValue`` of the same type.

Standard table metadata, the same on every zone's asset:

- ``dagster/table_name``: the table's identifier, ``<namespace>.<table>``;
- ``dagster/row_count``: the table's total rows after the commit being reported (Iceberg's
  ``total-records`` of that snapshot), Dagster's documented meaning; what one run added or
  changed is reported under the layer's own keys (``rows_written``, ``inserted``, ...);
- ``dagster/column_schema``: the Iceberg schema (a Standardized table gains columns over time,
  so it belongs to the materialization, not to the definition).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.schema import Schema
from pyiceberg.table import Table

from leanops_dagster.pipeline import check_messages as messages
from leanops_dagster.pipeline.layout import TopicTables

if TYPE_CHECKING:
    from leanops_dagster.pipeline.curate import CurateResult
    from leanops_dagster.pipeline.known_drift import DriftEntry
    from leanops_dagster.pipeline.standardize import StandardizeResult
    from leanops_dagster.schemas.models import TopicSchema

TABLE_NAME = "dagster/table_name"
ROW_COUNT = "dagster/row_count"
COLUMN_SCHEMA = "dagster/column_schema"

#: the per-run checks' names (the assets' ``AssetCheckSpec``s use these)
POST_RAW_BALANCE = "post_raw_water_balance"
CURATED_BALANCE = "curated_water_balance"
CDE_ERROR_RATE = "cde_error_rate"
QUARANTINED_ROWS = "quarantined_rows"
SCHEMA_DRIFT = "schema_drift"

Severity = Literal["ERROR", "WARN"]


def text(value: object) -> dict[str, Any]:
    return {"raw_value": str(value), "type": "text"}


def json_value(value: object) -> dict[str, Any]:
    return {"raw_value": value, "type": "json"}


def markdown(value: str) -> dict[str, Any]:
    return {"raw_value": value, "type": "md"}


def column_schema(schema: Schema) -> dict[str, Any]:
    """The Iceberg schema's top-level fields as a Pipes ``table_schema`` (type as Iceberg
    prints it)."""
    return {
        "raw_value": {"columns": [
            {
                "name": f.name, "type": str(f.field_type), "description": f.doc, "tags": {},
                "constraints": {"nullable": not f.required, "unique": False, "other": []},
            }
            for f in schema.fields
        ]},
        "type": "table_schema",
    }


@dataclass(frozen=True)
class CheckOutcome:
    """One per-run check result: ``description`` is the one-line explanation."""

    name: str
    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)
    severity: Severity = "ERROR"


@dataclass(frozen=True)
class RunReport:
    metadata: dict[str, Any]
    checks: list[CheckOutcome]


def table_metadata(table: Table, snapshot_id: int | None = None) -> dict[str, Any]:
    """The three standard entries of ``table`` at ``snapshot_id`` (default: its current)."""
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


def quarantined_rows_outcome(*, read: int, quarantined: int, errors_table: str) -> CheckOutcome:
    return CheckOutcome(
        QUARANTINED_ROWS, passed=quarantined == 0, severity="WARN",
        description=messages.quarantined_rows(
            read=read, quarantined=quarantined, errors_table=errors_table),
        metadata={"quarantined": quarantined, "rows_read": read},
    )


def _run_metadata(result: StandardizeResult | CurateResult) -> dict[str, Any]:
    return {
        **({"busy": text(result.busy)} if result.busy else {}),
        "watermark_from": text(result.watermark_from),
        "watermark_to": text(result.watermark_to),
        "snapshot_id": text(result.snapshot_id),
    }


def standardized_report(
    result: StandardizeResult, tables: TopicTables, catalog: Catalog
) -> RunReport:
    """One Standardized run: its counts, the table's name, total rows and columns after its
    commit, and its per-run checks."""
    errors_table = ".".join(tables.parse_errors)
    if result.busy:
        why = messages.not_evaluated(messages.busy(tables.topic, "standardized"))
    else:
        why = messages.post_raw_balance(
            read=result.rows_read, written=result.rows_written,
            parse_errors=result.parse_errors, duplicates=result.duplicates,
            quarantined=result.quarantined, errors_table=errors_table,
        )
    accounted = (result.rows_written + result.parse_errors + result.duplicates
                 + result.quarantined)
    return RunReport(
        metadata={
            "rows_read": result.rows_read,
            "rows_written": result.rows_written,
            "parse_errors": result.parse_errors,
            "duplicates": result.duplicates,
            "quarantined": result.quarantined,
            **_run_metadata(result),
            "new_columns": json_value(list(result.new_columns)),
            **layer_table_metadata(catalog, tables.standardized, result.snapshot_id),
        },
        checks=[
            CheckOutcome(
                POST_RAW_BALANCE, passed=result.balanced, description=why,
                metadata={
                    "raw_read": result.rows_read,
                    "standardized_new": result.rows_written,
                    "parse_errors": result.parse_errors,
                    "duplicates": result.duplicates,
                    "quarantined": result.quarantined,
                    "difference": result.rows_read - accounted,
                    "nothing_read": result.rows_read == 0,
                },
            ),
            quarantined_rows_outcome(
                read=result.rows_read, quarantined=result.quarantined, errors_table=errors_table
            ),
        ],
    )


def curated_report(
    result: CurateResult,
    tables: TopicTables,
    schema: TopicSchema,
    drift: Sequence[DriftEntry],
    catalog: Catalog,
) -> RunReport:
    """One Curated run: its counts, the table's name, total rows and columns after its MERGE,
    and its per-run checks (``drift``: the topic's known drift, ``pipeline.known_drift``)."""
    threshold = schema.curated.cde_error_rate_threshold
    errors_table = ".".join(tables.curated_errors)
    if result.busy:
        balance_why = rate_why = messages.not_evaluated(messages.busy(tables.topic, "curated"))
    else:
        balance_why = messages.curated_balance(
            read=result.rows_read, inserted=result.inserted, updated=result.updated,
            superseded=result.superseded, cde_error_rows=result.cde_error_rows,
            quarantined=result.quarantined,
        )
        rate_why = messages.cde_error_rate(
            error_rows=result.cde_error_rows, rows_read=result.rows_read,
            threshold=threshold, errors_table=errors_table,
        )
    return RunReport(
        metadata={
            "rows_read": result.rows_read,
            "inserted": result.inserted,
            "updated": result.updated,
            "superseded": result.superseded,
            "cde_error_rows": result.cde_error_rows,
            "cde_errors": result.cde_errors,
            "quarantined": result.quarantined,
            **_run_metadata(result),
            "merge_files_read": result.files_read,
            "merge_files_rewritten": result.files_rewritten,
            "merge_rows_rewritten": result.rows_rewritten,
            **layer_table_metadata(catalog, tables.curated, result.snapshot_id),
            "schema_version": text(schema.version),
        },
        checks=[
            CheckOutcome(
                CURATED_BALANCE, passed=result.balanced, description=balance_why,
                metadata={
                    "standardized_read": result.rows_read,
                    "inserted": result.inserted,
                    "updated": result.updated,
                    "superseded": result.superseded,
                    "cde_error_rows": result.cde_error_rows,
                    "quarantined": result.quarantined,
                    "nothing_read": result.rows_read == 0,
                },
            ),
            CheckOutcome(
                CDE_ERROR_RATE, passed=result.cde_error_rate <= threshold,
                description=rate_why,
                metadata={
                    "error_rate": result.cde_error_rate,
                    "threshold": threshold,
                    "cde_error_rows": result.cde_error_rows,
                    "rows_read": result.rows_read,
                    "nothing_read": result.rows_read == 0,
                },
            ),
            quarantined_rows_outcome(
                read=result.rows_read, quarantined=result.quarantined, errors_table=errors_table
            ),
            CheckOutcome(
                SCHEMA_DRIFT, passed=not drift, severity="WARN",
                description=messages.schema_drift(
                    [d.column for d in drift], drift_log_table=".".join(tables.drift_log)
                ),
                metadata={
                    "drift_columns": _drift_table(drift),
                    "count": len(drift),
                    "seen_this_run": json_value(list(result.drift_columns)),
                },
            ),
        ],
    )


def _drift_table(drift: Sequence[DriftEntry]) -> dict[str, Any]:
    if not drift:
        return text("none")
    return markdown(
        "| column | first seen |\n| --- | --- |\n"
        + "".join(
            f"| `{d.column}` | {d.first_seen.isoformat() if d.first_seen else ''} |\n"
            for d in drift
        )
    )

