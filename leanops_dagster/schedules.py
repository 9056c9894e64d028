"""Schedules: table maintenance nightly, accountability checks every 15 minutes (one run per
onboarded topic: the checks are partitioned by topic, ``checks/accountability.py``).

Both start switched on (``Settings.schedules_running``; ``LEANOPS_SCHEDULES_RUNNING=false``
leaves them off until someone turns them on in the UI).
"""

import dagster as dg

from leanops_dagster.jobs import accountability_job, table_maintenance_job, topic_run_tags
from leanops_dagster.partitions import topic_partitions
from leanops_dagster.settings import Settings


def build_schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    status = (
        dg.DefaultScheduleStatus.RUNNING
        if settings.schedules_running
        else dg.DefaultScheduleStatus.STOPPED
    )
    @dg.schedule(
        name="accountability_checks_schedule",
        job=accountability_job,
        cron_schedule="*/15 * * * *",
        default_status=status,
        description="Every 15 minutes (the seeds' Step Function cadence): water balances "
        "and freshness, one run per onboarded topic.",
    )
    def accountability_schedule(context: dg.ScheduleEvaluationContext):
        topics = sorted(context.instance.get_dynamic_partitions(topic_partitions.name))
        if not topics:
            return dg.SkipReason("no onboarded topic")
        tick = context.scheduled_execution_time.isoformat()  # run keys are unique per tick
        return [dg.RunRequest(run_key=f"{topic}:{tick}", tags=topic_run_tags(topic))
                for topic in topics]

    return [
        accountability_schedule,
        dg.ScheduleDefinition(
            job=table_maintenance_job,
            cron_schedule="0 3 * * *",
            default_status=status,
            description="Nightly: expire old snapshots and compact small files.",
        ),
    ]
