"""sqs_processor: classification, partial batch responses, Firehose retries and chunking."""

from __future__ import annotations

import json

import boto3
import pytest
from lambdas_support import (
    FakeFirehose,
    client_error,
    config,
    lambda_context,
    payload,
    sqs_event,
    sqs_record,
)
from moto import mock_aws

from ingestion_lambdas.common.firehose import chunk_indices, deliver
from ingestion_lambdas.sqs_processor import handler
from ingestion_lambdas.sqs_processor.handler import (
    SentToDlq,
    handle_message,
    process_batch,
    process_event,
    resolve_sources,
)

BIG = 1_030_000  # a body whose RAW record exceeds 1,000 KiB but fits SQS's 1 MiB


def failures(response: dict) -> list[str]:
    return [f["itemIdentifier"] for f in response["batchItemFailures"]]


def test_every_classification_lands_in_raw_in_one_put():
    records = [
        sqs_record(payload("producer-1", "2026-01-19T10:00:00Z"), message_id="a"),
        sqs_record('{"broken": ', message_id="b"),
        sqs_record("[1, 2]", message_id="c"),
        sqs_record(payload(None, "garbage"), message_id="d"),
    ]
    firehose = FakeFirehose()
    outcome = process_batch(sqs_event(*records), firehose=firehose, sqs=None, config=config())

    assert outcome.response == {"batchItemFailures": []}
    assert len(firehose.calls) == 1
    assert firehose.stream_names == {"lean-ops-test-raw-firehose"}
    rows = {r["message_id"]: r for r in firehose.delivered_rows()}
    assert set(rows) == {"producer-1", "b", "c", "d"}
    assert rows["b"]["json_payload"] == '{"broken": '
    assert rows["c"]["json_payload"] == "[1, 2]"
    assert rows["producer-1"]["publish_time"] == "2026-01-19T10:00:00.000000Z"
    assert rows["d"]["publish_time"] == "2025-01-19T10:00:00.123000Z"  # SentTimestamp
    assert {r["topic_name"] for r in rows.values()} == {"events"}
    counts = outcome.counts["events"]
    assert (counts.received, counts.delivered, counts.malformed, counts.failed) == (4, 4, 2, 0)


