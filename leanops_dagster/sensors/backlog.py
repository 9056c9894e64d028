"""Backlog: a run that processed more than the threshold is followed at once by another."""


import dagster as dg

from leanops_dagster.assets.keys import STANDARDIZED
from leanops_dagster.jobs import TOPIC_TAG, topic_pipeline_job


class BacklogConfig(dg.ConfigurableResource):
    """Rows read by one run above which the next run starts immediately (seed: 10,000)."""

    threshold: int = 10_000


def rows_read_by_run(instance: dg.DagsterInstance, run_id: str) -> int:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    total = 0
    for record in records:
        materialization = record.asset_materialization
        if materialization is not None and materialization.asset_key == STANDARDIZED:
            value = materialization.metadata.get("rows_read")
            total += int(value.value) if value is not None else 0
    return total


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[topic_pipeline_job],
    request_job=topic_pipeline_job,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests another run of a topic at once when its last run read more than "
    "the backlog threshold (the seeds' 'records_written > 10000 -> loop').",
)
def backlog_sensor(context: dg.RunStatusSensorContext, backlog: BacklogConfig):
    run = context.dagster_run
    topic = run.tags.get("dagster/partition")
    if topic is None:
        return dg.SkipReason("run has no topic partition")
    rows = rows_read_by_run(context.instance, run.run_id)
    if rows <= backlog.threshold:
        return dg.SkipReason(f"{topic}: {rows} rows read, under the backlog threshold")
    return dg.RunRequest(
        run_key=f"backlog:{run.run_id}", partition_key=topic, tags={TOPIC_TAG: topic}
    )
