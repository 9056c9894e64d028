"""Pure RAW-record rules: topic from the queue, message id, publish time, classification."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ingestion_lambdas.common.raw_record import (
    InvalidQueueNameError,
    build_raw_record,
    encode_raw_record,
    format_ts,
    parse_publish_time,
    topic_from_queue_arn,
)

INGESTED = "2026-01-19T12:00:00.000000Z"
SENT_MS = "1737280800123"
SENT_ISO = "2025-01-19T10:00:00.123000Z"


def build(body: str, sqs_message_id: str = "sqs-1", sent: str | None = SENT_MS) -> tuple:
    rec = build_raw_record(
        body=body, sqs_message_id=sqs_message_id, sent_timestamp=sent, topic="events",
        ingestion_ts=INGESTED,
    )
    assert rec.data.endswith(b"\n") and rec.data.count(b"\n") == 1
    return rec, json.loads(rec.data)


@pytest.mark.parametrize(
    ("arn", "topic"),
    [
        ("arn:aws:sqs:eu-west-1:1:lean-ops-dev-events-queue", "events"),
        ("arn:aws:sqs:eu-west-1:1:lean-ops-dev-sensor_readings-queue", "sensor_readings"),
    ],
)
def test_topic_from_queue_arn(arn, topic):
    assert topic_from_queue_arn(arn, "lean-ops-dev-", "-queue") == topic


@pytest.mark.parametrize(
    "name",
    [
        "lean-ops-prod-events-queue",  # other environment's prefix
        "lean-ops-dev-events",  # no suffix
        "lean-ops-dev-Events-queue",  # upper case
        "lean-ops-dev-1events-queue",  # starts with a digit
        "lean-ops-dev-ev-ents-queue",  # hyphen
        "lean-ops-dev--queue",  # empty topic
    ],
)
def test_bad_queue_names_are_rejected(name):
    with pytest.raises(InvalidQueueNameError):
        topic_from_queue_arn(f"arn:aws:sqs:eu-west-1:1:{name}", "lean-ops-dev-", "-queue")


def test_valid_payload_with_carried_message_id_and_publish_time():
    body = json.dumps(
        {"event": {"userId": "u1"},
         "_metadata": {"messageId": "producer-42", "publishTime": "2026-01-19T11:00:00.5+01:00"}}
    )
    rec, row = build(body)
    assert rec.error_class is None and rec.publish_time_from_payload
    assert row == {
        "message_id": "producer-42",
        "topic_name": "events",
        "json_payload": body,
        "publish_time": "2026-01-19T10:00:00.500000Z",
        "ingestion_ts": INGESTED,
    }


def test_epoch_millis_publish_time():
    _, row = build(json.dumps({"_metadata": {"publishTime": 1768816800250}}))
    assert row["publish_time"] == "2026-01-19T10:00:00.250000Z"
    _, row = build(json.dumps({"_metadata": {"publishTime": "1768816800250"}}))
    assert row["publish_time"] == "2026-01-19T10:00:00.250000Z"


@pytest.mark.parametrize(
    "publish_time",
    [None, "", "yesterday", "2026-01-19T10:00:00", "2026-13-01T00:00:00Z", True, -5,
     10**20, [1], {"t": 1}, float("nan")],
)
def test_missing_or_invalid_publish_time_falls_back_to_sent_timestamp(publish_time):
    meta = {} if publish_time is None else {"publishTime": publish_time}
    rec, row = build(json.dumps({"_metadata": meta}))
    assert not rec.publish_time_from_payload
    assert row["publish_time"] == SENT_ISO


def test_no_sent_timestamp_falls_back_to_ingestion_time():
    _, row = build(json.dumps({"a": 1}), sent=None)
    assert row["publish_time"] == INGESTED


@pytest.mark.parametrize("message_id", [None, "", "   ", 42, ["x"]])
def test_message_id_falls_back_to_sqs_id(message_id):
    meta = {} if message_id is None else {"messageId": message_id}
    _, row = build(json.dumps({"_metadata": meta}), sqs_message_id="sqs-abc")
    assert row["message_id"] == "sqs-abc"


@pytest.mark.parametrize(
    ("body", "error_class"),
    [
        ('{"event": {"userId": "u1"', "MALFORMED_JSON"),
        ("not json at all", "MALFORMED_JSON"),
        ("", "MALFORMED_JSON"),
        ("[" * 100_000, "MALFORMED_JSON"),
        ("[1, 2, 3]", "NOT_JSON_OBJECT"),
        ('"a string"', "NOT_JSON_OBJECT"),
        ("42", "NOT_JSON_OBJECT"),
        ("null", "NOT_JSON_OBJECT"),
    ],
)
def test_bodies_that_are_not_json_objects_are_kept_byte_for_byte(body, error_class):
    rec, row = build(body, sqs_message_id="sqs-m")
    assert rec.error_class == error_class
    assert row["json_payload"] == body
    assert row["message_id"] == "sqs-m"
    assert row["publish_time"] == SENT_ISO


def test_unicode_body_is_kept_exactly():
    body = '{"name": "Zoë 🚀", "_metadata": {"messageId": "m-ü"}}'
    rec, row = build(body)
    assert row["json_payload"] == body and row["message_id"] == "m-ü"
    assert "Zoë 🚀".encode() in rec.data  # not \\u-escaped: the size limit counts real bytes


def test_format_ts_converts_to_utc_with_microseconds():
    value = dt.datetime(2026, 1, 19, 11, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert format_ts(value) == "2026-01-19T10:00:00.123456Z"


def test_parse_publish_time_requires_an_offset():
    assert parse_publish_time("2026-01-19T10:00:00Z") == dt.datetime(2026, 1, 19, 10, tzinfo=dt.UTC)
    assert parse_publish_time("2026-01-19T10:00:00") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0001-01-01T00:30:00+01:00", None),  # 0000-12-31T23:30Z: before year 1
        ("9999-12-31T23:30:00-01:00", None),  # 10000-01-01T00:30Z: after year 9999
        ("0001-01-01T01:00:00+01:00", dt.datetime(1, 1, 1, tzinfo=dt.UTC)),
        ("9999-12-31T22:59:59.999999-01:00", dt.datetime.max.replace(tzinfo=dt.UTC)),
    ],
)
def test_parse_publish_time_outside_the_utc_range_is_invalid(value, expected):
    assert parse_publish_time(value) == expected


@pytest.mark.parametrize("value", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_publish_time_outside_the_utc_range_falls_back_to_sent_timestamp(value):
    rec, row = build(json.dumps({"_metadata": {"messageId": "p-1", "publishTime": value}}))
    assert row["publish_time"] == SENT_ISO and not rec.publish_time_from_payload
    assert rec.error_class is None and row["message_id"] == "p-1"


@pytest.mark.parametrize(
    "body", ['{"a": "b"}', 'quote " backslash \\ newline \n tab \t', "\x00\x1f ü 🚀 \u2028"]
)
def test_encoding_equals_json_dumps(body):
    row = {"message_id": "m\"1", "topic_name": "events", "json_payload": body,
           "publish_time": SENT_ISO, "ingestion_ts": INGESTED}
    expected = json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"
    assert encode_raw_record(*row.values()) == expected.encode()


# --- the fast paths (orjson, UTC ISO strings) give exactly the std-lib results ---------------
def test_orjson_encoding_equals_the_stdlib_for_every_code_point():
    from ingestion_lambdas.common import raw_record

    if raw_record._fast_dumps is None:
        pytest.skip("orjson not installed")
    every = "".join(chr(i) for i in range(0x110000) if not 0xD800 <= i <= 0xDFFF)
    args = ("m\"1", "events", every, SENT_ISO, INGESTED)
    assert encode_raw_record(*args) == raw_record._encode_raw_record_stdlib(*args)
    lone = '{"a": "\ud800"}'  # a lone surrogate: orjson refuses it, the std-lib path writes it
    assert encode_raw_record("m", "events", lone, SENT_ISO, INGESTED) == (
        raw_record._encode_raw_record_stdlib("m", "events", lone, SENT_ISO, INGESTED)
    )


@pytest.mark.parametrize(
    ("body", "error_class"),
    [
        ('{"a": NaN, "_metadata": {"messageId": "p-1"}}', None),  # std-lib accepts NaN
        ("Infinity", "NOT_JSON_OBJECT"),
        ('{"a": "\\ud800"}', None),  # lone surrogate escape: std-lib accepts it
        ('{"a": 123456789012345678901234567890}', None),
        ('{"a": 1, "a": 2}', None),
        ('{"a": 1,}', "MALFORMED_JSON"),
    ],
)
def test_classification_is_the_stdlibs(body, error_class, monkeypatch):
    from ingestion_lambdas.common import raw_record

    fast = build(body)
    monkeypatch.setattr(raw_record, "_fast_loads", None)
    monkeypatch.setattr(raw_record, "_fast_dumps", None)
    stdlib = build(body)
    assert fast[0].error_class == stdlib[0].error_class == error_class
    assert fast[0] == stdlib[0]


@pytest.mark.parametrize(
    "value",
    ["2026-01-19T00:00:00Z", "2026-01-19T00:00:00.1Z", "2026-01-19T00:00:00.123456+00:00",
     "2026-01-19T00:00:00.226-00:00", "2026-01-19T00:00:00.1234567Z", "2026-02-30T00:00:00Z",
     "2026-01-19T24:00:00Z", "2026-01-19 00:00:00Z", "2026-01-19T00:00:00,5Z",
     "2026-W03-1T00:00:00Z", " 2026-01-19T00:00:00Z", "2026-01-19T00:00:00+01:00",
     "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "2026-01-19T00:00:00.Z",
     "2026-01-19T00:00:00", 1768816800250, "1768816800250", None, True,
     "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", "0001-01-01T01:00:00+01:00",
     "9999-12-31T22:59:59.999999-01:00"],
)
def test_publish_time_text_equals_parse_then_format(value):
    from ingestion_lambdas.common.raw_record import publish_time_text

    parsed = parse_publish_time(value)
    assert publish_time_text(value) == (None if parsed is None else format_ts(parsed))
