"""The Firehose stand-in: boto3 response shape, limits, buffering hints, routing, errors."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.local import ledger
from leanops_dagster.local.firehose import (
    DELIVERY_FAULT_MARKER,
    POISON_MARKER,
    BufferingHints,
    FaultRule,
    LocalFirehose,
    read_error_records,
)
from leanops_dagster.local.injector import generators

STREAM = "lean-ops-local-raw-firehose"


def _raw(message_id: str, topic: str = "fh", payload: str = "{}") -> bytes:
    return (json.dumps({
        "message_id": message_id, "topic_name": topic, "json_payload": payload,
        "publish_time": "2026-01-19T10:00:00.123456Z",
        "ingestion_ts": "2026-01-19T10:00:01.000000Z",
    }) + "\n").encode()


def _dlq(dlq_id: str, topic: str = "fh", reason: str = "max_receive_count_exceeded") -> bytes:
    return (json.dumps({
        "_leanops_table": "dlq_errors", "dlq_message_id": dlq_id, "message_id": "m",
        "topic_name": topic, "failure_reason": reason, "error_class": None,
        "receive_count": 6, "body": "b", "archive_uri": f"s3://bucket/dlq-archive/{dlq_id}",
        "sent_time": "2026-01-19T10:00:00.000000Z",
        "recorded_ts": "2026-01-19T10:05:00.000000Z",
    }) + "\n").encode()


def _rows(settings, table: str) -> int:
    catalog = open_catalog(settings)
    ident = (settings.raw_namespace, table)
    return catalog.load_table(ident).scan().to_arrow().num_rows if catalog.table_exists(
        ident) else 0


def test_markers_match_the_injector():
    assert generators.POISON_MARKER == POISON_MARKER
    assert generators.DELIVERY_FAULT_MARKER == DELIVERY_FAULT_MARKER


def test_flushes_by_interval(settings):
    with LocalFirehose(settings, buffering=BufferingHints(size_mib=64, interval_s=0.5)) as fh:
        response = fh.put_record_batch(DeliveryStreamName=STREAM,
                                       Records=[{"Data": _raw(f"i{i}")} for i in range(5)])
        assert response["FailedPutCount"] == 0
        assert all("RecordId" in r for r in response["RequestResponses"])
        assert fh.pending_records == 5 and _rows(settings, "fh_staging") == 0
        started = time.monotonic()
        while fh.stats.flushes == 0 and time.monotonic() < started + 20:
            time.sleep(0.02)
        assert fh.stats.flushes == 1 and fh.pending_records == 0
        assert time.monotonic() - started >= 0.4  # not before the interval
        assert _rows(settings, "fh_staging") == 5


def test_flushes_by_size(settings):
    size = 10 * len(_raw("s0"))  # the 10th record reaches the size hint
    hints = BufferingHints(size_mib=size / (1024 * 1024), interval_s=3600)
    with LocalFirehose(settings, buffering=hints, background=False) as fh:
        for i in range(10):
            if i:
                assert fh.stats.flushes == 0
            fh.put_record_batch(DeliveryStreamName=STREAM, Records=[{"Data": _raw(f"s{i}")}])
        assert fh.stats.flushes == 1 and fh.pending_records == 0
        assert _rows(settings, "fh_staging") == 10
        fh.put_record_batch(DeliveryStreamName=STREAM, Records=[{"Data": _raw("s10")}])
        assert fh.pending_records == 1  # below the size, interval far away
    assert _rows(settings, "fh_staging") == 11  # close() delivers the rest


def test_limits_and_stream_name_raise_like_boto3(settings):
    with LocalFirehose(settings, background=False) as fh:
        with pytest.raises(ClientError, match="ResourceNotFoundException"):
            fh.put_record_batch(DeliveryStreamName="other", Records=[{"Data": b"x"}])
        with pytest.raises(ClientError, match="ValidationException"):
            fh.put_record_batch(DeliveryStreamName=STREAM,
                                Records=[{"Data": b"x"}] * 501)
        with pytest.raises(ClientError, match="ValidationException"):
            fh.put_record_batch(DeliveryStreamName=STREAM,
                                Records=[{"Data": b"x" * (1000 * 1024 + 1)}])


def test_fault_rule_rejects_per_record_and_spares_dlq_records(settings):
    with LocalFirehose(settings, background=False) as fh:
        poison = _raw("p", payload=json.dumps({"x": POISON_MARKER}))
        response = fh.put_record_batch(
            DeliveryStreamName=STREAM,
            Records=[{"Data": _raw("a")}, {"Data": poison},
                     {"Data": _dlq("d1") .replace(b'"b"', json.dumps(POISON_MARKER).encode())}],
        )
        assert response["FailedPutCount"] == 1
        codes = [r.get("ErrorCode") for r in response["RequestResponses"]]
        assert codes == [None, "ServiceUnavailableException", None]
    assert _rows(settings, "fh_staging") == 1
    assert _rows(settings, "dlq_errors") == 1


def test_transient_fault_rule_is_seeded(settings):
    rule = FaultRule(marker=None, probability=0.5)
    outcomes = []
    for _ in range(2):
        with LocalFirehose(settings, fault_rules=[rule], background=False, seed=3) as fh:
            response = fh.put_record_batch(
                DeliveryStreamName=STREAM, Records=[{"Data": _raw(f"t{i}")} for i in range(40)])
            outcomes.append([("ErrorCode" in r) for r in response["RequestResponses"]])
    assert outcomes[0] == outcomes[1] and 0 < sum(outcomes[0]) < 40


def test_dlq_errors_is_an_upsert_on_dlq_message_id(settings):
    with LocalFirehose(settings, background=False) as fh:
        fh.put_record_batch(DeliveryStreamName=STREAM, Records=[{"Data": _dlq("d1")},
                                                                {"Data": _dlq("d1")}])
        fh.flush()
        fh.put_record_batch(DeliveryStreamName=STREAM,
                            Records=[{"Data": _dlq("d1", reason="again")}, {"Data": _dlq("d2")}])
    table = open_catalog(settings).load_table((settings.raw_namespace, "dlq_errors"))
    rows = {r["dlq_message_id"]: r for r in table.scan().to_arrow().to_pylist()}
    assert sorted(rows) == ["d1", "d2"]
    assert rows["d1"]["failure_reason"] == "again"


def test_undeliverable_records_go_to_error_output_and_ledger(settings):
    with LocalFirehose(settings, background=False) as fh:
        fh.put_record_batch(DeliveryStreamName=STREAM, Records=[
            {"Data": _raw("ok")},
            {"Data": b"this is not json\n"},
            {"Data": _raw("bad-topic", topic="Not-A-Topic")},
            {"Data": json.dumps({"topic_name": "fh", "message_id": "no-times"}).encode()},
            {"Data": _raw("late", payload=json.dumps({"m": DELIVERY_FAULT_MARKER}))},
            {"Data": _raw("bad-ts").replace(b"2026-01-19T10:00:00.123456Z", b"yesterday")},
        ])
    assert _rows(settings, "fh_staging") == 1
    errors = read_error_records(settings)
    assert sorted(e["errorCode"] for e in errors) == sorted([
        "Iceberg.InvalidRecord", "Iceberg.Unroutable", "Iceberg.MissingColumn",
        "Iceberg.InjectedFault", "Iceberg.InvalidRecord",
    ])
    assert ledger.firehose_error_counts(settings) == {"fh": 3, "_unknown": 2}
    assert all(e["rawData"] for e in errors)
