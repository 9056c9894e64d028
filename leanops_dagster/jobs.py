"""Jobs: the per-topic pipeline (Standardized -> Curated) and the runbook jobs."""

import datetime as dt

import dagster as dg

from leanops_dagster.assets.curated import CDE_ERROR_RATE, CURATED_BALANCE
from leanops_dagster.assets.keys import CURATED, STANDARDIZED
from leanops_dagster.assets.reporting import layer_table_metadata
from leanops_dagster.checks.accountability import (
    IngestionCounts,
    accountability_checks,
    curated_balance_all_time,
    verdicts,
)
from leanops_dagster.constants import CURATED_ZONE, STANDARDIZED_ZONE, ZONES
from leanops_dagster.iceberg.maintenance import maintain_catalog
from leanops_dagster.lanes import housekeeping_tags, ingestion_tags
from leanops_dagster.partitions import topic_partitions
from leanops_dagster.pipeline.dlq_replay import describe
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.rebuild import deploy_schema, drop_replaced_copies
from leanops_dagster.resources.catalog import IcebergCatalogResource
from leanops_dagster.resources.ingestion import IngestionCountsResource
from leanops_dagster.resources.pipeline import PipelineConfigResource
from leanops_dagster.resources.schema_registry import SchemaRegistryResource
from leanops_dagster.resources.sqs import SqsResource

TOPIC_TAG = "leanops/topic"

#: The all-time checks (checks/accountability.py): evaluated for every topic in one run of
#: accountability_checks, not in every topic run.
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
    # ingestion first: dequeued before any housekeeping run (lanes.py)
    run_tags=ingestion_tags(),
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


@dg.job(description="Runbook: replay the centralized DLQ back to the source queues.",
        run_tags=housekeeping_tags())
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
    # the dated pre-rebuild copies (pipeline.rebuild) live as long as old snapshots do
    dropped = [
        name
        for zone in (STANDARDIZED_ZONE, CURATED_ZONE)
        for name in drop_replaced_copies(
            catalog.load(), catalog.namespace(zone),
            older_than=dt.timedelta(hours=config.expire_older_than_hours),
        )
    ]
    context.add_output_metadata({"tables": dg.MetadataValue.md(table),
                                 "replaced_copies_dropped": dg.MetadataValue.json(dropped)})


@dg.job(description="Runbook: Iceberg table maintenance (expire snapshots, compact files).",
        executor_def=dg.in_process_executor, run_tags=housekeeping_tags())
def table_maintenance_job():
    maintain_tables_op()


class SchemaRebuildConfig(dg.Config):
    snapshots_per_chunk: int = 50
    #: rebuild Standardized from RAW first (automatic for a breaking standardized.json change)
    from_raw: bool = False


