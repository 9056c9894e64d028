"""Ingestion counts for the pre-RAW balance: messages sent and Firehose error records per topic.

The balance ``SQS sent = RAW + DLQ errors + Firehose errors`` takes its left side and the
Firehose errors from outside the tables. ``IngestionCountsResource`` is what the pre-RAW check
reads; the source is configuration (``Settings.ingestion_counts``):

- ``CloudWatchIngestionCounts`` (AWS, the production definitions): SQS ``NumberOfMessagesSent``
  per topic queue, Firehose ``DeliveryToIceberg.FailedRowCount`` of the RAW stream, and the
  messages still waiting in the DLQ (not in ``dlq_errors`` yet), through boto3 at
  ``endpoint_url``;
- ``local.resources.LedgerIngestionCounts`` (the local definitions): the local stack's ledger.
"""

from __future__ import annotations

import datetime as dt

import boto3
import dagster as dg
from pydantic import Field

from leanops_dagster import constants
from leanops_dagster.settings import Settings

SQS_NAMESPACE = "AWS/SQS"
SQS_SENT_METRIC = "NumberOfMessagesSent"
SQS_VISIBLE_METRIC = "ApproximateNumberOfMessagesVisible"
FIREHOSE_NAMESPACE = "AWS/Firehose"
FIREHOSE_FAILED_METRIC = "DeliveryToIceberg.FailedRowCount"
#: CloudWatch keeps hourly datapoints for 455 days: the longest window a sum can cover.
MAX_LOOKBACK_DAYS = 455
_DAY_S = 86_400
_QUERIES_PER_CALL = 500  # GetMetricData's limit


class IngestionCountsResource(dg.ConfigurableResource):
    """A source of the pre-RAW counts; subclasses say where they come from."""

    def sent(self) -> dict[str, int]:
        """Topic -> messages SQS accepted, ever (as far as the source remembers)."""
        raise NotImplementedError

    def firehose_errors(self) -> dict[str, int]:
        """Topic -> records Firehose wrote to its error output instead of a table."""
        raise NotImplementedError

    def describe(self) -> str:
        """Which source the counts came from, and what it could not attribute to a topic."""
        raise NotImplementedError


class CloudWatchIngestionCounts(IngestionCountsResource):
    """The counts from CloudWatch's SQS and Firehose metrics of the environment's resources."""

    environment: str = Field(description="environment part of the queue and stream names")
    region: str = "us-east-1"
    endpoint_url: str | None = Field(default=None, description="explicit endpoint, if any")
    lookback_days: int = Field(
        default=MAX_LOOKBACK_DAYS,
        ge=1,
        le=MAX_LOOKBACK_DAYS,
        description="Sum the metrics over this many days back (CloudWatch keeps 455).",
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> CloudWatchIngestionCounts:
        return cls(
            environment=settings.environment,
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
        )

    def client(self):
        return boto3.client("cloudwatch", region_name=self.region, endpoint_url=self.endpoint_url)

    def queue_topics(self) -> dict[str, str]:
        """Queue name -> topic of every topic queue of this environment CloudWatch has a
        ``NumberOfMessagesSent`` metric for (CloudWatch lists metrics seen in two weeks)."""
        prefix, suffix = constants.resource_name(self.environment, ""), "-queue"
        found: dict[str, str] = {}
        pages = (
            self.client()
            .get_paginator("list_metrics")
            .paginate(
                Namespace=SQS_NAMESPACE,
                MetricName=SQS_SENT_METRIC,
                Dimensions=[{"Name": "QueueName"}],
            )
        )
        for page in pages:
            for metric in page["Metrics"]:
                for dimension in metric["Dimensions"]:
                    name = dimension["Value"]
                    topic = name[len(prefix) : -len(suffix)]
                    if (
                        dimension["Name"] == "QueueName"
                        and name.startswith(prefix)
                        and name.endswith(suffix)
                        and constants.TOPIC_PATTERN.match(topic)
                    ):
                        found[name] = topic
        return found

    def _values(
        self, metrics: list[tuple[str, str, str, str]], stat: str, start: dt.datetime, period_s: int
    ) -> list[list[float]]:
        """Datapoints (newest first) of each ``(namespace, metric, dimension, value)``."""
        client, out = self.client(), [[] for _ in metrics]
        end = dt.datetime.now(dt.UTC)
        for first in range(0, len(metrics), _QUERIES_PER_CALL):
            chunk = metrics[first : first + _QUERIES_PER_CALL]
            queries = [
                {
                    "Id": f"m{first + i}",
                    "ReturnData": True,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": namespace,
                            "MetricName": metric,
                            "Dimensions": [{"Name": dimension, "Value": value}],
                        },
                        "Period": period_s,
                        "Stat": stat,
                    },
                }
                for i, (namespace, metric, dimension, value) in enumerate(chunk)
            ]
            pages = client.get_paginator("get_metric_data").paginate(
                MetricDataQueries=queries,
                StartTime=start,
                EndTime=end,
                ScanBy="TimestampDescending",
            )
            for page in pages:
                for result in page["MetricDataResults"]:
                    out[int(result["Id"][1:])].extend(result["Values"])
        return out

    def _sums(self, metrics: list[tuple[str, str, str, str]]) -> list[int]:
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=self.lookback_days)
        return [round(sum(values)) for values in self._values(metrics, "Sum", start, _DAY_S)]

    def sent(self) -> dict[str, int]:
        queues = self.queue_topics()
        sums = self._sums([(SQS_NAMESPACE, SQS_SENT_METRIC, "QueueName", q) for q in queues])
        return dict(zip(queues.values(), sums, strict=True))

    def firehose_errors(self) -> dict[str, int]:
        """Nothing per topic: the one RAW stream of all topics reports its failed rows as a
        whole (``describe`` gives the stream's total; the records are in its S3 error output)."""
        return {}

    def stream_failed_rows(self) -> int:
        stream = constants.firehose_stream_name(self.environment)
        (failed,) = self._sums(
            [(FIREHOSE_NAMESPACE, FIREHOSE_FAILED_METRIC, "DeliveryStreamName", stream)]
        )
        return failed

    def dlq_waiting(self) -> int:
        """Messages in the DLQ not drained into ``dlq_errors`` yet (the latest datapoint of
        the last hour; 0 without one)."""
        start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
        (values,) = self._values(
            [
                (
                    SQS_NAMESPACE,
                    SQS_VISIBLE_METRIC,
                    "QueueName",
                    constants.dlq_name(self.environment),
                )
            ],
            "Maximum",
            start,
            60,
        )
        return round(values[0]) if values else 0

    def describe(self) -> str:
        return (
            f"CloudWatch ({self.lookback_days} days): {SQS_NAMESPACE} {SQS_SENT_METRIC} per "
            f"topic queue; {FIREHOSE_NAMESPACE} {FIREHOSE_FAILED_METRIC} of "
            f"{constants.firehose_stream_name(self.environment)}: {self.stream_failed_rows()} "
            f"(all topics, not attributed to one); messages waiting in "
            f"{constants.dlq_name(self.environment)}: {self.dlq_waiting()}"
        )
