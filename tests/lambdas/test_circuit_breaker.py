"""circuit_breaker: the pure decision and the handler against moto (CloudWatch, SSM, Lambda)."""

from __future__ import annotations

import datetime as dt
import io
import zipfile

import boto3
import pytest
from lambdas_support import config
from moto import mock_aws

from ingestion_lambdas.circuit_breaker.breaker import (
    Action,
    BreakerState,
    Status,
    WindowStats,
    decide,
    window_start,
)
from ingestion_lambdas.circuit_breaker.handler import evaluate
from ingestion_lambdas.common.config import BreakerConfig

CFG = BreakerConfig(
    error_rate_threshold=0.5, min_samples=20, window_seconds=300, cooldown_seconds=600,
    probe_window_seconds=300, probe_min_samples=5,
)
T0 = dt.datetime(2026, 1, 19, 10, 0, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


# --- pure decision -------------------------------------------------------------------------


def test_closed_opens_when_error_rate_exceeds_threshold():
    d = decide(BreakerState(), WindowStats(requests=20, errors=11), T0, CFG)
    assert (d.state, d.action, d.transition) == (
        BreakerState(Status.OPEN, T0), Action.DISABLE, True
    )


@pytest.mark.parametrize(
    ("requests", "errors"),
    [(20, 10), (19, 19), (0, 0), (100, 0)],  # at threshold; below min samples; idle; healthy
)
def test_closed_stays_closed(requests, errors):
    d = decide(BreakerState(), WindowStats(requests, errors), T0, CFG)
    assert (d.state.status, d.action, d.transition) == (Status.CLOSED, Action.NONE, False)


def test_min_sample_size_is_configurable():
    small = BreakerConfig(min_samples=3)
    assert decide(BreakerState(), WindowStats(3, 2), T0, small).state.status is Status.OPEN
    assert decide(BreakerState(), WindowStats(2, 2), T0, small).state.status is Status.CLOSED


def test_open_waits_for_cooldown_then_probes():
    opened = BreakerState(Status.OPEN, T0)
    waiting = decide(opened, WindowStats(0, 0), at(599), CFG)
    assert (waiting.state, waiting.action) == (opened, Action.NONE)
    probing = decide(opened, WindowStats(0, 0), at(600), CFG)
    assert (probing.state, probing.action) == (BreakerState(Status.HALF_OPEN, at(600)),
                                              Action.ENABLE)


def test_full_cycle_closed_open_half_open_closed():
    state = BreakerState()
    state = decide(state, WindowStats(40, 30), at(0), CFG).state
    assert state.status is Status.OPEN
    state = decide(state, WindowStats(0, 0), at(600), CFG).state
    assert state.status is Status.HALF_OPEN
    mid_probe = decide(state, WindowStats(3, 0), at(700), CFG)
    assert mid_probe.state.status is Status.HALF_OPEN and not mid_probe.transition
    closing = decide(state, WindowStats(30, 2), at(900), CFG)
    assert (closing.previous, closing.state.status, closing.action) == (
        Status.HALF_OPEN, Status.CLOSED, Action.NONE
    )
    assert closing.transition


def test_half_open_reopens_on_a_failing_probe():
    probing = BreakerState(Status.HALF_OPEN, at(600))
    early = decide(probing, WindowStats(5, 4), at(630), CFG)  # enough probe samples: at once
    assert (early.state, early.action) == (BreakerState(Status.OPEN, at(630)), Action.DISABLE)
    few = decide(probing, WindowStats(2, 2), at(630), CFG)  # too few yet: keep probing
    assert few.state.status is Status.HALF_OPEN
    late = decide(probing, WindowStats(2, 2), at(900), CFG)  # probe over and still failing
    assert late.state.status is Status.OPEN and late.action is Action.DISABLE


def test_half_open_window_starts_at_the_probe():
    assert window_start(BreakerState(Status.HALF_OPEN, at(600)), at(700), CFG) == at(600)
    assert window_start(BreakerState(), at(700), CFG) == at(400)


def test_state_round_trips_through_json():
    for state in (BreakerState(), BreakerState(Status.HALF_OPEN, at(5))):
        assert BreakerState.from_json(state.to_json()) == state


# --- handler against moto ------------------------------------------------------------------


@pytest.fixture
def aws(aws_env):
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        role = iam.create_role(RoleName="sqs-processor", AssumeRolePolicyDocument="{}")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as archive:
            archive.writestr("h.py", "def h(e, c):\n    return None\n")
        lam = boto3.client("lambda", region_name="us-east-1")
        lam.create_function(
            FunctionName="lean-ops-test-sqs-processor", Runtime="python3.11",
            Role=role["Role"]["Arn"], Handler="h.h", Code={"ZipFile": buf.getvalue()},
        )
        sqs = boto3.client("sqs", region_name="us-east-1")
        mappings = {}
        for topic in ("events", "sensor_readings"):
            url = sqs.create_queue(QueueName=f"lean-ops-test-{topic}-queue")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                "Attributes"]["QueueArn"]
            mappings[topic] = lam.create_event_source_mapping(
                EventSourceArn=arn, FunctionName="lean-ops-test-sqs-processor", BatchSize=10
            )["UUID"]
        yield {
            "cloudwatch": boto3.client("cloudwatch", region_name="us-east-1"),
            "lambda_client": lam,
            "ssm": boto3.client("ssm", region_name="us-east-1"),
            "mappings": mappings,
        }


