"""dlq_processor: archive + dlq_errors row, topic/reason derivation, idempotency, failures."""

from __future__ import annotations

import datetime as dt
import json

import boto3
import pytest
from lambdas_support import (
    PREFIX,
    FakeFirehose,
    config,
    payload,
    queue_arn,
    sqs_event,
    sqs_record,
)
from moto import mock_aws

from ingestion_lambdas.dlq_processor.handler import archive_message, build_entry, process_event

BUCKET = "lean-ops-test-dlq-archive"
DLQ_NAME = "lean-ops-test-dlq"
T1 = dt.datetime(2026, 1, 20, 8, 0, tzinfo=dt.UTC)
T2 = dt.datetime(2026, 1, 21, 9, 30, tzinfo=dt.UTC)


def dlq_record(body: str, **kwargs) -> dict:
    return sqs_record(body, queue_name=DLQ_NAME, **kwargs)


def string_attrs(**values: str) -> dict:
    return {k: {"stringValue": v, "dataType": "String"} for k, v in values.items()}


@pytest.fixture
def s3(aws_env):
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def archive_keys(s3) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_redriven_message_is_archived_and_recorded(s3):
    body = payload("producer-7")
    record = dlq_record(
        body, message_id="dlq-1", receive_count="6",
        extra_attributes={"DeadLetterQueueSourceArn": queue_arn(f"{PREFIX}sensor_readings-queue")},
    )
    firehose = FakeFirehose()
    response = process_event(
        sqs_event(record), firehose=firehose, s3=s3, config=config(), now=lambda: T1
    )
    assert response == {"batchItemFailures": []}

    key = "dlq-archive/sensor_readings/2025/01/19/dlq-1.json"
    assert archive_keys(s3) == [key]
    document = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert document["body"] == body
    assert document["reason"] == "max_receive_count_exceeded"
    assert document["topic"] == "sensor_readings"
    assert document["attributes"]["ApproximateReceiveCount"] == "6"
    assert (document["dlq_message_id"], document["message_id"]) == ("dlq-1", "producer-7")

    (row,) = firehose.delivered_rows()
    assert row == {
        "_leanops_table": "dlq_errors",
        "dlq_message_id": "dlq-1",
        "message_id": "producer-7",
        "topic_name": "sensor_readings",
        "failure_reason": "max_receive_count_exceeded",
        "error_class": None,
        "receive_count": 6,
        "body": body,
        "archive_uri": f"s3://{BUCKET}/{key}",
        "sent_time": "2025-01-19T10:00:00.123000Z",
        "recorded_ts": "2026-01-20T08:00:00.000000Z",
    }


def test_attributes_set_by_sqs_processor_win(s3):
    record = dlq_record(
        "{not json", message_id="dlq-2", sent_timestamp="1768900000000",  # 2026-01-20
        message_attributes=string_attrs(
            leanops_topic="events", leanops_failure_reason="record_too_large",
            leanops_error_class="RECORD_TOO_LARGE", leanops_message_id="orig-9",
            leanops_sent_timestamp="1737280800123",
        ),
    )
    firehose = FakeFirehose()
    process_event(sqs_event(record), firehose=firehose, s3=s3, config=config(), now=lambda: T1)
    assert archive_keys(s3) == ["dlq-archive/events/2025/01/19/dlq-2.json"]
    (row,) = firehose.delivered_rows()
    assert (row["topic_name"], row["failure_reason"], row["error_class"], row["message_id"]) == (
        "events", "record_too_large", "RECORD_TOO_LARGE", "orig-9"
    )
    assert row["body"] == "{not json"


def test_unknown_origin_is_recorded_under_unknown(s3):
    record = dlq_record(payload(), message_id="dlq-3", message_attributes=string_attrs(
        leanops_topic="Not A Topic"))
    firehose = FakeFirehose()
    process_event(sqs_event(record), firehose=firehose, s3=s3, config=config(), now=lambda: T1)
    (row,) = firehose.delivered_rows()
    assert row["topic_name"] == "unknown"
    assert row["message_id"] == "dlq-3"  # no carried id: the SQS id, kept by redrive
    assert archive_keys(s3) == ["dlq-archive/unknown/2025/01/19/dlq-3.json"]


def test_same_dlq_message_twice_gives_one_object_and_one_row(s3):
    record = dlq_record(
        payload("p-1"), message_id="dlq-4",
        extra_attributes={"DeadLetterQueueSourceArn": queue_arn(f"{PREFIX}events-queue")},
    )
    firehose = FakeFirehose()
    for now in (T1, T2):
        response = process_event(
            sqs_event(record), firehose=firehose, s3=s3, config=config(), now=lambda n=now: n
        )
        assert response == {"batchItemFailures": []}
    assert archive_keys(s3) == ["dlq-archive/events/2025/01/19/dlq-4.json"]
    first, second = firehose.delivered_rows()
    # Routed as an update keyed on dlq_message_id: the second put replaces the first row.
    assert first["dlq_message_id"] == second["dlq_message_id"] == "dlq-4"
    assert first["_leanops_table"] == second["_leanops_table"] == "dlq_errors"
    first.pop("recorded_ts"), second.pop("recorded_ts")
    assert first == second
    # Same clock: byte-identical record and archive object.
    assert build_entry(record, config()) == build_entry(record, config())


def test_firehose_failure_reports_only_that_message(s3):
    records = [dlq_record(payload(), message_id=f"dlq-{i}") for i in range(3)]
    firehose = FakeFirehose(
        lambda n, data: {i for i, d in enumerate(data) if b'"dlq-1"' in d}
    )
    response = process_event(
        sqs_event(*records), firehose=firehose, s3=s3, config=config(), now=lambda: T1
    )
    assert response == {"batchItemFailures": [{"itemIdentifier": "dlq-1"}]}
    sent = [[json.loads(d)["dlq_message_id"] for d in call] for call in firehose.calls]
    assert sent == [["dlq-0", "dlq-1", "dlq-2"], ["dlq-1"], ["dlq-1"]]  # retried, then reported


def test_archive_failure_is_a_batch_item_failure_without_a_row(aws_env):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")  # bucket does not exist
        firehose = FakeFirehose()
        response = process_event(
            sqs_event(dlq_record(payload(), message_id="dlq-x")), firehose=firehose, s3=s3,
            config=config(), now=lambda: T1,
        )
    assert response == {"batchItemFailures": [{"itemIdentifier": "dlq-x"}]}
    assert firehose.delivered == []


def test_row_for_a_huge_body_points_to_the_archive(s3):
    body = "z" * 1_040_000
    firehose = FakeFirehose()
    process_event(
        sqs_event(dlq_record(body, message_id="dlq-big")), firehose=firehose, s3=s3,
        config=config(), now=lambda: T1,
    )
    (row,) = firehose.delivered_rows()
    assert row["body"] is None and row["archive_uri"].endswith("/dlq-big.json")
    archived = json.loads(
        s3.get_object(Bucket=BUCKET, Key=archive_keys(s3)[0])["Body"].read()
    )
    assert archived["body"] == body


def test_archive_message_writes_the_object_and_returns_its_row(s3):
    record = dlq_record(payload("p-9"), message_id="dlq-9")
    item = archive_message(record, s3=s3, bucket=BUCKET, config=config(),
                           recorded_ts="2026-01-20T08:00:00.000000Z")
    row = json.loads(item.data)
    assert (item.topic, row["dlq_message_id"], row["message_id"]) == ("unknown", "dlq-9", "p-9")
    assert row["archive_uri"] == f"s3://{BUCKET}/{archive_keys(s3)[0]}"
