"""Alert sensors on real runs of the pipeline: each alert is published once for its event
(moto SNS, read back through a subscribed SQS queue), not again on the next tick, and never
for a passing run. Without a topic ARN the same alerts are log lines."""

from __future__ import annotations

import json
import logging

import boto3
import dagster as dg
import pytest

from leanops_dagster.definitions import build_definitions, build_resources
from leanops_dagster.resources.alerts import Alert, AlertKind, AlertSink
from leanops_dagster.resources.metrics import (
    CURATED_LAG_METRIC,
    METRIC_NAMESPACE,
    SCHEMA_DRIFT_METRIC,
    PipelineMetricsResource,
)
from leanops_dagster.resources.pipeline import PipelineConfigResource
from leanops_dagster.sensors.alerts import (
    check_failure_alert_sensor,
    drift_alert_sensor,
    run_failure_alert_sensor,
    stale_topic_alert_sensor,
)
from leanops_dagster.settings import get_settings
from tests.dagster.conftest import append_raw, event, raw_row

TOPIC = "events"
REPOSITORY = build_definitions().get_repository_def()  # the sensors' own code location


@pytest.fixture
def ops_settings(settings, inbox):
    return get_settings(home=settings.home, environment="dev",
                        alerts_sns_topic_arn=inbox.topic_arn, cloudwatch_metrics=True)


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("topics", [TOPIC])
        yield instance


def run_pipeline(settings, instance) -> dg.ExecuteInProcessResult:
    job = build_definitions(settings).resolve_job_def("topic_pipeline")
    return job.execute_in_process(instance=instance, partition_key=TOPIC, raise_on_error=False)


class Ticker:
    """Evaluates one sensor tick after tick, carrying its cursor as the daemon does."""

    def __init__(self, sensor, instance, resources):
        self.sensor, self.instance, self.resources = sensor, instance, resources
        self.cursor: str | None = None

    def __call__(self):
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources=self.resources,
            repository_def=REPOSITORY,
        )
        data = self.sensor.evaluate_tick(context)
        self.cursor = data.cursor
        return data


def attributes(message: dict) -> dict[str, str]:
    return {k: v["Value"] for k, v in message["MessageAttributes"].items()}


# --- failed runs --------------------------------------------------------------------------------
def test_failed_run_alerts_once_and_passing_run_never(ops_settings, registry, catalog,
                                                      instance, inbox):
    tick = Ticker(run_failure_alert_sensor, instance, build_resources(ops_settings))
    tick()  # first tick: the sensor starts from now (no replay of older runs)

    append_raw(catalog, [raw_row("m1", event("k1"))])
    # the schema of `events` is not deployed: the Standardized step fails on a real error
    failed = run_pipeline(ops_settings, instance)
    assert not failed.success
    tick()
    (message,) = inbox.read()
    assert message["Subject"] == "[lean-ops-dev] Dagster run failed: topic_pipeline (events)"
    body = message["Message"]
    assert f"run: {failed.run_id}" in body
    assert "layer: standardized" in body and "failed_steps=1" in body
    assert "SchemaNotFoundError" in body or "not deployed" in body
    assert attributes(message) == {"kind": "run_failed", "topic": TOPIC,
                                   "layer": "standardized"}

    tick()
    assert inbox.read() == []  # the same failure never alerts twice

    registry.deploy(TOPIC)
    passed = run_pipeline(ops_settings, instance)
    assert passed.success
    tick()
    assert inbox.read() == []  # a passing run never alerts


