"""The single Definitions object: assets, checks, sensors, schedules, jobs and resources.

Resources are built once from Settings (environment ``LEANOPS_*``): endpoints and the source of
the pre-RAW counts (CloudWatch) are configuration, not code paths. These are the production
definitions (``infra/dagster/workspace.yaml``); the laptop's (``workspace.yaml``,
``local.definitions``) are the same with the local stack's resources put over them.
"""

from collections.abc import Mapping

import dagster as dg

from leanops_dagster.assets.curated import curated_records
from leanops_dagster.assets.raw import raw_staging
from leanops_dagster.assets.snowflake import snowflake_curated_refresh
from leanops_dagster.assets.standardized import standardized_records
from leanops_dagster.checks.accountability import accountability_checks
from leanops_dagster.jobs import (
    accountability_job,
    dlq_replay_job,
    schema_rebuild_job,
    table_maintenance_job,
    topic_pipeline_job,
)
from leanops_dagster.resources.alerts import AlertSink
from leanops_dagster.resources.catalog import IcebergCatalogResource
from leanops_dagster.resources.ingestion import CloudWatchIngestionCounts
from leanops_dagster.resources.metrics import PipelineMetricsResource
from leanops_dagster.resources.pipeline import PipelineConfigResource
from leanops_dagster.resources.schema_registry import SchemaRegistryResource
from leanops_dagster.resources.snowflake import SnowflakeResource
from leanops_dagster.resources.sqs import SqsResource
from leanops_dagster.schedules import build_schedules
from leanops_dagster.sensors.alerts import alert_sensors
from leanops_dagster.sensors.backlog import BacklogConfig, backlog_sensor
from leanops_dagster.sensors.raw_snapshots import raw_snapshot_sensor
from leanops_dagster.sensors.schema_gate import schema_gate_sensor
from leanops_dagster.sensors.tick_metrics import tick_metrics_sensor
from leanops_dagster.settings import Settings, get_settings


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    resources: dict[str, dg.ConfigurableResource] = {
        "catalog": IcebergCatalogResource.from_settings(settings),
        "schema_registry": SchemaRegistryResource.from_settings(settings),
        "pipeline": PipelineConfigResource.from_settings(settings),
        "ingestion_counts": CloudWatchIngestionCounts.from_settings(settings),
        "sqs": SqsResource.from_settings(settings),
        "backlog": BacklogConfig(threshold=settings.backlog_threshold),
        "alerts": AlertSink.from_settings(settings),
        "metrics": PipelineMetricsResource.from_settings(settings),
    }
    if settings.snowflake_configured:
        resources["snowflake"] = SnowflakeResource.from_settings(settings)
    return resources


def build_definitions(
    settings: Settings | None = None,
    resources: Mapping[str, dg.ConfigurableResource] | None = None,
) -> dg.Definitions:
    """The definitions of ``settings``; ``resources`` replace the ones of the same key."""
    settings = settings or get_settings()
    return dg.Definitions(
        assets=[raw_staging, standardized_records, curated_records]
        + ([snowflake_curated_refresh] if settings.snowflake_configured else []),
        asset_checks=accountability_checks,
        jobs=[topic_pipeline_job, accountability_job, dlq_replay_job, table_maintenance_job,
              schema_rebuild_job],
        sensors=[schema_gate_sensor, raw_snapshot_sensor, backlog_sensor, *alert_sensors,
                 tick_metrics_sensor],
        schedules=build_schedules(settings),
        resources={**build_resources(settings), **(resources or {})},
    )


defs = build_definitions()
