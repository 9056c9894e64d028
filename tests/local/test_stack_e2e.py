"""Local end to end: moto SQS/S3, the pollers, the real handlers, the Firehose stand-in, Iceberg.

Each test sends a scenario through ``LocalStack.send`` on topics of its own, waits until the
stack is quiet and checks the tables with exact integers.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pyarrow.compute as pc
import pytest

from leanops_dagster.local import ledger
from leanops_dagster.local.firehose import read_error_records
from leanops_dagster.local.injector.config import InjectorConfig, StreamConfig, load_config
from leanops_dagster.local.injector.generators import generate
from tests.local.helpers import archive_keys, dlq_rows, raw_rows, retarget

pytestmark = pytest.mark.timeout(600)


def _inject(stack, config: InjectorConfig) -> dict[str, list[str]]:
    plan = generate(config)
    for topic, bodies in plan.items():
        assert stack.send(topic, bodies) == len(bodies)
    stack.wait_until_quiet(timeout_s=420)
    return plan


def test_happy_path_gives_exactly_5000_raw_rows(stack, catalog, stack_settings):
    config = load_config("happy_path")
    assert config.expected() == {"events": {"sent": 5000, "raw": 5000, "dlq": 0,
                                            "firehose_errors": 0}}
    started = time.monotonic()
    _inject(stack, config)
    elapsed = time.monotonic() - started
    rows = raw_rows(catalog, stack_settings, "events")
    assert rows.num_rows == 5000
    assert len(pc.unique(rows["message_id"])) == 5000
    assert ledger.sent_counts(stack_settings)["events"] == 5000
    print(f"happy_path: 5,000 messages through the local stack in {elapsed:.1f}s")


def test_malformed_bodies_land_in_raw_byte_for_byte(stack, catalog, stack_settings):
    config = retarget(load_config("malformed"), "mal")
    plan = _inject(stack, config)
    for topic, bodies in plan.items():
        rows = raw_rows(catalog, stack_settings, topic)
        assert Counter(rows["json_payload"].to_pylist()) == Counter(bodies)
        malformed = [b for b in bodies if not _is_json_object(b)]
        assert len(malformed) == {"mal_events": 40, "mal_sensor_readings": 20}[topic]
        assert dlq_rows(catalog, stack_settings, topic) == []


def test_bodies_sent_as_is_include_whitespace_and_unicode(stack, catalog, stack_settings):
    bodies = ['  {"padded": true}  ', '{"emoji": "🚀", "accent": "é"}', "\t{}", "null", "[1,2]"]
    stack.send("asis", bodies)
    stack.wait_until_quiet(timeout_s=120)
    rows = raw_rows(catalog, stack_settings, "asis")
    assert sorted(rows["json_payload"].to_pylist()) == sorted(bodies)


def test_processing_error_ends_in_archive_and_dlq_errors(stack, catalog, stack_settings):
    config = retarget(load_config("processing_error"), "perr")
    plan = _inject(stack, config)
    for stream in config.streams:
        topic = stream.topic
        assert raw_rows(catalog, stack_settings, topic).num_rows == stream.records
        recorded = dlq_rows(catalog, stack_settings, topic)
        assert len(recorded) == stream.poison
        assert {r["failure_reason"] for r in recorded} == {"max_receive_count_exceeded"}
        assert all("LEANOPS_FAULT_FIREHOSE_REJECT" in r["body"] for r in recorded)
        assert all(r["receive_count"] > 5 for r in recorded)  # SQS redrove after 5 receives
        keys = archive_keys(stack, topic)
        assert len(keys) == stream.poison
        assert {r["archive_uri"].split("/", 3)[3] for r in recorded} == set(keys)
        archived = json.loads(
            stack.s3.get_object(Bucket=stack_settings.archive_bucket_name, Key=keys[0])[
                "Body"].read()
        )
        assert archived["body"] in plan[topic]


def test_mixed_run_balances_sent_raw_dlq_and_firehose_errors(stack, catalog, stack_settings):
    config = InjectorConfig(
        name="mixed", seed=99,
        streams=[
            StreamConfig(topic="mix_events", generator="events", records=300, malformed=15,
                         duplicates=20, corrections=10, drift=30, poison=3, delivery_errors=2),
            StreamConfig(topic="mix_sensors", generator="sensor_readings", records=150,
                         malformed=5, duplicates=5, corrections=5, poison=2, delivery_errors=1),
        ],
    )
    _inject(stack, config)
    sent = ledger.sent_counts(stack_settings)
    errors = ledger.firehose_error_counts(stack_settings)
    s3_errors = Counter(r["topicName"] for r in read_error_records(
        stack_settings, stack.s3, stack_settings.archive_bucket_name))
    for topic, expected in config.expected().items():
        raw = raw_rows(catalog, stack_settings, topic).num_rows
        dlq = len(dlq_rows(catalog, stack_settings, topic))
        fh = errors.get(topic, 0)
        assert (sent[topic], raw, dlq, fh) == (
            expected["sent"], expected["raw"], expected["dlq"], expected["firehose_errors"]
        )
        assert sent[topic] == raw + dlq + fh  # the pre-RAW balance, exact integers
        assert s3_errors[topic] == fh


def test_dlq_processor_is_idempotent_through_the_stack(stack, catalog, stack_settings):
    """The DLQ handler's first invocation 'times out' after doing its work: SQS redelivers
    the same DLQ message, the handler runs again, and there is still one archive object and
    one dlq_errors row."""
    calls = Counter()
    real = stack._dlq_handler

    def flaky(event, context):
        response = real(event, context)
        ids = [r["messageId"] for r in event["Records"]
               if '"idem"' in json.dumps(r["messageAttributes"])]
        for message_id in ids:
            calls[message_id] += 1
        first_time = [i for i in ids if calls[i] == 1]
        return {"batchItemFailures": response["batchItemFailures"]
                + [{"itemIdentifier": i} for i in first_time]}

    stack._dlq_handler = flaky
    for poller in stack._pollers.values():
        if poller.queue_url == stack.dlq_url:
            poller._handler = flaky
    try:
        stack.queue_url("idem")
        stack.sqs.send_message(
            QueueUrl=stack.dlq_url, MessageBody='{"poison": "LEANOPS_FAULT_FIREHOSE_REJECT"}',
            MessageAttributes={
                "leanops_topic": {"DataType": "String", "StringValue": "idem"},
                "leanops_failure_reason": {"DataType": "String", "StringValue": "test_replay"},
            },
        )
        stack.wait_until_quiet(timeout_s=120)
    finally:
        for poller in stack._pollers.values():
            if poller.queue_url == stack.dlq_url:
                poller._handler = real
        del stack._dlq_handler
    assert sorted(calls.values()) == [2]  # handled twice
    rows = dlq_rows(catalog, stack_settings, "idem")
    assert len(rows) == 1
    assert rows[0]["failure_reason"] == "test_replay"
    assert len(archive_keys(stack, "idem")) == 1


def test_duplicates_and_corrections_reach_raw_unchanged(stack, catalog, stack_settings):
    config = retarget(
        InjectorConfig(name="dc", seed=5, streams=[
            StreamConfig(topic="events", records=120, duplicates=20, corrections=15)]),
        "dc",
    )
    plan = _inject(stack, config)
    rows = raw_rows(catalog, stack_settings, "dc_events")
    assert rows.num_rows == 155
    counts = Counter(rows["message_id"].to_pylist())
    assert sum(1 for n in counts.values() if n == 2) == 20  # redelivered: same message_id
    keys = Counter(json.loads(b)["_metadata"]["idempotencyKeyResource"]
                   for b in plan["dc_events"])
    assert sum(n - 1 for n in keys.values()) == 35  # 20 duplicates + 15 corrections


def _is_json_object(body: str) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except ValueError:
        return False