# --- failed checks ------------------------------------------------------------------------------
def test_failed_blocking_check_alerts_once_with_its_numbers(ops_settings, registry, catalog,
                                                            instance, inbox):
    registry.deploy(TOPIC)
    checks = Ticker(check_failure_alert_sensor, instance, build_resources(ops_settings))
    runs = Ticker(run_failure_alert_sensor, instance, build_resources(ops_settings))
    runs()

    append_raw(catalog, [raw_row("g1", event("k1"))])
    assert run_pipeline(ops_settings, instance).success
    checks()
    assert inbox.read() == []  # every check of a passing run passed: nothing to say

    # 3 of 3 rows fail the user_id rule: a CDE error rate of 1.0 against 0.05 blocks the run
    append_raw(catalog, [raw_row(f"b{i}", event(f"kb{i}", user="nobody")) for i in range(3)])
    failed = run_pipeline(ops_settings, instance)
    assert not failed.success
    checks()
    (message,) = inbox.read()
    assert message["Subject"] == (
        "[lean-ops-dev] blocking check failed: curated/records cde_error_rate (events)")
    assert attributes(message) == {"kind": "check_failed", "topic": TOPIC, "layer": "curated",
                                   "check": "cde_error_rate"}
    body = message["Message"]
    assert "error_rate=1.0" in body and "threshold=0.05" in body and "cde_error_rows=3" in body
    assert f"run: {failed.run_id}" in body

    checks()
    assert inbox.read() == []  # not again
    runs()
    assert inbox.read() == []  # the run failed only by the check: one message, not two


def test_a_check_that_could_not_be_sent_is_sent_on_the_next_tick(ops_settings, registry,
                                                                 catalog, instance, inbox):
    registry.deploy(TOPIC)
    append_raw(catalog, [raw_row("b1", event("kb1", user="nobody"))])
    assert not run_pipeline(ops_settings, instance).success
    broken = {**build_resources(ops_settings),
              "alerts": AlertSink(environment="dev", sns_topic_arn=inbox.topic_arn + "-gone")}
    checks = Ticker(check_failure_alert_sensor, instance, broken)
    data = checks()
    assert "alert delivery failed" in data.skip_message
    checks.resources = build_resources(ops_settings)
    checks()
    assert [attributes(m)["check"] for m in inbox.read()] == ["cde_error_rate"]


# --- stale topics -------------------------------------------------------------------------------
def _stale_resources(settings, minutes: int):
    return {**build_resources(settings),
            "pipeline": PipelineConfigResource(pii_hash_key="k", freshness_minutes=minutes)}


def test_stale_topic_alerts_once_per_stale_spell_and_publishes_the_lag(
    ops_settings, registry, catalog, instance, inbox
):
    registry.deploy(TOPIC)
    # a target of 0 minutes: a topic is stale as soon as anything waits for Curated
    tick = Ticker(stale_topic_alert_sensor, instance, _stale_resources(ops_settings, 0))
    first = append_raw(catalog, [raw_row("m1", event("k1"))])
    tick()
    (message,) = inbox.read()
    assert message["Subject"].startswith("[lean-ops-dev] topic stale: Curated ")
    assert attributes(message) == {"kind": "stale_topic", "topic": TOPIC,
                                   "layer": "standardized", "check": "curated_freshness"}
    assert f"oldest_pending_snapshot_id={first}" in message["Message"]
    assert "target_minutes=0" in message["Message"]

    append_raw(catalog, [raw_row("m2", event("k2"))])
    tick()
    assert inbox.read() == []  # still the same stale spell

    assert run_pipeline(ops_settings, instance).success
    tick()
    assert inbox.read() == []  # fresh: nothing to say
    assert json.loads(tick.cursor)["alerted"] == {}

    append_raw(catalog, [raw_row("m3", event("k3"))])
    tick()
    assert len(inbox.read()) == 1  # a new spell alerts again

    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    metrics = cloudwatch.list_metrics(Namespace=METRIC_NAMESPACE,
                                      MetricName=CURATED_LAG_METRIC)["Metrics"]
    assert [m["Dimensions"] for m in metrics] == [[{"Name": "Topic", "Value": TOPIC}]]


