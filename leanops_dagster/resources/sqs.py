"""SQS access for the runbook (DLQ replay); moto's endpoint locally, AWS otherwise."""

from __future__ import annotations

import boto3
import dagster as dg
from pydantic import Field

from leanops_dagster import constants
from leanops_dagster.runbook import ReplayResult, replay_dlq
from leanops_dagster.settings import Settings


class SqsResource(dg.ConfigurableResource):
    environment: str = Field(description="environment part of queue names")
    region: str = "us-east-1"
    endpoint_url: str | None = Field(default=None, description="explicit endpoint, if any")
    home: str | None = Field(
        default=None, description="LEANOPS_HOME: locally, use the running local stack's moto"
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> SqsResource:
        return cls(
            environment=settings.environment,
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            home=str(settings.home) if settings.environment == "local" else None,
        )

    def _endpoint(self) -> str | None:
        if self.endpoint_url or self.home is None:
            return self.endpoint_url
        from leanops_dagster.local.stack import running_stack

        state = running_stack(Settings(home=self.home))
        if state is None:
            raise RuntimeError(
                "no local stack is running under LEANOPS_HOME: start `leanops demo` or "
                "`leanops inject`, or set LEANOPS_AWS_ENDPOINT_URL"
            )
        return state["endpoint_url"]

    def client(self):
        return boto3.client("sqs", region_name=self.region, endpoint_url=self._endpoint())

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
        """The runbook's DLQ replay (``runbook.replay_dlq``) against this environment's queues:
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
