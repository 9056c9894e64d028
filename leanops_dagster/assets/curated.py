"""Curated zone: typed, CDE-validated, PII-masked, one row per idempotency_key (MERGE)."""


import dagster as dg
from pyiceberg.catalog import Catalog

from leanops_dagster.assets.keys import CURATED, STANDARDIZED
from leanops_dagster.assets.quarantine import (
    quarantined_rows_result,
    quarantined_rows_spec,
)
from leanops_dagster.assets.table_metadata import layer_table_metadata
from leanops_dagster.checks import messages
from leanops_dagster.checks.drift import DriftEntry, known_drift
from leanops_dagster.engines.spark.launch import launch_spark_job
from leanops_dagster.partitions import topic_partitions
from leanops_dagster.pipeline.curate import CurateResult
from leanops_dagster.pipeline.engine import run_curate
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.resources.catalog import IcebergCatalogResource
from leanops_dagster.resources.pipeline import PipelineConfigResource
from leanops_dagster.resources.schema_registry import SchemaRegistryResource
from leanops_dagster.schemas.models import TopicSchema

CURATED_BALANCE = dg.AssetCheckSpec(
    name="curated_water_balance",
    asset=CURATED,
    blocking=True,
    description=(
        "Per run: Standardized rows read = inserts + updates + superseded + CDE error rows "
        "+ rows quarantined by the safety net, as exact integers. Failing means the MERGE lost "
        "or invented rows. A run that read nothing passes with 'nothing read' (a balance over "
        "no rows holds)."
        " A run that found another run holding the topic's lease passes with 'not evaluated'."
    ),
)
CDE_ERROR_RATE = dg.AssetCheckSpec(
    name="cde_error_rate",
    asset=CURATED,
    blocking=True,
    description=(
        "Share of this run's rows failing a CDE (not-null, type cast, rule) against the "
        "schema's threshold. Failing means the source is producing bad data at volume; the "
        "valid rows are committed and the failing ones are in `curated.errors`. A run that "
        "read nothing passes with 'nothing read' (no rate to measure)."
        " A run that found another run holding the topic's lease passes with 'not evaluated'."
    ),
)
QUARANTINED_ROWS = quarantined_rows_spec(CURATED, "curated.errors")
SCHEMA_DRIFT = dg.AssetCheckSpec(
    name="schema_drift",
    asset=CURATED,
    description=(
        "Standardized columns the curated schema does not declare (new JSON keys), as the "
        "topic's drift log holds them: judged on every run from the log, not from this run's "
        "rows, so a run that read nothing keeps the warning while the drift is there. A "
        "warning: they stay in Standardized; extend the curated schema to promote them."
    ),
)


@dg.asset(
    key=CURATED,
    deps=[STANDARDIZED],
    partitions_def=topic_partitions,
    group_name="curated",
    kinds={"iceberg", "pyarrow"},
    owners=["team:data-platform"],
    check_specs=[CURATED_BALANCE, CDE_ERROR_RATE, QUARANTINED_ROWS, SCHEMA_DRIFT],
    tags={"leanops/layer": "curated"},
    description=(
        "`curated.<topic>`: typed columns from the curated schema, one row per "
        "idempotency_key (newest publish_time wins, out-of-order safe), PII masked with a "
        "keyed hash; MERGE as a partition-scoped copy-on-write on day(publish_time), "
        "bucket(16, idempotency_key). CDE failures go to `curated.errors`."
    ),
)
def curated_records(
    context: dg.AssetExecutionContext,
    catalog: IcebergCatalogResource,
    schema_registry: SchemaRegistryResource,
    pipeline: PipelineConfigResource,
) -> dg.MaterializeResult:
    topic = context.partition_key
    tables = TopicTables(topic, catalog.namespace_prefix)
    schema = schema_registry.load(topic)
    if pipeline.launches_spark_job(schema):  # the Spark job reports through Dagster Pipes
        return launch_spark_job(context, topic, "curated")
    iceberg = catalog.load()
    result = run_curate(
        iceberg, tables, schema, engine=pipeline.engine, pii_key=pipeline.pii_key_bytes(),
        lease_ttl_s=pipeline.lease_ttl_seconds,
    )
    if result.busy:
        context.log.info(messages.busy(topic, "curated"))
    else:
        context.log.info(
            f"{topic}: read {result.rows_read}, inserted {result.inserted}, updated "
            f"{result.updated}, superseded {result.superseded}, CDE error rows "
            f"{result.cde_error_rows}, quarantined {result.quarantined}"
        )
    return curated_materialization(
        result, tables, schema, known_drift(iceberg, tables, schema.curated), iceberg
    )