def test_the_stale_sensor_reads_no_table_of_an_unchanged_topic(
    ops_settings, registry, catalog, instance, inbox, monkeypatch
):
    """A topic none of whose tables changed keeps its pending data from the cursor: a tick
    opens no metadata file for it, and its lag still grows (the same data, older)."""
    from pyiceberg.serializers import FromInputFile

    registry.deploy(TOPIC)
    tick = Ticker(stale_topic_alert_sensor, instance, _stale_resources(ops_settings, 0))
    append_raw(catalog, [raw_row("m1", event("k1"))])
    tick()
    assert len(inbox.read()) == 1
    reads: list[str] = []
    original = FromInputFile.table_metadata
    monkeypatch.setattr(FromInputFile, "table_metadata", staticmethod(
        lambda input_file, *a, **k: reads.append(input_file.location)
        or original(input_file, *a, **k)))
    tick()
    assert reads == [] and inbox.read() == []  # still the same spell, nothing read
    append_raw(catalog, [raw_row("m2", event("k2"))])
    reads.clear()
    tick()
    assert reads  # RAW changed: the topic is read again


def test_fresh_topic_under_the_target_never_alerts(ops_settings, registry, catalog,
                                                   instance, inbox):
    registry.deploy(TOPIC)
    tick = Ticker(stale_topic_alert_sensor, instance, _stale_resources(ops_settings, 60))
    append_raw(catalog, [raw_row("m1", event("k1"))])
    tick()
    assert inbox.read() == []


# --- schema drift -------------------------------------------------------------------------------
def test_new_drift_columns_alert_once_per_topic(ops_settings, registry, catalog, instance,
                                                inbox):
    registry.deploy(TOPIC)
    tick = Ticker(drift_alert_sensor, instance, build_resources(ops_settings))
    append_raw(catalog, [raw_row("m1", event("k1"))])
    assert run_pipeline(ops_settings, instance).success
    assert tick().skip_message == "no drift log yet"  # a run without drift: nothing

    append_raw(catalog, [raw_row("m2", event("k2", extra={"coupon": "X1", "referrer": "ad"}))])
    assert run_pipeline(ops_settings, instance).success
    tick()
    (message,) = inbox.read()
    assert message["Subject"] == "[lean-ops-dev] schema drift: 2 new column(s) (events)"
    assert attributes(message) == {"kind": "schema_drift", "topic": TOPIC, "layer": "curated",
                                   "check": "schema_drift"}
    assert "coupon, referrer" in message["Message"] and "new_columns=2" in message["Message"]
    assert "X1" not in message["Message"]  # sample values stay in the drift log

    tick()
    append_raw(catalog, [raw_row("m3", event("k3", extra={"coupon": "X2"}))])
    assert run_pipeline(ops_settings, instance).success
    tick()
    assert inbox.read() == []  # a known drift column is not news

    append_raw(catalog, [raw_row("m4", event("k4", extra={"campaign": "c"}))])
    assert run_pipeline(ops_settings, instance).success
    tick()
    (message,) = inbox.read()
    assert "campaign" in message["Message"] and "coupon" not in message["Message"]

    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    stats = cloudwatch.get_metric_statistics(
        Namespace=METRIC_NAMESPACE, MetricName=SCHEMA_DRIFT_METRIC,
        StartTime="2000-01-01T00:00:00Z", EndTime="2100-01-01T00:00:00Z",
        Period=86400 * 365, Statistics=["Sum"],
    )["Datapoints"]
    assert sum(p["Sum"] for p in stats) == 3  # coupon, referrer, campaign


# --- sinks --------------------------------------------------------------------------------------
def test_without_a_topic_arn_alerts_are_log_lines(caplog):
    alert = Alert(AlertKind.CHECK_FAILED, "check failed: x", topic="events", layer="curated",
                  check="cde_error_rate", numbers={"error_rate": 0.5})
    with caplog.at_level(logging.WARNING, logger="ops-test"):
        assert AlertSink().publish(alert, logging.getLogger("ops-test")) is None
    (record,) = caplog.records
    assert "[lean-ops-local] check failed: x (events)" in record.message
    assert "check: cde_error_rate" in record.message and "error_rate=0.5" in record.message


