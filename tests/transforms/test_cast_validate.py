"""Casts of every type, CDE / rule errors, warnings, defaults, strictness and counts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from leanops_dagster.schemas.cast import cast_column, cast_literal
from leanops_dagster.schemas.models import CuratedSchema
from leanops_dagster.transforms.validate import validate_and_cast
from tests.transforms.conftest import TS, at, std_rows

UTC = dt.UTC


def cast(values, spec):
    result = cast_column(pa.array(values, pa.string()), spec)
    return result.values.to_pylist(), result.failed.to_pylist()


@pytest.mark.parametrize(
    ("spec", "values", "typed", "failed"),
    [
        ("int", ["1", "-2", "2147483647", "2147483648", "1.0", "0x1", " 1", None],
         [1, -2, 2147483647, None, None, None, None, None],
         [False, False, False, True, True, True, True, False]),
        ("long", ["9223372036854775807", "9223372036854775808", "-5"],
         [9223372036854775807, None, -5], [False, True, False]),
        ("double", ["1.5", "-2e-3", "0.5", ".5", "NaN", "Infinity", "1e400", "abc"],
         [1.5, -0.002, 0.5, None, None, None, None, None],
         [False, False, False, True, True, True, True, True]),
        ("decimal(6,2)", ["12.3", "12.340", "0012.5", "-0.01", "12.345", "12345.6", "1e2"],
         [Decimal("12.30"), Decimal("12.34"), Decimal("12.50"), Decimal("-0.01"), None, None,
          None],
         [False, False, False, False, True, True, True]),
        ("decimal(2,2)", ["0.5", "-0.12", "1.5"], [Decimal("0.50"), Decimal("-0.12"), None],
         [False, False, True]),
        ("boolean", ["true", "FALSE", "1", "0", "yes"], [True, False, True, False, None],
         [False, False, False, False, True]),
        ("date", ["2026-01-19", "2026-02-30", "2026/01/19", "2026-01-19T00:00:00Z"],
         [dt.date(2026, 1, 19), None, None, None], [False, True, True, True]),
        ("string", ["x", "", None], ["x", "", None], [False, False, False]),
    ],
)
def test_casts(spec, values, typed, failed):
    assert cast(values, spec) == (typed, failed)


def test_timestamp_casts_with_time_zones_and_epoch_millis():
    typed, failed = cast(
        [
            "2026-01-19T10:00:00.123+01:00",
            "2026-01-19T10:00:00Z",
            "2026-01-19 10:00:00.1234567Z",
            "2026-01-19T10:00:00",
            "2026-01-19T10:00-0530",
            "1768816800123",
            "2026-02-30T00:00:00Z",
            "2026-01-19",
            "yesterday",
        ],
        "timestamp",
    )
    assert typed == [
        dt.datetime(2026, 1, 19, 9, 0, 0, 123000, tzinfo=UTC),
        dt.datetime(2026, 1, 19, 10, 0, tzinfo=UTC),
        dt.datetime(2026, 1, 19, 10, 0, 0, 123456, tzinfo=UTC),
        dt.datetime(2026, 1, 19, 10, 0, tzinfo=UTC),
        dt.datetime(2026, 1, 19, 15, 30, tzinfo=UTC),
        dt.datetime(2026, 1, 19, 10, 0, 0, 123000, tzinfo=UTC),
        None, None, None,
    ]
    assert failed == [False] * 6 + [True] * 3


def test_bad_values_among_many_are_isolated():
    values = [str(i) for i in range(1000)]
    values[17] = "99999999999"  # int32 overflow: passes the grammar, fails the cast
    values[900] = "x"
    typed, failed = cast(values, "int")
    assert [i for i, f in enumerate(failed) if f] == [17, 900]
    assert typed[18] == 18 and typed[17] is None


def test_cast_literal():
    assert cast_literal(5, "decimal(4,1)").as_py() == Decimal("5.0")
    assert cast_literal(True, "boolean").as_py() is True
    with pytest.raises(ValueError, match="not a valid int"):
        cast_literal("x", "int")


SCHEMA = CuratedSchema.model_validate({
    "columns": [
        {"name": "user_id", "source": "event_userid", "type": "string", "cde": True,
         "rules": {"regex": "^u[0-9]+$"}},
        {"name": "amount", "type": "decimal(8,2)", "cde": True, "rules": {"min": 0, "max": 1000}},
        {"name": "kind", "type": "string", "rules": {"allowed": ["a", "b"]}},
        {"name": "count", "type": "int", "default": 0},
        {"name": "ok", "type": "boolean"},
        {"name": "label", "type": "string", "rules": {"min_length": 2, "max_length": 3}},
    ],
})


def test_valid_rows_are_typed_and_metadata_first():
    rows = std_rows({"event_userid": ["u1"], "amount": ["12.5"], "kind": ["a"], "count": ["7"],
                     "ok": ["true"], "label": ["abc"], "extra_key": ["drift!"]})
    result = validate_and_cast(rows, SCHEMA)
    expected = pa.table({
        "message_id": ["m0"], "idempotency_key": ["k0"], "topic_name": ["events"],
        "publish_time": pa.array([at(0)], TS), "ingestion_ts": pa.array([at(100)], TS),
        "standardized_snapshot_id": pa.array([3], pa.int64()),
        "user_id": ["u1"], "amount": pa.array([Decimal("12.50")], pa.decimal128(8, 2)),
        "kind": ["a"], "count": pa.array([7], pa.int32()), "ok": [True], "label": ["abc"],
    })
    assert result.valid.equals(expected)
    assert result.errors.num_rows == 0 and result.failed_rows == 0
    assert result.drift_columns == ["extra_key"]


def test_cde_errors_exclude_rows_and_count_each_row_once():
    rows = std_rows({
        "event_userid": ["u1", None, "bad", "u4", "u5"],
        "amount": ["1.00", "2", "-5", "x", "5000"],
        "kind": ["a", "a", "a", "a", "a"],
    })
    result = validate_and_cast(rows, SCHEMA)
    assert result.valid.column("message_id").to_pylist() == ["m0"]
    assert result.errors.select(
        ["message_id", "idempotency_key", "column_name", "rule", "offending_value"]
    ).to_pylist() == [
        {"message_id": "m1", "idempotency_key": "k1", "column_name": "user_id",
         "rule": "not_null", "offending_value": None},
        {"message_id": "m2", "idempotency_key": "k2", "column_name": "user_id",
         "rule": "regex", "offending_value": "bad"},
        {"message_id": "m2", "idempotency_key": "k2", "column_name": "amount",
         "rule": "min", "offending_value": "-5"},
        {"message_id": "m3", "idempotency_key": "k3", "column_name": "amount",
         "rule": "type_cast", "offending_value": "x"},
        {"message_id": "m4", "idempotency_key": "k4", "column_name": "amount",
         "rule": "max", "offending_value": "5000"},
    ]
    assert result.error_count == 5
    assert result.failed_rows == 4  # m2 has two errors, counted once
    assert result.rows_in == rows.num_rows
    assert result.errors.column_names == [
        "message_id", "idempotency_key", "topic_name", "column_name", "rule", "offending_value",
        "error_detail", "publish_time", "standardized_snapshot_id",
    ]
    assert result.errors.column("error_detail").to_pylist()[3] == "not a valid decimal(8,2)"
    assert result.errors.column("standardized_snapshot_id").to_pylist() == [3] * 5


def test_non_cde_failures_are_warnings_nulled_then_defaulted():
    rows = std_rows({
        "event_userid": ["u1", "u2", "u3"],
        "amount": ["1", "2", "3"],
        "kind": ["a", "zzz", None],
        "count": ["1", "many", None],
        "ok": ["maybe", "false", None],
        "label": ["x", "abcd", "ab"],
    })
    result = validate_and_cast(rows, SCHEMA)
    assert result.failed_rows == 0 and result.errors.num_rows == 0
    assert result.valid.select(["kind", "count", "ok", "label"]).to_pylist() == [
        {"kind": "a", "count": 1, "ok": None, "label": None},
        {"kind": None, "count": 0, "ok": False, "label": None},
        {"kind": None, "count": 0, "ok": None, "label": "ab"},
    ]
    assert result.warnings.select(["message_id", "column_name", "rule"]).to_pylist() == [
        {"message_id": "m0", "column_name": "ok", "rule": "type_cast"},
        {"message_id": "m0", "column_name": "label", "rule": "min_length"},
        {"message_id": "m1", "column_name": "kind", "rule": "allowed"},
        {"message_id": "m1", "column_name": "count", "rule": "type_cast"},
        {"message_id": "m1", "column_name": "label", "rule": "max_length"},
    ]
    assert result.defaults_applied == {"count": 2}


def test_missing_source_column_and_null_idempotency_key():
    rows = std_rows({"event_userid": ["u1", "u2"]})
    rows = rows.set_column(1, "idempotency_key", pa.array(["k0", None]))
    result = validate_and_cast(rows, SCHEMA)
    assert result.valid.num_rows == 0
    assert result.errors.select(["message_id", "column_name", "rule"]).to_pylist() == [
        {"message_id": "m0", "column_name": "amount", "rule": "not_null"},
        {"message_id": "m1", "column_name": "idempotency_key", "rule": "not_null"},
        {"message_id": "m1", "column_name": "amount", "rule": "not_null"},
    ]
    assert result.failed_rows == 2


def test_empty_increment():
    rows = std_rows({"event_userid": ["u"]})
    result = validate_and_cast(rows.slice(0, 0), SCHEMA)
    assert result.valid.num_rows == 0 and result.errors.num_rows == 0
    assert result.valid.schema.field("amount").type == pa.decimal128(8, 2)
