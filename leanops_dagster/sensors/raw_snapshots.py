"""RAW snapshot sensor: records new RAW snapshots per onboarded topic and requests runs.

Cursor: ``{topic: last seen RAW snapshot id}``. No new snapshot -> no run. The run key is the
RAW snapshot id, so re-evaluating the same snapshot never requests a second run, and a topic
that already has a run waiting in the queue gets no other: that run will read everything
new when it starts (watermarks), so a second trigger would only be a no-op run.
"""

import json

import dagster as dg

from leanops_dagster.assets.keys import RAW_STAGING
from leanops_dagster.assets.reporting import table_metadata
from leanops_dagster.jobs import TOPIC_TAG, topic_pipeline_job
from leanops_dagster.partitions import topic_partitions
from leanops_dagster.resources.catalog import IcebergCatalogResource


@dg.sensor(
    job=topic_pipeline_job,
    # The sensor daemon looks at sensors every 5 s at most (its loop), so this is as often as
    # it gets; a tick reads one RAW snapshot id per topic and one query of queued runs.
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches each onboarded topic's RAW Iceberg table for new snapshots.",
)
def raw_snapshot_sensor(
    context: dg.SensorEvaluationContext, catalog: IcebergCatalogResource
) -> dg.SensorResult | dg.SkipReason:
    topics = context.instance.get_dynamic_partitions(topic_partitions.name)
    if not topics:
        return dg.SkipReason("no onboarded topic: deploy a schema first")
    cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    iceberg = catalog.load()
    waiting = _topics_with_waiting_runs(context.instance)
    events: list[dg.AssetMaterialization] = []
    runs: list[dg.RunRequest] = []
    for topic in sorted(topics):
        table = catalog.raw_table(iceberg, topic)
        snapshot = table.current_snapshot() if table is not None else None
        if snapshot is None or cursor.get(topic) == snapshot.snapshot_id:
            continue
        cursor[topic] = snapshot.snapshot_id
        summary = snapshot.summary.additional_properties if snapshot.summary else {}
        events.append(
            dg.AssetMaterialization(
                asset_key=RAW_STAGING,
                partition=topic,
                description="New RAW snapshot written by Firehose",
                metadata={
                    "snapshot_id": dg.MetadataValue.text(str(snapshot.snapshot_id)),
                    "added_records": int(summary.get("added-records", 0)),
                    **table_metadata(table, snapshot.snapshot_id),
                },
            )
        )
        if topic in waiting:
            continue
        runs.append(
            dg.RunRequest(
                run_key=f"{topic}:{snapshot.snapshot_id}",
                partition_key=topic,
                tags={TOPIC_TAG: topic},
            )
        )
    if not events:
        return dg.SkipReason("no new RAW snapshot")
    return dg.SensorResult(run_requests=runs, asset_events=events, cursor=json.dumps(cursor))


def _topics_with_waiting_runs(instance: dg.DagsterInstance) -> set[str]:
    runs = instance.get_runs(
        filters=dg.RunsFilter(
            job_name=topic_pipeline_job.name,
            statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED],
        )
    )
    return {run.tags["dagster/partition"] for run in runs if "dagster/partition" in run.tags}
