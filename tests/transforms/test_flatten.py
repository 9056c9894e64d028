"""flatten_raw: nesting, casing, arrays, scalars, metadata, unsafe names, collisions, errors."""

from __future__ import annotations

import json

import pyarrow as pa

from leanops_dagster.pipeline.process_tuning import flatten_increment
from leanops_dagster.schemas.models import StandardizedSchema
from leanops_dagster.transforms.flatten import flatten_raw
from leanops_dagster.transforms.flatten.naming import path_digest
from tests.transforms.conftest import TS, at, raw_rows

SCHEMA = StandardizedSchema()
META = [
    "message_id",
    "idempotency_key",
    "topic_name",
    "publish_time",
    "ingestion_ts",
    "raw_snapshot_id",
]


def body(key="k1", **payload) -> str:
    return json.dumps(
        {
            **payload,
            "_metadata": {
                "idempotencyKeyResource": key,
                "messageId": "p",
                "publishTime": "2026-01-19T10:00:00Z",
            },
        }
    )


def payload_rows(result) -> list[dict]:
    return result.rows.drop_columns(META).to_pylist()


def test_nesting_casing_metadata_and_column_order():
    raw = raw_rows(
        [
            body(
                "k1",
                event={"userId": "u1", "eventType": "click", "metadata": {"ipAddress": "1.2.3.4"}},
                sessionId="s1",
            ),
        ]
    )
    result = flatten_raw(raw, SCHEMA)
    expected = pa.table(
        {
            "message_id": ["m0"],
            "idempotency_key": ["k1"],
            "topic_name": ["events"],
            "publish_time": pa.array([at(0)], TS),
            "ingestion_ts": pa.array([at(100)], TS),
            "raw_snapshot_id": pa.array([7], pa.int64()),
            "event_eventtype": ["click"],
            "event_metadata_ipaddress": ["1.2.3.4"],
            "event_userid": ["u1"],
            "sessionid": ["s1"],
        }
    )
    assert result.rows.equals(expected)
    assert result.errors.num_rows == 0
    assert result.columns == [
        "event_eventtype",
        "event_metadata_ipaddress",
        "event_userid",
        "sessionid",
    ]
    assert result.sanitised == {}


def test_arrays_objects_and_scalars_as_json_text():
    raw = raw_rows(
        [
            '{"tags": ["a", "b"], "items": [{"sku": "x", "qty": 2, "price": 1.50}], "empty": {},'
            ' "flag": true, "off": false, "n": 42, "f": 1.50, "e": 1E5, "neg": -0.25,'
            ' "big": 123456789012345678901234567890, "precise": 0.12345678901234567,'
            ' "nothing": null, "s": "t\\u00e9xt",'
            ' "_metadata": {"idempotencyKeyResource": 7}}',
        ]
    )
    result = flatten_raw(raw, SCHEMA)
    assert result.rows.column("idempotency_key").to_pylist() == ["7"]
    assert payload_rows(result) == [
        {
            "big": "123456789012345678901234567890",
            "e": "100000.0",
            "empty": "{}",
            "f": "1.5",
            "flag": "true",
            "items": '[{"sku":"x","qty":2,"price":1.5}]',
            "n": "42",
            "neg": "-0.25",
            "off": "false",
            "precise": "0.12345678901234567",
            "s": "téxt",
            "tags": '["a","b"]',
        }
    ]
    # a key that is null in every row adds no column (null = absent in Standardized)
    assert "nothing" not in result.rows.column_names