def test_subject_is_one_ascii_line_within_the_sns_limit():
    alert = Alert(AlertKind.SCHEMA_DRIFT, "drift: é\n" + "x" * 200, topic="events")
    subject = alert.subject("dev")
    assert len(subject) == 100 and subject.endswith("...")
    assert subject.isascii() and "\n" not in subject


def test_settings_choose_sns_or_log_and_metrics(settings):
    local = build_resources(settings)
    assert local["alerts"].destination == "log"
    assert local["metrics"].publish_to_cloudwatch is False
    arn = "arn:aws:sns:us-east-1:123456789012:lean-ops-dev-alarms"
    deployed = build_resources(get_settings(home=settings.home, alerts_sns_topic_arn=arn,
                                            cloudwatch_metrics=True))
    assert deployed["alerts"].destination == f"SNS {arn}"
    assert isinstance(deployed["metrics"], PipelineMetricsResource)
    assert deployed["metrics"].publish_to_cloudwatch is True


def test_a_failed_metric_put_is_logged_and_does_not_resend_drift_alerts(
    ops_settings, registry, catalog, instance, inbox, monkeypatch, capsys
):
    registry.deploy(TOPIC)
    append_raw(catalog, [raw_row("m1", event("k1", extra={"coupon": "X1"}))])
    assert run_pipeline(ops_settings, instance).success

    monkeypatch.setattr("botocore.client.BaseClient._make_api_call",
                        _refusing("PutMetricData"))
    tick = Ticker(drift_alert_sensor, instance, build_resources(ops_settings))
    capsys.readouterr()
    tick()
    assert [attributes(m)["kind"] for m in inbox.read()] == ["schema_drift"]
    assert "put_metric_data to LeanOps/Pipeline failed" in capsys.readouterr().err
    tick()
    assert inbox.read() == []  # the cursor kept the alert as sent


def _refusing(operation: str):
    """botocore's API call, failing for one operation (everything else reaches moto)."""
    from botocore.client import BaseClient

    original = BaseClient._make_api_call

    def call(self, operation_name, params):
        if operation_name == operation:
            raise RuntimeError(f"{operation} refused")
        return original(self, operation_name, params)

    return call


def test_a_failed_all_time_balance_names_the_unbalanced_topic(ops_settings, registry, catalog,
                                                              instance, inbox):
    from leanops_dagster.pipeline.layout import TopicTables

    registry.deploy(TOPIC)
    append_raw(catalog, [raw_row("m1", event("k1")), raw_row("m2", event("k2"))])
    assert run_pipeline(ops_settings, instance).success
    # a Standardized row lost behind the pipeline's back: RAW consumed 2, Standardized 1
    catalog.load_table(TopicTables(TOPIC).standardized).delete("message_id = 'm1'")
    checks = Ticker(check_failure_alert_sensor, instance, build_resources(ops_settings))
    job = build_definitions(ops_settings).resolve_job_def("accountability_checks")
    # a failing check is not a crash; one run evaluates every topic's partition
    assert job.execute_in_process(instance=instance).success
    checks()
    messages = {attributes(m)["check"]: m for m in inbox.read()}
    failed = messages["post_raw_balance_all_time"]
    assert attributes(failed) == {"kind": "check_failed", "topic": TOPIC,
                                  "layer": "standardized", "check": "post_raw_balance_all_time"}
    assert failed["Subject"] == (
        "[lean-ops-dev] check failed: standardized/records post_raw_balance_all_time (events)")
    assert "| events | post-RAW |" in failed["Message"] and "**NO**" in failed["Message"]
    # pre_raw_balance and curated_freshness warn (WARN severity): no alert for them
    assert "pre_raw_balance" not in messages and "curated_freshness" not in messages