def curated_materialization(
    result: CurateResult,
    tables: TopicTables,
    schema: TopicSchema,
    drift: list[DriftEntry],
    catalog: Catalog,
) -> dg.MaterializeResult:
    """Metadata and per-run checks of one Curated run (also what the Spark job reports): the
    run's counts, and the table's name, total rows and columns after its MERGE."""
    threshold = schema.curated.cde_error_rate_threshold
    if result.busy:
        busy = messages.not_evaluated(messages.busy(tables.topic, "curated"))
        balance_why = rate_why = busy
    else:
        balance_why = messages.curated_balance(
            read=result.rows_read, inserted=result.inserted, updated=result.updated,
            superseded=result.superseded, cde_error_rows=result.cde_error_rows,
            quarantined=result.quarantined,
        )
        rate_why = messages.cde_error_rate(
            error_rows=result.cde_error_rows, rows_read=result.rows_read,
            threshold=threshold, errors_table=".".join(tables.curated_errors),
        )
    return dg.MaterializeResult(
        metadata={
            "rows_read": result.rows_read,
            "inserted": result.inserted,
            "updated": result.updated,
            "superseded": result.superseded,
            "cde_error_rows": result.cde_error_rows,
            "cde_errors": result.cde_errors,
            "quarantined": result.quarantined,
            **({"busy": dg.MetadataValue.text(result.busy)} if result.busy else {}),
            "watermark_from": dg.MetadataValue.text(str(result.watermark_from)),
            "watermark_to": dg.MetadataValue.text(str(result.watermark_to)),
            "snapshot_id": dg.MetadataValue.text(str(result.snapshot_id)),
            "merge_files_read": result.files_read,
            "merge_files_rewritten": result.files_rewritten,
            "merge_rows_rewritten": result.rows_rewritten,
            **layer_table_metadata(catalog, tables.curated, result.snapshot_id),
            "schema_version": dg.MetadataValue.text(str(schema.version)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CURATED_BALANCE.name,
                passed=result.balanced,
                description=balance_why,
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
            dg.AssetCheckResult(
                check_name=CDE_ERROR_RATE.name,
                passed=result.cde_error_rate <= threshold,
                description=rate_why,
                metadata={
                    "error_rate": result.cde_error_rate,
                    "threshold": threshold,
                    "cde_error_rows": result.cde_error_rows,
                    "rows_read": result.rows_read,
                    "nothing_read": result.rows_read == 0,
                },
            ),
            quarantined_rows_result(
                read=result.rows_read, quarantined=result.quarantined,
                errors_table=".".join(tables.curated_errors),
            ),
            dg.AssetCheckResult(
                check_name=SCHEMA_DRIFT.name,
                passed=not drift,
                severity=dg.AssetCheckSeverity.WARN,
                description=messages.schema_drift(
                    [d.column for d in drift], drift_log_table=".".join(tables.drift_log)
                ),
                metadata={
                    "drift_columns": _drift_table(drift),
                    "count": len(drift),
                    "seen_this_run": dg.MetadataValue.json(result.drift_columns),
                },
            ),
        ],
    )


def _drift_table(drift: list[DriftEntry]) -> dg.MetadataValue:
    if not drift:
        return dg.MetadataValue.text("none")
    return dg.MetadataValue.md(
        "| column | first seen |\n| --- | --- |\n"
        + "".join(
            f"| `{d.column}` | {d.first_seen.isoformat() if d.first_seen else ''} |\n"
            for d in drift
        )
    )
