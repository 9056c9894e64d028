"""The pre-RAW counts come from configuration: CloudWatch in AWS (moto's CloudWatch here), the
local stack's ledger in the local definitions; the check says which one it read."""

from __future__ import annotations

import datetime as dt

import boto3
import dagster as dg
import pytest
from moto import mock_aws

from leanops_dagster.assets.keys import RAW_STAGING
from leanops_dagster.definitions import build_definitions
from leanops_dagster.local import ledger
from leanops_dagster.local.definitions import build_local_definitions
from leanops_dagster.local.resources import LedgerIngestionCounts, LocalSqsResource
from leanops_dagster.resources.ingestion import CloudWatchIngestionCounts
from leanops_dagster.resources.sqs import SqsResource
from leanops_dagster.settings import get_settings
from tests.dagster.conftest import append_raw, event, raw_row

REGION = "us-east-1"
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def cloudwatch(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        yield boto3.client("cloudwatch", region_name=REGION)


def put(client, namespace: str, metric: str, dimension: str, value: str, points) -> None:
    client.put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": metric, "Dimensions": [{"Name": dimension, "Value": value}],
         "Timestamp": NOW - age, "Value": n, "Unit": "Count"}
        for n, age in points
    ])


def sqs_sent(client, queue: str, *points) -> None:
    put(client, "AWS/SQS", "NumberOfMessagesSent", "QueueName", queue, points)


def test_cloudwatch_counts_are_the_sums_of_this_environments_queue_metrics(cloudwatch):
    hour, day = dt.timedelta(hours=1), dt.timedelta(days=1)
    sqs_sent(cloudwatch, "lean-ops-dev-events-queue", (3, hour), (4, 3 * day), (5, 30 * day))
    sqs_sent(cloudwatch, "lean-ops-dev-sensor_readings-queue", (6, hour))
    sqs_sent(cloudwatch, "lean-ops-prod-events-queue", (100, hour))  # another environment
    sqs_sent(cloudwatch, "lean-ops-dev-dlq", (9, hour))  # the DLQ is no topic
    put(cloudwatch, "AWS/Firehose", "DeliveryToIceberg.FailedRowCount", "DeliveryStreamName",
        "lean-ops-dev-raw-firehose", [(2, hour), (1, 2 * day)])
    put(cloudwatch, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName",
        "lean-ops-dev-dlq", [(7, dt.timedelta(minutes=5))])

    counts = CloudWatchIngestionCounts.from_settings(get_settings(environment="dev"))
    assert counts.sent() == {"events": 12, "sensor_readings": 6}
    assert counts.firehose_errors() == {}  # one stream for all topics: not attributable
    described = counts.describe()
    assert described.startswith("CloudWatch (455 days)")
    assert "DeliveryToIceberg.FailedRowCount of lean-ops-dev-raw-firehose: 3" in described
    assert "messages waiting in lean-ops-dev-dlq: 7" in described

    recent = CloudWatchIngestionCounts(environment="dev", region=REGION, lookback_days=7)
    assert recent.sent() == {"events": 7, "sensor_readings": 6}  # the 30-day-old 5 is out


def _pre_raw(definitions: dg.Definitions) -> dg.AssetCheckEvaluation:
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("topics", ["events"])
        result = definitions.resolve_job_def("accountability_checks").execute_in_process(
            instance=instance)
    (evaluation,) = [e for e in result.get_asset_check_evaluations()
                     if e.asset_key == RAW_STAGING and e.check_name == "pre_raw_balance"]
    return evaluation


def test_the_production_check_balances_on_cloudwatch_and_says_so(settings, catalog, cloudwatch):
    append_raw(catalog, [raw_row("m1", event("k1")), raw_row("m2", event("k2"))])
    sqs_sent(cloudwatch, "lean-ops-dev-events-queue", (2, dt.timedelta(minutes=10)))
    ledger.record(settings, ledger.SENT, {"events": 5})  # the ledger is not read in AWS
    dev = get_settings(home=settings.home, environment="dev")
    assert dev.ingestion_counts == "cloudwatch"
    evaluation = _pre_raw(build_definitions(dev))
    assert evaluation.passed
    assert evaluation.metadata["counts_source"].value.startswith("CloudWatch")
    # The local definitions of the same settings read CloudWatch too: the setting decides.
    assert _pre_raw(build_local_definitions(dev)).passed


def test_the_local_definitions_read_the_ledger_and_say_so(settings, catalog):
    append_raw(catalog, [raw_row("m1", event("k1")), raw_row("m2", event("k2"))])
    ledger.record(settings, ledger.SENT, {"events": 3})  # one message unaccounted for
    assert settings.ingestion_counts == "ledger"
    definitions = build_local_definitions(settings)
    assert isinstance(definitions.resources["ingestion_counts"], LedgerIngestionCounts)
    assert isinstance(definitions.resources["sqs"], LocalSqsResource)
    evaluation = _pre_raw(definitions)
    assert not evaluation.passed
    assert "ingestion ledger" in evaluation.metadata["counts_source"].value
    assert "| events | pre-RAW | sqs_sent=3 | 2 |" in evaluation.metadata["equations"].value


def test_the_production_definitions_take_the_sqs_endpoint_from_settings(settings):
    dev = get_settings(home=settings.home, environment="dev",
                       aws_endpoint_url="http://127.0.0.1:1")
    sqs = build_definitions(dev).resources["sqs"]
    assert type(sqs) is SqsResource and sqs.endpoint() == "http://127.0.0.1:1"
    local = build_local_definitions(settings).resources["sqs"]
    with pytest.raises(RuntimeError, match="no local stack is running"):
        local.endpoint()
