"""Standardized zone: flattened, all-STRING, one row per message_id."""


import dagster as dg

from leanops_dagster.assets.keys import RAW_STAGING, STANDARDIZED
from leanops_dagster.assets.quarantine import quarantined_rows_spec
from leanops_dagster.assets.reporting import materialize_result
from leanops_dagster.engines.choice import run_standardize
from leanops_dagster.partitions import topic_partitions
from leanops_dagster.pipeline import check_messages as messages
from leanops_dagster.pipeline import materialization
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.materialization import standardized_report
from leanops_dagster.resources.catalog import IcebergCatalogResource
from leanops_dagster.resources.pipeline import PipelineConfigResource
from leanops_dagster.resources.schema_registry import SchemaRegistryResource
from leanops_dagster.resources.spark_launch import launch_spark_job

POST_RAW_BALANCE = dg.AssetCheckSpec(
    name=materialization.POST_RAW_BALANCE,
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
        iceberg, tables, schema, engine=pipeline.engine, lease_ttl_s=pipeline.lease_ttl_seconds,
        settings=pipeline.settings_of_layer_runs(),
    )
    if result.busy:
        context.log.info(messages.busy(topic, "standardized"))
    else:
        context.log.info(
            f"{topic}: read {result.rows_read}, wrote {result.rows_written}, parse errors "
            f"{result.parse_errors}, duplicates {result.duplicates}, quarantined "
            f"{result.quarantined}"
        )
    return materialize_result(standardized_report(result, tables, iceberg))