def test_unsafe_reserved_long_and_non_ascii_keys_are_sanitised_deterministically():
    long_key = "k" * 130
    raw = raw_rows(
        [
            body(
                "k1",
                **{
                    "user-Name": "a",
                    "1st": "b",
                    "message_id": "c",
                    "café": "d",
                    long_key: "e",
                    "drop table x;--": "f",
                },
            ),
        ]
    )
    result = flatten_raw(raw, SCHEMA)
    row = payload_rows(result)[0]
    expected = {
        "user_name_68a0974b": "a",
        "_1st_5376f47d": "b",
        "message_id_59b94a14": "c",
        "caf__da4f2d52": "d",
        f"{'k' * 119}_{path_digest((long_key,))}": "e",
        f"drop_table_x____{path_digest(('drop table x;--',))}": "f",
    }
    assert row == expected
    assert result.rows.column("message_id").to_pylist() == ["m0"]  # RAW's, not the payload's
    assert result.sanitised["user_name_68a0974b"] == '["user-Name"]'
    assert all(len(name) <= 128 for name in result.rows.column_names)


def test_collisions_in_one_payload_first_sorted_path_keeps_the_name():
    raw = raw_rows(
        [
            body("k1", event={"userId": "A", "userid": "B"}),
            body("k2", event={"userid": "C"}),
            body("k3", a={"b": "nested"}, a_b="flat"),
        ]
    )
    result = flatten_raw(raw, SCHEMA)
    assert payload_rows(result) == [
        {
            "a_b": None,
            f"a_b_{path_digest(('a_b',))}": None,
            "event_userid": "A",
            f"event_userid_{path_digest(('event', 'userid'))}": "B",
        },
        {
            "a_b": None,
            f"a_b_{path_digest(('a_b',))}": None,
            "event_userid": "C",
            f"event_userid_{path_digest(('event', 'userid'))}": None,
        },
        # ("a", "b") sorts before ("a_b",)
        {
            "a_b": "nested",
            f"a_b_{path_digest(('a_b',))}": "flat",
            "event_userid": None,
            f"event_userid_{path_digest(('event', 'userid'))}": None,
        },
    ]


def test_same_key_object_in_one_row_scalar_in_another():
    raw = raw_rows(
        [body("k1", a={"b": "1"}), body("k2", a="2"), body("k3", a={"b": "3", "c": "4"})]
    )
    assert payload_rows(flatten_raw(raw, SCHEMA)) == [
        {"a": None, "a_b": "1", "a_c": None},
        {"a": "2", "a_b": None, "a_c": None},
        {"a": None, "a_b": "3", "a_c": "4"},
    ]


def test_fast_and_exact_paths_agree():
    """A long float forces the exact path for its row; other values must be identical."""
    common = {"x": 1.25, "y": [1, 2.5], "z": {"w": True}, "s": "v", "i": 3}
    fast = flatten_raw(raw_rows([body("k", **common)]), SCHEMA)
    exact = flatten_raw(raw_rows([body("k", **common, long=0.12345678901234567)]), SCHEMA)
    assert payload_rows(fast)[0] == {k: v for k, v in payload_rows(exact)[0].items() if k != "long"}


def test_parse_errors_with_reasons():
    raw = raw_rows(
        [
            "not json",
            "[1, 2]",
            '"a string"',
            body("k1", ok="yes"),
            '{"a": 1}',
            '{"a": 1, "_metadata": {"idempotencyKeyResource": null}}',
            '{"a": 1, "_metadata": {"idempotencyKeyResource": ""}}',
            '{"a": 1,}',
            '{"a": "\\ud800"}',
            None,
        ]
    )
    result = flatten_raw(raw, SCHEMA)
    assert result.rows.column("message_id").to_pylist() == ["m3"]
    errors = result.errors
    assert errors.column_names == [
        "message_id",
        "topic_name",
        "error_reason",
        "error_detail",
        "json_payload",
        "raw_snapshot_id",
        "publish_time",
        "ingestion_ts",
    ]
    assert errors.select(["message_id", "error_reason"]).to_pylist() == [
        {"message_id": "m0", "error_reason": "invalid_json"},
        {"message_id": "m1", "error_reason": "not_an_object"},
        {"message_id": "m2", "error_reason": "not_an_object"},
        {"message_id": "m4", "error_reason": "missing_required_metadata:idempotency_key"},
        {"message_id": "m5", "error_reason": "missing_required_metadata:idempotency_key"},
        {"message_id": "m6", "error_reason": "missing_required_metadata:idempotency_key"},
        {"message_id": "m7", "error_reason": "invalid_json"},
        {"message_id": "m8", "error_reason": "invalid_json"},
        {"message_id": "m9", "error_reason": "invalid_json"},
    ]
    assert errors.column("raw_snapshot_id").to_pylist() == [7] * 9
    assert errors.column("json_payload").to_pylist()[0] == "not json"
    assert errors.column("publish_time").to_pylist()[1] == at(1)
    assert errors.column("error_detail").to_pylist()[1] == "JSON array, not an object"
    assert errors.column("error_detail").to_pylist()[3] == "missing: idempotency_key"
    # accountability: every RAW row is a Standardized row or a parse error, once
    assert result.rows.num_rows + errors.num_rows == raw.num_rows
    # keys of failed rows do not add columns
    assert result.columns == ["ok"]