@dg.op(description=(
    "Rebuilds the partition's curated.<topic> from its whole Standardized history under the "
    "source schema, checks the rebuilt table's balance (blocking: an unbalanced rebuild is "
    "not swapped in), swaps it in atomically, then publishes the schema: `leanops schema "
    "deploy <topic> --rebuild`. Resumable: rerun a failed or killed run."
))
def rebuild_topic_op(
    context: dg.OpExecutionContext,
    config: SchemaRebuildConfig,
    catalog: IcebergCatalogResource,
    schema_registry: SchemaRegistryResource,
    pipeline: PipelineConfigResource,
) -> None:
    topic = context.partition_key
    tables = TopicTables(topic, catalog.namespace_prefix)
    iceberg = catalog.load()
    outcome = deploy_schema(
        schema_registry.registry(), iceberg, tables,
        rebuild=True, from_raw=config.from_raw, pii_key=pipeline.pii_key_bytes(),
        snapshots_per_chunk=config.snapshots_per_chunk, progress=context.log.info,
    )
    rebuilt = outcome.rebuild
    assert rebuilt is not None
    metadata = {
        "schema_version": dg.MetadataValue.text(rebuilt.schema_version),
        "replaced_schema_version": dg.MetadataValue.text(str(rebuilt.replaced_version)),
        "changes": dg.MetadataValue.md(
            "| verdict | change |\n| --- | --- |\n"
            + "".join(f"| {c.verdict.value} | `{c.what}` |\n" for c in outcome.changes)
        ),
        "rows_read_from_history": rebuilt.rows_read,
        "curated_rows": rebuilt.curated_rows,
        "updates": rebuilt.updates,
        "superseded": rebuilt.superseded,
        "cde_error_rows": rebuilt.cde_error_rows,
        "quarantined": rebuilt.quarantined,
        "chunks_this_run": rebuilt.chunks,
        "resumed": rebuilt.resumed,
        "balanced": rebuilt.balanced,
        "swap_snapshot_id": dg.MetadataValue.text(str(rebuilt.swap_snapshot_id)),
        "replaced_snapshot_id": dg.MetadataValue.text(str(rebuilt.replaced_snapshot_id)),
        "replaced_copy": dg.MetadataValue.text(str(rebuilt.replaced_copy)),
        "watermark_to": dg.MetadataValue.text(str(rebuilt.watermark)),
        "from_raw": rebuilt.from_raw,
        "raw_rows_read": rebuilt.raw_rows_read,
        "standardized_rows": rebuilt.standardized_rows,
        "parse_errors": rebuilt.parse_errors,
        **layer_table_metadata(iceberg, tables.curated, rebuilt.swap_snapshot_id),
    }
    context.log_event(dg.AssetMaterialization(
        asset_key=CURATED, partition=topic, metadata=metadata,
        description=f"rebuilt from history ({rebuilt.rebuild_id})",
    ))
    # the Curated checks, over the rebuilt history (an unbalanced rebuild never got here:
    # the balance is checked before the swap, which is what makes it blocking)
    balance = {"standardized_consumed": rebuilt.rows_read, "curated": rebuilt.curated_rows,
               "updates": rebuilt.updates, "superseded": rebuilt.superseded,
               "cde_error_rows": rebuilt.cde_error_rows, "quarantined": rebuilt.quarantined}
    threshold = schema_registry.load(topic).curated.cde_error_rate_threshold
    error_rate = rebuilt.cde_error_rows / rebuilt.rows_read if rebuilt.rows_read else 0.0
    for check_key, passed, check_metadata in (
        (curated_balance_all_time.check_key, rebuilt.balanced, balance),
        (CURATED_BALANCE.key, rebuilt.balanced, balance),
        (CDE_ERROR_RATE.key, error_rate <= threshold,
         {"error_rate": error_rate, "threshold": threshold,
          "cde_error_rows": rebuilt.cde_error_rows}),
    ):
        context.log_event(dg.AssetCheckEvaluation(
            asset_key=check_key.asset_key, check_name=check_key.name, passed=passed,
            metadata=check_metadata, partition=topic,
        ))


@dg.job(
    partitions_def=topic_partitions,
    executor_def=dg.in_process_executor,
    run_tags=housekeeping_tags(),
    description=(
        "Runbook: rebuild a topic's Curated table from its history under the source schema "
        "(required to deploy a breaking schema change; also restates the table after a rule "
        "fix). Launch it for a topic partition, or backfill several."
    ),
)
def schema_rebuild_job():
    rebuild_topic_op()


@dg.op(description=(
    "Evaluates the all-time checks (pre-RAW balance, cumulative post-RAW and curated balances, "
    "freshness) of every onboarded topic in this one process, and records each topic's "
    "verdicts for its partition of each check."
))
def evaluate_all_time_checks(
    context: dg.OpExecutionContext,
    catalog: IcebergCatalogResource,
    ingestion_counts: IngestionCountsResource,
    pipeline: PipelineConfigResource,
) -> None:
    topics = sorted(context.instance.get_dynamic_partitions(topic_partitions.name))
    iceberg = catalog.load()
    counts = IngestionCounts.fetch(ingestion_counts)  # one query for every topic
    now = dt.datetime.now(dt.UTC)
    failed: dict[str, int] = {}
    raised: dict[str, str] = {}
    for topic in topics:
        try:
            found = verdicts(iceberg, TopicTables(topic, catalog.namespace_prefix), counts,
                             pipeline.freshness_minutes, now)
        except Exception as exc:  # one broken topic must not hide the others' verdicts
            raised[topic] = f"{type(exc).__name__}: {exc}"
            context.log.error(f"all-time checks of {topic} raised {raised[topic]}")
            continue
        for check_key, verdict in found.items():
            context.log_event(verdict.evaluation(check_key, topic))
            if not verdict.passed:
                failed[check_key.name] = failed.get(check_key.name, 0) + 1
    context.add_output_metadata({
        "topics": len(topics),
        "failed_checks": dg.MetadataValue.json(failed),
        "topics_raised": dg.MetadataValue.json(raised),
    })
    if raised:
        raise dg.Failure(
            f"the all-time checks of {len(raised)} topic(s) raised: {', '.join(sorted(raised))}",
            metadata={"errors": dg.MetadataValue.json(raised)},
        )


@dg.job(
    name="accountability_checks",
    description="Evaluates the cumulative water balances, pre-RAW balance and freshness of "
    "every onboarded topic in one in-process run (one run per period, whatever the number of "
    "topics); each verdict is recorded for the topic's partition of its check.",
    executor_def=dg.in_process_executor,
    run_tags=housekeeping_tags(),
)
def accountability_job():
    evaluate_all_time_checks()
