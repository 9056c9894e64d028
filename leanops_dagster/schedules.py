"""Schedules: table maintenance nightly, accountability checks every 15 minutes.

Both start switched on (``Settings.schedules_running``; ``LEANOPS_SCHEDULES_RUNNING=false``
leaves them off until someone turns them on in the UI).
"""

import dagster as dg

from leanops_dagster.jobs import accountability_job, table_maintenance_job
from leanops_dagster.settings import Settings


def build_schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    status = (
        dg.DefaultScheduleStatus.RUNNING
        if settings.schedules_running
        else dg.DefaultScheduleStatus.STOPPED
    )
    return [
        dg.ScheduleDefinition(
            job=accountability_job,
            cron_schedule="*/15 * * * *",
            default_status=status,
            description="Every 15 minutes (the seeds' Step Function cadence): water balances "
            "and freshness over all topics.",
        ),
        dg.ScheduleDefinition(
            job=table_maintenance_job,
            cron_schedule="0 3 * * *",
            default_status=status,
            description="Nightly: expire old snapshots and compact small files.",
        ),
    ]