@pytest.mark.parametrize("publish_time", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_publish_time_beyond_the_datetime_range_in_utc_falls_back_to_sent_timestamp(publish_time):
    # Converting such a publishTime to UTC overflows; it is an invalid publishTime like any
    # other (SentTimestamp is used), not an error that fails the record into retries and the DLQ.
    firehose = FakeFirehose()
    records = [
        sqs_record(payload("edge", publish_time), message_id="a"),
        sqs_record(payload("ok", "2026-01-19T11:00:00+01:00"), message_id="b"),
    ]
    outcome = process_batch(sqs_event(*records), firehose=firehose, sqs=None, config=config())

    assert outcome.response == {"batchItemFailures": []}
    rows = {r["message_id"]: r for r in firehose.delivered_rows()}
    assert rows["edge"]["publish_time"] == "2025-01-19T10:00:00.123000Z"  # SentTimestamp
    assert json.loads(rows["edge"]["json_payload"])["_metadata"]["publishTime"] == publish_time
    assert rows["ok"]["publish_time"] == "2026-01-19T10:00:00.000000Z"
    counts = outcome.counts["events"]
    assert (counts.received, counts.delivered, counts.malformed, counts.failed) == (2, 2, 0, 0)


def test_malformed_body_is_logged_with_its_error_class(caplog):
    process_event(
        sqs_event(sqs_record("{nope", message_id="m-1")),
        firehose=FakeFirehose(), sqs=None, config=config(),
    )
    (warning,) = [r for r in caplog.records if getattr(r, "error_class", None)]
    assert warning.levelname == "WARNING"
    assert (warning.error_class, warning.topic, warning.message_id) == (
        "MALFORMED_JSON", "events", "m-1"
    )


def test_partial_batch_response_names_exactly_the_undelivered_messages():
    records = [sqs_record(payload(), message_id=f"m{i}") for i in range(5)]
    # Firehose keeps rejecting the records at request positions 1 and 3.
    firehose = FakeFirehose(lambda n, data: {1, 3} if n == 1 else set(range(len(data))))
    outcome = process_batch(sqs_event(*records), firehose=firehose, sqs=None, config=config())

    assert failures(outcome.response) == ["m1", "m3"]
    assert len(firehose.calls) == 3  # firehose_max_attempts
    sent_ids = [[json.loads(d)["message_id"] for d in call] for call in firehose.calls]
    assert sent_ids == [["m0", "m1", "m2", "m3", "m4"], ["m1", "m3"], ["m1", "m3"]]
    assert {r["message_id"] for r in firehose.delivered_rows()} == {"m0", "m2", "m4"}
    counts = outcome.counts["events"]
    assert (counts.received, counts.delivered, counts.failed) == (5, 3, 2)


def test_a_partially_failing_put_retries_exactly_the_failed_records():
    records = [sqs_record(payload(), message_id=f"m{i}") for i in range(4)]
    firehose = FakeFirehose(lambda n, data: {0, 2} if n == 1 else None)
    response = process_event(sqs_event(*records), firehose=firehose, sqs=None, config=config())

    assert failures(response) == []
    assert len(firehose.calls) == 2
    assert firehose.calls[1] == [firehose.calls[0][0], firehose.calls[0][2]]
    assert sorted(r["message_id"] for r in firehose.delivered_rows()) == ["m0", "m1", "m2", "m3"]


def test_throttling_exception_retries_the_whole_chunk():
    def script(n, data):
        if n == 1:
            raise client_error("ThrottlingException")
        return None

    records = [sqs_record(payload(), message_id=f"m{i}") for i in range(3)]
    firehose = FakeFirehose(script)
    response = process_event(sqs_event(*records), firehose=firehose, sqs=None, config=config())
    assert failures(response) == []
    assert len(firehose.calls) == 2 and firehose.calls[0] == firehose.calls[1]


def test_persistent_service_unavailable_fails_every_message_without_raising():
    def script(n, data):
        raise client_error("ServiceUnavailableException")

    records = [sqs_record(payload(), message_id=f"m{i}") for i in range(3)]
    firehose = FakeFirehose(script)
    response = process_event(sqs_event(*records), firehose=firehose, sqs=None, config=config())
    assert failures(response) == ["m0", "m1", "m2"]
    assert len(firehose.calls) == 3


def test_non_retryable_error_fails_the_chunk_at_once():
    def script(n, data):
        raise client_error("ResourceNotFoundException")

    firehose = FakeFirehose(script)
    response = process_event(
        sqs_event(sqs_record(payload(), message_id="m0")),
        firehose=firehose, sqs=None, config=config(),
    )
    assert failures(response) == ["m0"]
    assert len(firehose.calls) == 1


def test_backoff_sleeps_between_attempts_only():
    slept: list[float] = []
    firehose = FakeFirehose(lambda n, data: {0})
    outcome = process_batch(
        sqs_event(sqs_record(payload(), message_id="m0")),
        firehose=firehose, sqs=None,
        config=config(firehose_retry_base_delay_s=0.01, firehose_max_attempts=4),
        sleep=slept.append,
    )
    assert failures(outcome.response) == ["m0"]
    assert len(slept) == 3 and all(0 <= s <= 0.04 for s in slept)


def test_chunking_by_record_count():
    records = [sqs_record(payload(), message_id=f"m{i}") for i in range(1201)]
    firehose = FakeFirehose()
    response = process_event(sqs_event(*records), firehose=firehose, sqs=None, config=config())
    assert failures(response) == []
    assert [len(c) for c in firehose.calls] == [500, 500, 201]


def test_chunking_by_bytes():
    body = json.dumps({"blob": "x" * 900_000})
    records = [sqs_record(body, message_id=f"m{i}") for i in range(10)]
    firehose = FakeFirehose()
    response = process_event(sqs_event(*records), firehose=firehose, sqs=None, config=config())
    assert failures(response) == []
    assert [len(c) for c in firehose.calls] == [4, 4, 2]
    assert all(sum(map(len, c)) <= 4 * 1024 * 1024 for c in firehose.calls)


def test_chunk_indices_limits():
    assert list(chunk_indices([1] * 5, max_records=2, max_bytes=100)) == [[0, 1], [2, 3], [4]]
    assert list(chunk_indices([60, 50, 40, 10], max_records=10, max_bytes=100)) == [
        [0], [1, 2, 3]
    ]
    assert list(chunk_indices([], max_records=2, max_bytes=10)) == []


def test_unmatched_firehose_response_is_treated_as_failed():
    class Broken:
        def put_record_batch(self, **kwargs):
            return {"FailedPutCount": 1, "RequestResponses": []}

    report = deliver(Broken(), "s", [b"a\n", b"b\n"], max_attempts=2, base_delay_s=0)
    assert sorted(report.failed) == [0, 1] and report.calls == 2


@pytest.fixture
def dlq(aws_env):
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="lean-ops-test-dlq")["QueueUrl"]
        yield sqs, url


def _received(sqs, url) -> list[dict]:
    return sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", [])


def test_oversized_record_goes_straight_to_the_dlq(dlq):
    sqs, url = dlq
    big = json.dumps({"blob": "y" * BIG, "_metadata": {"messageId": "producer-big"}})
    records = [
        sqs_record(payload(), message_id="ok"),
        sqs_record(big, message_id="big", message_attributes={
            "origin": {"stringValue": "device-7", "dataType": "String"},
        }),
    ]
    firehose = FakeFirehose()
    outcome = process_batch(
        sqs_event(*records), firehose=firehose, sqs=sqs, config=config(dlq_url=url)
    )
    assert failures(outcome.response) == []
    assert [r["message_id"] for r in firehose.delivered_rows()] == ["ok"]
    (message,) = _received(sqs, url)
    assert message["Body"] == big
    attrs = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attrs["leanops_topic"] == "events"
    assert attrs["leanops_failure_reason"] == "record_too_large"
    assert attrs["leanops_error_class"] == "RECORD_TOO_LARGE"
    assert attrs["leanops_message_id"] == "producer-big"
    assert attrs["leanops_sent_timestamp"] == "1737280800123"
    assert attrs["origin"] == "device-7"
    counts = outcome.counts["events"]
    assert (counts.received, counts.delivered, counts.sent_to_dlq, counts.failed) == (2, 1, 1, 0)


