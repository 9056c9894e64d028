"""Curated zone: typed, CDE-validated, PII-masked, one row per idempotency_key (MERGE)."""


import dagster as dg

from leanops_dagster.assets.keys import CURATED, STANDARDIZED
from leanops_dagster.assets.quarantine import quarantined_rows_spec
from leanops_dagster.assets.reporting import materialize_result
from leanops_dagster.engines.choice import run_curate
from leanops_dagster.partitions import topic_partitions
from leanops_dagster.pipeline import check_messages as messages
from leanops_dagster.pipeline import materialization
from leanops_dagster.pipeline.known_drift import known_drift
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.materialization import curated_report
from leanops_dagster.resources.catalog import IcebergCatalogResource
from leanops_dagster.resources.pipeline import PipelineConfigResource
from leanops_dagster.resources.schema_registry import SchemaRegistryResource
from leanops_dagster.resources.spark_launch import launch_spark_job

CURATED_BALANCE = dg.AssetCheckSpec(
    name=materialization.CURATED_BALANCE,
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
    name=materialization.CDE_ERROR_RATE,
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
    name=materialization.SCHEMA_DRIFT,
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
        lease_ttl_s=pipeline.lease_ttl_seconds, settings=pipeline.settings_of_layer_runs(),
    )
    if result.busy:
        context.log.info(messages.busy(topic, "curated"))
    else:
        context.log.info(
            f"{topic}: read {result.rows_read}, inserted {result.inserted}, updated "
            f"{result.updated}, superseded {result.superseded}, CDE error rows "
            f"{result.cde_error_rows}, quarantined {result.quarantined}"
        )
    drift = known_drift(iceberg, tables, schema.curated)
    return materialize_result(curated_report(result, tables, schema, drift, iceberg))