def test_custom_metadata_mapping_and_required_fields():
    schema = StandardizedSchema(
        metadata={
            "_metadata_idempotencykeyresource": "idempotency_key",
            "_metadata_tenant": "tenant_id",
        },
        required_metadata=["idempotency_key", "tenant_id"],
    )
    raw = raw_rows(
        [
            '{"v": 1, "_metadata": {"idempotencyKeyResource": "k", "tenant": "t1"}}',
            '{"v": 2, "_metadata": {}}',
            '{"v": 3, "tenant_id": "spoof", "_metadata": {"idempotencyKeyResource": "k3"}}',
        ]
    )
    result = flatten_raw(raw, schema)
    assert result.rows.column_names[:3] == ["message_id", "idempotency_key", "tenant_id"]
    assert result.rows.select(["idempotency_key", "tenant_id", "v"]).to_pylist() == [
        {"idempotency_key": "k", "tenant_id": "t1", "v": "1"},
    ]
    assert result.errors.select(["message_id", "error_reason", "error_detail"]).to_pylist() == [
        {
            "message_id": "m1",
            "error_reason": "missing_required_metadata:idempotency_key",
            "error_detail": "missing: idempotency_key, tenant_id",
        },
        {
            "message_id": "m2",
            "error_reason": "missing_required_metadata:tenant_id",
            "error_detail": "missing: tenant_id",
        },
    ]


def test_many_shapes_and_empty_input():
    payloads = [
        body(f"k{i}", **{f"key{i % 40}": str(i)}, nested={f"n{i % 3}": i}) for i in range(200)
    ]
    result = flatten_raw(raw_rows(payloads), SCHEMA)
    assert result.rows.num_rows == 200
    rows = result.rows.to_pylist()
    for i, row in enumerate(rows):
        assert row[f"key{i % 40}"] == str(i)
        assert row[f"nested_n{i % 3}"] == str(i)
    empty = flatten_raw(raw_rows([]), SCHEMA)
    assert empty.rows.num_rows == 0 and empty.errors.num_rows == 0


def test_parallel_workers_give_the_identical_result():
    payloads = [
        body(
            f"k{i}",
            **{f"key{i % 7}": i, "userId": "a", "userid": "b"}
            if i % 5 == 0
            else {f"key{i % 7}": i / 4},
            nested={"x": [i, 0.5]},
        )
        for i in range(300)
    ]
    payloads[10] = "not json"
    raw = raw_rows(payloads)
    serial = flatten_raw(raw, SCHEMA)
    parallel = flatten_increment(raw, SCHEMA, snapshot_column="raw_snapshot_id", workers=2)
    assert parallel.rows.equals(serial.rows)
    assert parallel.errors.equals(serial.errors)
    assert parallel.columns == serial.columns
    assert parallel.sanitised == serial.sanitised
