"""Pipeline metrics for CloudWatch (freshness per topic, new drift columns, sensor and schedule
tick durations); logged locally.

The namespace and metric names are shared with Terraform (the dashboard and the schema-drift
alarm); ``tests/infra/test_infra_consistency.py`` checks that both sides spell them the same.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import boto3
import dagster as dg
from pydantic import Field

from leanops_dagster.settings import Settings

METRIC_NAMESPACE = "LeanOps/Pipeline"
#: Seconds since the oldest upstream snapshot a topic's Curated has not consumed (0 = current).
CURATED_LAG_METRIC = "CuratedLagSeconds"
#: Columns newly recorded in the drift log (no dimension: the alarm fires for any topic).
SCHEMA_DRIFT_METRIC = "SchemaDriftColumns"
TOPIC_DIMENSION = "Topic"
#: The longest tick of each sensor or schedule over the last interval (``tick_metrics_sensor``):
#: Dagster gives a tick 60 s; a tick that grows with topics or history shows here first.
TICK_SECONDS_METRIC = "TickSeconds"
INSTIGATOR_DIMENSION = "Instigator"

PUT_BATCH = 20  # PutMetricData datums per call, well under the API's limit


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    unit: str = "None"
    dimensions: dict[str, str] = field(default_factory=dict)

    def as_datum(self) -> dict:
        datum: dict = {"MetricName": self.name, "Value": float(self.value), "Unit": self.unit}
        if self.dimensions:
            datum["Dimensions"] = [{"Name": k, "Value": v} for k, v in self.dimensions.items()]
        return datum


class PipelineMetricsResource(dg.ConfigurableResource):
    """Publishes to CloudWatch (``put_metric_data``) when enabled, else logs at debug level."""

    publish_to_cloudwatch: bool = Field(default=False, description="False: metrics are logged")
    namespace: str = METRIC_NAMESPACE
    region: str = "us-east-1"
    endpoint_url: str | None = Field(default=None, description="explicit endpoint, if any")

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineMetricsResource:
        return cls(
            publish_to_cloudwatch=settings.cloudwatch_metrics,
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
        )

    def put(self, metrics: Sequence[Metric], log: logging.Logger | logging.LoggerAdapter) -> bool:
        """Publish ``metrics``; True when CloudWatch took them all. Best effort: a failure is
        logged as an error, never raised, so an alert sensor that also publishes metrics keeps
        its cursor true (a raise would lose it and re-send its alerts)."""
        if not metrics:
            return True
        if not self.publish_to_cloudwatch:
            log.debug("metrics (not published): " + ", ".join(
                f"{m.name}{m.dimensions or ''}={m.value}" for m in metrics))
            return False
        try:
            client = boto3.client("cloudwatch", region_name=self.region,
                                  endpoint_url=self.endpoint_url)
            for start in range(0, len(metrics), PUT_BATCH):
                client.put_metric_data(
                    Namespace=self.namespace,
                    MetricData=[m.as_datum() for m in metrics[start : start + PUT_BATCH]],
                )
        except Exception as exc:  # any failure: metrics are not worth an alert's cursor
            log.error(f"put_metric_data to {self.namespace} failed: {exc!r}")
            return False
        return True