def put_counts(cloudwatch, topic: str, when: dt.datetime, received: int, failed: int) -> None:
    dims = [{"Name": "service", "Value": "sqs_processor"}, {"Name": "topic", "Value": topic}]
    cloudwatch.put_metric_data(
        Namespace="LeanOps/Ingestion",
        MetricData=[
            {"MetricName": "MessagesReceived", "Dimensions": dims, "Timestamp": when,
             "Value": received, "Unit": "Count"},
            {"MetricName": "MessagesFailed", "Dimensions": dims, "Timestamp": when,
             "Value": failed, "Unit": "Count"},
        ],
    )


def mapping_state(aws, topic: str) -> str:
    return aws["lambda_client"].get_event_source_mapping(UUID=aws["mappings"][topic])["State"]


def run(aws, now: dt.datetime) -> dict:
    cfg = config(breaker_mappings=aws["mappings"], breaker=CFG,
                 breaker_state_parameter_prefix="/lean-ops/test/cb/")
    return evaluate(
        {}, cloudwatch=aws["cloudwatch"], lambda_client=aws["lambda_client"], ssm=aws["ssm"],
        config=cfg, now=now,
    )


def test_handler_drives_the_mapping_through_the_whole_cycle(aws, caplog):
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cw = aws["cloudwatch"]
    # A failing minute for events only: 30 of 40 messages failed; sensor_readings healthy.
    put_counts(cw, "events", now - dt.timedelta(seconds=120), received=40, failed=30)
    put_counts(cw, "sensor_readings", now - dt.timedelta(seconds=120), received=40, failed=0)

    summary = run(aws, now)
    assert summary["events"]["to"] == "open" and summary["events"]["action"] == "disable"
    assert summary["sensor_readings"]["to"] == "closed"
    assert mapping_state(aws, "events") == "Disabled"
    assert mapping_state(aws, "sensor_readings") == "Enabled"
    transition = next(r for r in caplog.records if r.getMessage() == "circuit breaker transition")
    assert (transition.topic, transition.from_state, transition.to_state) == (
        "events", "closed", "open"
    )
    assert (transition.requests, transition.errors) == (40, 30)

    assert run(aws, now + dt.timedelta(seconds=60))["events"]["to"] == "open"  # cooling down

    probe_start = now + dt.timedelta(seconds=600)
    assert run(aws, probe_start)["events"]["to"] == "half_open"
    assert mapping_state(aws, "events") == "Enabled"

    # Healthy probe traffic after re-enabling; the failures before the probe do not count.
    put_counts(cw, "events", probe_start + dt.timedelta(seconds=60), received=30, failed=1)
    summary = run(aws, probe_start + dt.timedelta(seconds=300))
    assert summary["events"]["from"] == "half_open" and summary["events"]["to"] == "closed"
    assert mapping_state(aws, "events") == "Enabled"


def test_handler_reopens_on_a_failing_probe(aws):
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cw = aws["cloudwatch"]
    put_counts(cw, "events", now - dt.timedelta(seconds=60), received=50, failed=50)
    run(aws, now)
    probe_start = now + dt.timedelta(seconds=600)
    run(aws, probe_start)
    put_counts(cw, "events", probe_start + dt.timedelta(seconds=30), received=10, failed=9)
    summary = run(aws, probe_start + dt.timedelta(seconds=90))
    assert (summary["events"]["from"], summary["events"]["to"]) == ("half_open", "open")
    assert mapping_state(aws, "events") == "Disabled"


def test_handler_respects_min_sample_size(aws):
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    put_counts(aws["cloudwatch"], "events", now - dt.timedelta(seconds=60), received=19,
               failed=19)
    summary = run(aws, now)
    assert summary["events"]["to"] == "closed"
    assert mapping_state(aws, "events") == "Enabled"


def test_handler_keeps_going_when_one_topic_fails(aws):
    real_ssm = aws["ssm"]

    class FlakySsm:
        exceptions = real_ssm.exceptions

        def get_parameter(self, Name):
            if Name.endswith("/events"):
                raise RuntimeError("SSM unavailable")
            return real_ssm.get_parameter(Name=Name)

        def put_parameter(self, **kwargs):
            return real_ssm.put_parameter(**kwargs)

    aws["ssm"] = FlakySsm()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    for topic in ("events", "sensor_readings"):
        put_counts(aws["cloudwatch"], topic, now - dt.timedelta(seconds=60), 40, 40)
    summary = run(aws, now)
    assert "error" in summary["events"]
    assert mapping_state(aws, "events") == "Enabled"
    assert summary["sensor_readings"]["to"] == "open"
    assert mapping_state(aws, "sensor_readings") == "Disabled"