def test_oversized_record_whose_dlq_send_fails_is_a_batch_item_failure(dlq):
    sqs, url = dlq
    big = json.dumps({"blob": "y" * BIG})
    records = [sqs_record(payload(), message_id="ok"), sqs_record(big, message_id="big")]
    response = process_event(
        sqs_event(*records), firehose=FakeFirehose(), sqs=sqs,
        config=config(dlq_url=url + "-does-not-exist"),
    )
    assert failures(response) == ["big"]


def test_bad_queue_name_sends_to_the_dlq_without_firehose(dlq):
    sqs, url = dlq
    records = [sqs_record(payload(), message_id="x", queue_name="someone-elses-Queue")]
    firehose = FakeFirehose()
    outcome = process_batch(
        sqs_event(*records), firehose=firehose, sqs=sqs, config=config(dlq_url=url)
    )
    assert failures(outcome.response) == []
    assert firehose.calls == []
    (message,) = _received(sqs, url)
    attrs = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
    assert attrs["leanops_failure_reason"] == "invalid_queue_name"
    assert attrs["leanops_source_queue"] == "someone-elses-Queue"
    assert "leanops_topic" not in attrs
    assert outcome.counts["unknown"].sent_to_dlq == 1


def test_empty_event_does_nothing():
    firehose = FakeFirehose()
    assert process_event({"Records": []}, firehose=firehose, sqs=None, config=config()) == {
        "batchItemFailures": []
    }
    assert firehose.calls == []


def test_lambda_handler_uses_env_config_and_publishes_topic_metrics(monkeypatch, capsys):
    firehose = FakeFirehose(lambda n, data: {0} if n == 1 else None)
    monkeypatch.setattr(handler, "client", lambda name: {"firehose": firehose, "sqs": None}[name])
    monkeypatch.setattr(handler, "get_config", lambda: config(metrics_namespace="Test/NS"))
    records = [sqs_record(payload(), message_id="m0"), sqs_record("{", message_id="m1")]
    context = lambda_context()
    assert handler.lambda_handler(sqs_event(*records), context) == {"batchItemFailures": []}
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    # powertools' inject_lambda_context: the invocation's log lines carry its ids
    keys = handler.logger.get_current_keys()
    assert (keys["function_request_id"], keys["function_name"]) == (
        context.aws_request_id, context.function_name)
    emf = next(line for line in lines if "_aws" in line)
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Test/NS"
    assert sorted(emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) == ["service", "topic"]
    assert (emf["topic"], emf["service"]) == ("events", "sqs_processor")
    values = {k: emf[k] for k in ("MessagesReceived", "MessagesDelivered", "MessagesFailed",
                                  "MessagesMalformed", "MessagesSentToDlq")}
    assert values == {"MessagesReceived": [2.0], "MessagesDelivered": [2.0],
                      "MessagesFailed": [0.0], "MessagesMalformed": [1.0],
                      "MessagesSentToDlq": [0.0]}


def test_sources_are_resolved_once_per_queue_and_a_bad_name_is_logged_once(caplog):
    records = [sqs_record(payload(), message_id=f"m{i}") for i in range(3)] + [
        sqs_record(payload(), queue_name="someone-elses-Queue", message_id=f"x{i}")
        for i in range(2)
    ]
    sources = resolve_sources(records, config(), "2026-01-19T10:00:00.000000Z")
    assert sorted((s.queue, s.topic) for s in sources.values()) == [
        ("lean-ops-test-events-queue", "events"), ("someone-elses-Queue", None)]
    logged = [r for r in caplog.records if getattr(r, "queue", None) == "someone-elses-Queue"]
    assert [r.error_class for r in logged] == ["INVALID_QUEUE_NAME"]


def test_handle_message_builds_the_raw_record_or_sends_to_the_dlq(dlq):
    sqs, url = dlq
    good = sqs_record(payload("p-1", "2026-01-19T10:00:00Z"), message_id="a")
    broken = sqs_record("{nope", message_id="b")
    stray = sqs_record(payload(), queue_name="someone-elses-Queue", message_id="c")
    sources = resolve_sources([good, broken, stray], config(), "2026-01-19T10:00:00.000000Z")
    kwargs = {"sqs": sqs, "config": config(dlq_url=url)}

    first = handle_message(good, sources[good["eventSourceARN"]], **kwargs)
    assert (first.topic, first.malformed) == ("events", False)
    assert json.loads(first.data)["message_id"] == "p-1"
    second = handle_message(broken, sources[broken["eventSourceARN"]], **kwargs)
    assert second.malformed and json.loads(second.data)["json_payload"] == "{nope"
    assert handle_message(stray, sources[stray["eventSourceARN"]], **kwargs) == SentToDlq(None)
    (message,) = _received(sqs, url)
    assert message["MessageAttributes"]["leanops_failure_reason"]["StringValue"] == (
        "invalid_queue_name")
