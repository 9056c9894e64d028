"""Schedules: table maintenance nightly, the all-time checks every 20 minutes.

Housekeeping costs a constant number of runs, whatever the number of topics (brief rule 10):
the checks of every onboarded topic are evaluated in one in-process run
(``jobs.accountability_job``), so the schedules launch at most 4 runs in any hour (3 check
runs, plus the nightly maintenance run in its hour). Every 20 minutes rather than the seeds'
15 for that bound; a stalled topic is reported sooner anyway, by the stale-topic alert sensor
(every minute). Both run in the housekeeping lane (``lanes``): queued behind topic runs.

Both start switched on (``Settings.schedules_running``; ``LEANOPS_SCHEDULES_RUNNING=false``
leaves them off until someone turns them on in the UI).
"""

import dagster as dg

from leanops_dagster.jobs import accountability_job, table_maintenance_job
from leanops_dagster.partitions import topic_partitions
from leanops_dagster.settings import Settings

ACCOUNTABILITY_CRON = "*/20 * * * *"
MAINTENANCE_CRON = "0 3 * * *"


def build_schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    status = (
        dg.DefaultScheduleStatus.RUNNING
        if settings.schedules_running
        else dg.DefaultScheduleStatus.STOPPED
    )

    @dg.schedule(
        name="accountability_checks_schedule",
        job=accountability_job,
        cron_schedule=ACCOUNTABILITY_CRON,
        default_status=status,
        description="Every 20 minutes: water balances, pre-RAW balance and freshness of every "
        "onboarded topic, in one run.",
    )
    def accountability_schedule(context: dg.ScheduleEvaluationContext):
        if not context.instance.get_dynamic_partitions(topic_partitions.name):
            return dg.SkipReason("no onboarded topic")
        return dg.RunRequest(run_key=context.scheduled_execution_time.isoformat())

    return [
        accountability_schedule,
        dg.ScheduleDefinition(
            job=table_maintenance_job,
            cron_schedule=MAINTENANCE_CRON,
            default_status=status,
            description="Nightly: expire old snapshots and compact small files.",
        ),
    ]
