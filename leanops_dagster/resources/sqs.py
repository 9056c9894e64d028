"""SQS access for the runbook (DLQ replay), at a configured endpoint.

The local definitions put ``local.resources.LocalSqsResource`` here, which finds the running
local stack's moto endpoint.
"""

from __future__ import annotations

import boto3
import dagster as dg
from pydantic import Field

from leanops_dagster import constants
from leanops_dagster.pipeline.dlq_replay import ReplayResult, replay_dlq
from leanops_dagster.settings import Settings


class SqsResource(dg.ConfigurableResource):
    """The environment's queues through boto3 at ``endpoint_url`` (unset: AWS's own)."""

    environment: str = Field(description="environment part of queue names")
    region: str = "us-east-1"
    endpoint_url: str | None = Field(default=None, description="explicit endpoint, if any")

    @classmethod
    def from_settings(cls, settings: Settings, **fields: object) -> SqsResource:
        return cls(
            environment=settings.environment,
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            **fields,
        )

    def endpoint(self) -> str | None:
        """The SQS endpoint (the local stack's resource finds its running moto here)."""
        return self.endpoint_url

    def client(self):
        return boto3.client("sqs", region_name=self.region, endpoint_url=self.endpoint())

    def queue_url(self, name: str) -> str:
        return self.client().get_queue_url(QueueName=name)["QueueUrl"]

    def queue_name(self, topic: str) -> str:
        return constants.queue_name(self.environment, topic)

    @property
    def dlq_name(self) -> str:
        return constants.dlq_name(self.environment)

    @property
    def queue_prefix(self) -> str:
        return constants.resource_name(self.environment, "")

    def replay_dlq(self, *, topic: str | None = None, max_messages: int = 1000) -> ReplayResult:
        """The runbook's DLQ replay (``pipeline.dlq_replay``) against this environment's queues:
        the Dagster job and ``leanops dlq replay`` both call this."""
        client = self.client()
        return replay_dlq(
            client,
            dlq_url=client.get_queue_url(QueueName=self.dlq_name)["QueueUrl"],
            queue_url_for=lambda source: client.get_queue_url(
                QueueName=self.queue_name(source))["QueueUrl"],
            queue_prefix=self.queue_prefix,
            topic=topic,
            max_messages=max_messages,
        )
