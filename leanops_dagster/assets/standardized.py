"""Standardized zone: flattened, all-STRING, one row per message_id."""


import dagster as dg
from pyiceberg.catalog import Catalog

from leanops_dagster.assets.keys import RAW_STAGING, STANDARDIZED
from leanops_dagster.assets.quarantine import (
    quarantined_rows_result,
    quarantined_rows_spec,
)
from leanops_dagster.assets.table_metadata import layer_table_metadata
from leanops_dagster.checks import messages
from leanops_dagster.engines.spark.launch import launch_spark_job
from leanops_dagster.partitions import topic_partitions
from leanops_dagster.pipeline.engine import run_standardize
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.standardize import StandardizeResult
from leanops_dagster.resources.catalog import IcebergCatalogResource
from leanops_dagster.resources.pipeline import PipelineConfigResource
from leanops_dagster.resources.schema_registry import SchemaRegistryResource

POST_RAW_BALANCE = dg.AssetCheckSpec(
    name="post_raw_water_balance",
    asset=STANDARDIZED,
    blocking=True,
    description=(
        "Per run: RAW rows read = Standardized rows written + parse errors + duplicates "
        "dropped + rows quarantined by the safety net, as exact integers. Failing means rows "
        "were lost or invented; Curated does not run on this increment. A run that read "
        "nothing passes with 'nothing read' (a balance over no rows holds)."
        " A run that found another run holding the topic's lease passes with 'not evaluated'."
    ),
)
QUARANTINED_ROWS = quarantined_rows_spec(STANDARDIZED, "standardized.parse_errors")


@dg.asset(
    key=STANDARDIZED,
    deps=[RAW_STAGING],
    partitions_def=topic_partitions,
    group_name="standardized",
    kinds={"iceberg", "pyarrow"},
    owners=["team:data-platform"],
    check_specs=[POST_RAW_BALANCE, QUARANTINED_ROWS],
    tags={"leanops/layer": "standardized"},
    description=(
        "`standardized.<topic>`: RAW increment since the watermark, flattened (nested keys "
        "joined by `_`, lower-cased), every column STRING, FIFO-deduplicated on message_id; "
        "bad JSON and missing metadata go to `standardized.parse_errors`. Rows and watermark "
        "are committed in one Iceberg snapshot."
    ),
)
def standardized_records(
    context: dg.AssetExecutionContext,
    catalog: IcebergCatalogResource,
    schema_registry: SchemaRegistryResource,
    pipeline: PipelineConfigResource,
) -> dg.MaterializeResult:
    topic = context.partition_key
    tables = TopicTables(topic, catalog.namespace_prefix)
    schema = schema_registry.load(topic)
    if pipeline.launches_spark_job(schema):  # the Spark job reports through Dagster Pipes
        return launch_spark_job(context, topic, "standardized")
    iceberg = catalog.load()
    result = run_standardize(
        iceberg, tables, schema, engine=pipeline.engine, lease_ttl_s=pipeline.lease_ttl_seconds
    )
    if result.busy:
        context.log.info(messages.busy(topic, "standardized"))
    else:
        context.log.info(
            f"{topic}: read {result.rows_read}, wrote {result.rows_written}, parse errors "
            f"{result.parse_errors}, duplicates {result.duplicates}, quarantined "
            f"{result.quarantined}"
        )
    return standardized_materialization(result, tables, iceberg)


def standardized_materialization(
    result: StandardizeResult, tables: TopicTables, catalog: Catalog
) -> dg.MaterializeResult:
    """Metadata and per-run check of one Standardized run (also what the Spark job reports):
    the run's counts, and the table's name, total rows and columns after its commit."""
    errors_table = ".".join(tables.parse_errors)
    if result.busy:
        why = messages.not_evaluated(messages.busy(tables.topic, "standardized"))
    else:
        why = messages.post_raw_balance(
            read=result.rows_read, written=result.rows_written,
            parse_errors=result.parse_errors, duplicates=result.duplicates,
            quarantined=result.quarantined, errors_table=errors_table,
        )
    return dg.MaterializeResult(
        metadata={
            "rows_read": result.rows_read,
            "rows_written": result.rows_written,
            "parse_errors": result.parse_errors,
            "duplicates": result.duplicates,
            "quarantined": result.quarantined,
            **({"busy": dg.MetadataValue.text(result.busy)} if result.busy else {}),
            "watermark_from": dg.MetadataValue.text(str(result.watermark_from)),
            "watermark_to": dg.MetadataValue.text(str(result.watermark_to)),
            "snapshot_id": dg.MetadataValue.text(str(result.snapshot_id)),
            "new_columns": dg.MetadataValue.json(result.new_columns),
            **layer_table_metadata(catalog, tables.standardized, result.snapshot_id),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=POST_RAW_BALANCE.name,
                passed=result.balanced,
                severity=dg.AssetCheckSeverity.ERROR,
                description=why,
                metadata={
                    "raw_read": result.rows_read,
                    "standardized_new": result.rows_written,
                    "parse_errors": result.parse_errors,
                    "duplicates": result.duplicates,
                    "quarantined": result.quarantined,
                    "difference": result.rows_read
                    - (result.rows_written + result.parse_errors + result.duplicates
                       + result.quarantined),
                    "nothing_read": result.rows_read == 0,
                },
            ),
            quarantined_rows_result(
                read=result.rows_read, quarantined=result.quarantined,
                errors_table=".".join(tables.parse_errors),
            ),
        ],
    )
