"""Where alerts go: one SNS message per alert in AWS, the sensor's log (console and UI) locally.

The alert sensors (``leanops_dagster/sensors/alerts.py``) decide *when* something alerts; this
module decides *where* it goes. The topic ARN comes from Settings (``LEANOPS_ALERTS_SNS_TOPIC_ARN``,
set by Terraform to the observability module's alarm topic); without one, alerts are log lines.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import boto3
import dagster as dg
from pydantic import Field

from leanops_dagster.settings import Settings

SNS_SUBJECT_MAX = 100  # SNS rejects longer e-mail subjects


class AlertKind(enum.StrEnum):
    RUN_FAILED = "run_failed"
    CHECK_FAILED = "check_failed"
    STALE_TOPIC = "stale_topic"
    SCHEMA_DRIFT = "schema_drift"


@dataclass(frozen=True)
class Alert:
    """One event worth a human's attention, named by topic, layer and check, with its numbers."""

    kind: AlertKind
    title: str
    topic: str | None = None
    layer: str | None = None
    check: str | None = None
    numbers: Mapping[str, int | float | str] = field(default_factory=dict)
    details: str = ""
    run_id: str | None = None

    def subject(self, environment: str) -> str:
        text = f"[lean-ops-{environment}] {self.title}"
        if self.topic:
            text += f" ({self.topic})"
        # one printable ASCII line: SNS refuses anything else in a subject
        text = "".join(c if 32 <= ord(c) < 127 else "?" for c in text)
        return text if len(text) <= SNS_SUBJECT_MAX else text[: SNS_SUBJECT_MAX - 3] + "..."

    def body(self) -> str:
        lines = [
            self.title,
            "",
            f"kind: {self.kind.value}",
            f"topic: {self.topic or '-'}",
            f"layer: {self.layer or '-'}",
            f"check: {self.check or '-'}",
        ]
        if self.run_id:
            lines.append(f"run: {self.run_id}")
        if self.numbers:
            lines.append("numbers: " + ", ".join(f"{k}={v}" for k, v in self.numbers.items()))
        if self.details:
            lines += ["", self.details]
        return "\n".join(lines)

    def message_attributes(self) -> dict[str, dict[str, str]]:
        """SNS message attributes, so a subscription can filter (e.g. governance: drift only)."""
        values = {"kind": self.kind.value, "topic": self.topic, "layer": self.layer,
                  "check": self.check}
        return {
            name: {"DataType": "String", "StringValue": value}
            for name, value in values.items()
            if value
        }


class AlertSink(dg.ConfigurableResource):
    """Publishes alerts to the SNS alarm topic, or logs them when no topic is configured."""

    environment: str = Field(default="local", description="named in every subject")
    sns_topic_arn: str | None = Field(
        default=None, description="SNS topic of the alerts; unset: alerts are log lines"
    )
    region: str = "us-east-1"
    endpoint_url: str | None = Field(default=None, description="explicit SNS endpoint, if any")

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertSink:
        return cls(
            environment=settings.environment,
            sns_topic_arn=settings.alerts_sns_topic_arn,
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
        )

    @property
    def destination(self) -> str:
        return f"SNS {self.sns_topic_arn}" if self.sns_topic_arn else "log"

    def publish(self, alert: Alert, log: logging.Logger | logging.LoggerAdapter) -> str | None:
        """Send ``alert``; returns the SNS message id (None when it was only logged)."""
        subject = alert.subject(self.environment)
        if not self.sns_topic_arn:
            log.warning(f"ALERT {subject}\n{alert.body()}")
            return None
        client = boto3.client("sns", region_name=self.region, endpoint_url=self.endpoint_url)
        response = client.publish(
            TopicArn=self.sns_topic_arn,
            Subject=subject,
            Message=alert.body(),
            MessageAttributes=alert.message_attributes(),
        )
        log.info(f"alert sent to {self.sns_topic_arn} ({response['MessageId']}): {subject}")
        return response["MessageId"]
