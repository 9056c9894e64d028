"""Jobs: the per-topic pipeline (Standardized -> Curated) and the runbook jobs."""

import datetime as dt

import dagster as dg

from leanops_dagster.assets.keys import CURATED, STANDARDIZED
from leanops_dagster.checks.accountability import accountability_checks
from leanops_dagster.constants import ZONES
from leanops_dagster.partitions import topic_partitions
from leanops_dagster.resources.catalog import IcebergCatalogResource
from leanops_dagster.resources.sqs import SqsResource
from leanops_dagster.runbook import describe, maintain_catalog

TOPIC_TAG = "leanops/topic"

#: The checks over all topics (checks/accountability.py): they run in accountability_checks,
#: not in every topic run.
ALL_TOPICS_CHECKS = tuple(key for check in accountability_checks for key in check.check_keys)

topic_pipeline_job = dg.define_asset_job(
    name="topic_pipeline",
    description=(
        "Standardized then Curated for one topic partition, reading only what is new since "
        "each layer's watermark. Blocking checks on Standardized stop Curated in the same run. "
        "Launch it by hand for a manual full run of one topic."
    ),
    # The per-run checks come with the assets; the all-topics checks run in their own job.
    # downstream(): an optional serving asset (the Snowflake refresh) runs right after Curated
    selection=dg.AssetSelection.assets(STANDARDIZED, CURATED).downstream()
    - dg.AssetSelection.checks(*ALL_TOPICS_CHECKS),
    partitions_def=topic_partitions,
    # Both steps in one process: no per-step interpreter start-up, and the steps are
    # sequential anyway (Curated depends on Standardized).
    executor_def=dg.in_process_executor,
)


class DlqReplayConfig(dg.Config):
    topic: str | None = None
    max_messages: int = 1000


@dg.op(description="Moves DLQ messages back to their source queue, counted per topic.")
def replay_dlq_op(context: dg.OpExecutionContext, config: DlqReplayConfig, sqs: SqsResource):
    result = sqs.replay_dlq(topic=config.topic, max_messages=config.max_messages)
    context.add_output_metadata(
        {"received": result.received, "replayed": dg.MetadataValue.json(result.replayed),
         "skipped": dg.MetadataValue.json(result.skipped)}
    )
    context.log.info(f"DLQ replay: {describe(result)}")


@dg.job(description="Runbook: replay the centralized DLQ back to the source queues.")
def dlq_replay_job():
    replay_dlq_op()


class MaintenanceConfig(dg.Config):
    expire_older_than_hours: int = 24 * 7
    min_files_to_compact: int = 8


@dg.op(description="Expires old snapshots and compacts small files of Standardized/Curated; "
                   "removes key index segments no snapshot points to any more.")
def maintain_tables_op(
    context: dg.OpExecutionContext, config: MaintenanceConfig, catalog: IcebergCatalogResource
):
    results = maintain_catalog(
        catalog.load(),
        [catalog.namespace(zone) for zone in ZONES],
        older_than=dt.timedelta(hours=config.expire_older_than_hours),
        min_files=config.min_files_to_compact,
    )
    table = "| table | files before | files after | snapshots expired | index segments removed |\n"
    table += "| --- | --- | --- | --- | --- |\n"
    table += "".join(
        f"| {r.table} | {r.files_before} | {r.files_after} | {r.snapshots_expired} "
        f"| {r.index_segments_removed} |\n"
        for r in results
    )
    context.add_output_metadata({"tables": dg.MetadataValue.md(table)})


@dg.job(description="Runbook: Iceberg table maintenance (expire snapshots, compact files).")
def table_maintenance_job():
    maintain_tables_op()


accountability_job = dg.define_asset_job(
    name="accountability_checks",
    description="Evaluates the cumulative water balances, pre-RAW balance and freshness.",
    # Exactly these: selecting checks_for_assets minus the assets would also drop the
    # assets' checks and leave only pre_raw_balance.
    selection=dg.AssetSelection.checks(*ALL_TOPICS_CHECKS),
)
