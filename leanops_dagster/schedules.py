"""Schedules: table maintenance nightly, accountability checks every 15 minutes."""

import dagster as dg

from leanops_dagster.jobs import accountability_job, table_maintenance_job

table_maintenance_schedule = dg.ScheduleDefinition(
    job=table_maintenance_job,
    cron_schedule="0 3 * * *",
    description="Nightly: expire old snapshots and compact small files.",
)

accountability_schedule = dg.ScheduleDefinition(
    job=accountability_job,
    cron_schedule="*/15 * * * *",
    description="Every 15 minutes (the seeds' Step Function cadence): water balances and "
    "freshness over all topics.",
)
