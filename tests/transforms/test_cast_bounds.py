"""Every type at and one past its bounds, the grammar decisions of docs/schemas.md, hostile
Unicode, and the instants that used to stop a topic (issue 8) as type_cast error rows."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from leanops_dagster.schemas.cast import cast_column
from leanops_dagster.schemas.models import CuratedSchema
from leanops_dagster.transforms.validate import validate_and_cast
from tests.transforms.conftest import std_rows

UTC = dt.UTC


def cast(values, spec):
    result = cast_column(pa.array(values, pa.string()), spec)
    typed = result.values
    if pa.types.is_timestamp(typed.type):  # out-of-range values must not break the test
        typed = typed.cast(pa.int64())
    return typed.to_pylist(), result.failed.to_pylist()


def accepted(values, spec):
    typed, failed = cast(values, spec)
    assert not any(failed), [v for v, f in zip(values, failed, strict=True) if f]
    return typed


def rejected(values, spec):
    typed, failed = cast(values, spec)
    assert all(failed), [v for v, f in zip(values, failed, strict=True) if not f]
    assert typed == [None] * len(values)


# --- the instants of issue 8: valid ISO-8601 text, outside what Iceberg/Parquet stores ------

POISON_INSTANTS = [
    "9999-12-31T23:59:59-01:00",  # UTC: 10000-01-01T00:59:59Z
    "253402300800000",  # epoch millis of 10000-01-01T00:00:00Z
    "0001-01-01T00:30:00+01:00",  # UTC: 0000-12-31T23:30:00Z
]


def test_the_three_instants_are_type_cast_error_rows_with_their_value():
    schema = CuratedSchema.model_validate(
        {"columns": [{"name": "event_timestamp", "type": "timestamp", "cde": True}]}
    )
    rows = std_rows({"event_timestamp": ["2026-01-19T10:00:00Z", *POISON_INSTANTS]})
    result = validate_and_cast(rows, schema, topic="events")
    assert result.valid.column("message_id").to_pylist() == ["m0"]
    assert result.valid.column("event_timestamp").to_pylist() == [
        dt.datetime(2026, 1, 19, 10, tzinfo=UTC)
    ]
    assert result.errors.select(
        ["message_id", "column_name", "rule", "offending_value", "error_detail"]
    ).to_pylist() == [
        {"message_id": f"m{i + 1}", "column_name": "event_timestamp", "rule": "type_cast",
         "offending_value": text, "error_detail": "not a valid timestamp"}
        for i, text in enumerate(POISON_INSTANTS)
    ]
    assert result.failed_rows == 3


def test_a_non_cde_out_of_range_instant_is_a_warning_and_null():
    schema = CuratedSchema.model_validate(
        {"columns": [{"name": "seen", "type": "timestamp"}, {"name": "day", "type": "date",
                                                           "default": "2026-01-01"}]}
    )
    rows = std_rows({"seen": POISON_INSTANTS, "day": ["0000-12-31", "9999-12-31", None]})
    result = validate_and_cast(rows, schema)
    assert result.valid.column("seen").to_pylist() == [None, None, None]
    assert result.valid.column("day").to_pylist() == [
        dt.date(2026, 1, 1), dt.date(9999, 12, 31), dt.date(2026, 1, 1)
    ]
    assert [(w["column_name"], w["rule"], w["offending_value"])
            for w in result.warnings.to_pylist()] == [
        ("seen", "type_cast", POISON_INSTANTS[0]),
        ("day", "type_cast", "0000-12-31"),
        ("seen", "type_cast", POISON_INSTANTS[1]),
        ("seen", "type_cast", POISON_INSTANTS[2]),
    ]


# --- bounds: at the bound (accepted) and one past (rejected) --------------------------------

MIN_US, MAX_US = -62_135_596_800_000_000, 253_402_300_799_999_999


@pytest.mark.parametrize(
    ("spec", "at_bounds", "typed", "one_past"),
    [
        ("int", ["-2147483648", "2147483647", "-0", "000002147483647"],
         [-(2**31), 2**31 - 1, 0, 2**31 - 1], ["-2147483649", "2147483648", "1" + "0" * 40]),
        ("long", ["-9223372036854775808", "9223372036854775807"], [-(2**63), 2**63 - 1],
         ["-9223372036854775809", "9223372036854775808"]),
        ("decimal(38,0)", ["9" * 38, "-" + "9" * 38, "0" * 60 + "1"],
         [Decimal("9" * 38), Decimal("-" + "9" * 38), Decimal(1)], ["1" + "0" * 38]),
        ("decimal(38,2)", ["9" * 36 + ".99", "1." + "0" * 50, "0" * 10 + "9" * 36 + ".5000"],
         [Decimal("9" * 36 + ".99"), Decimal("1.00"), Decimal("9" * 36 + ".50")],
         ["1" + "0" * 36, "0.001", "9" * 36 + ".991"]),
        ("decimal(5,2)", ["999.99", "-999.99", "12.340", "0.1", "-0.00"],
         [Decimal("999.99"), Decimal("-999.99"), Decimal("12.34"), Decimal("0.10"),
          Decimal("0.00")], ["1000.00", "-1000", "0.005", "999.999"]),
        ("decimal(2,2)", ["0.99", "-0.99", "0", "00.12"],
         [Decimal("0.99"), Decimal("-0.99"), Decimal("0.00"), Decimal("0.12")],
         ["1.00", "0.999", "1"]),
        ("double", ["1.7976931348623157e308", "-1.7976931348623157e308", "5e-324", "0e-400",
                    "-0", "0.0000"],
         [1.7976931348623157e308, -1.7976931348623157e308, 5e-324, 0.0, -0.0, 0.0],
         ["1.8e308", "-1e309", "2e-324", "1e-400", "-1e-99999"]),
        ("timestamp", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z",
                       "-62135596800000", "253402300799999", "0000-12-31T23:00:00-01:00",
                       "9999-12-31T23:59:59.999999999+00:00"],
         [MIN_US, MAX_US, MIN_US, 253_402_300_799_999_000, MIN_US, MAX_US],
         ["0000-12-31T23:59:59.999999Z", "10000-01-01T00:00:00Z", "-62135596800001",
          "253402300800000", "0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01",
          "999999999999999", "-999999999999999", "1234567890123456"]),
        ("date", ["0001-01-01", "9999-12-31", "2024-02-29"],
         [dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(2024, 2, 29)],
         ["0000-12-31", "10000-01-01", "2023-02-29", "2026-13-01", "2026-00-10"]),
    ],
)
def test_bounds(spec, at_bounds, typed, one_past):
    assert accepted(at_bounds, spec) == typed
    rejected(one_past, spec)


# --- the grammar decisions (docs/schemas.md: tighten or document, case by case) ----------


def test_double_accepts_leading_zeros_like_int_and_decimal_but_not_a_bare_point():
    assert accepted(["01", "007.5", "-00e1", "1E5", "2e-3"], "double") == [
        1.0, 7.5, -0.0, 100000.0, 0.002
    ]
    rejected(["1.", ".5", "-.5", "+1", " 1", "1 ", "1e", "1e+", "0x10", "1_000", "١"],
             "double")


def test_decimal_needs_a_digit_before_the_point_at_every_precision():
    assert accepted(["0.12", "-0.12", "000.12"], "decimal(2,2)") == [
        Decimal("0.12"), Decimal("-0.12"), Decimal("0.12")
    ]
    rejected([".12", "-.12", "1.", "", "-", "0.1e1", "+0.1"], "decimal(2,2)")
    rejected([".5", "5.", "1e2"], "decimal(6,2)")


def test_timestamp_forms_documented_as_accepted():
    """A missing seconds field, a space for T, ±hhmm and ±hh offsets, lowercase z."""
    at = dt.datetime(2026, 1, 19, 10, 0, tzinfo=UTC)
    micros = int(at.timestamp()) * 1_000_000
    assert accepted(["2026-01-19T10:00", "2026-01-19 10:00:00", "2026-01-19T15:30+0530",
                     "2026-01-19T15:30+05:30", "2026-01-19T15:00+05", "2026-01-19T10:00z",
                     "2026-01-19T10:00:00.0000001Z"], "timestamp") == [micros] * 7
    rejected([" 2026-01-19T10:00:00Z", "2026-01-19T10:00:00Z ", "2026-01-19t10:00:00Z",
              "2026-01-19T10:00:00+24:00", "2026-01-19T10:00:00+05:60", "2026-01-19T24:00",
              "2026-01-19T10:60", "2026-01-19T10:00:60", "2026-01-19T10:00:00.Z",
              "2026-01-19T10", "2026-01-19", "20260119T100000Z", "2026-01-19T10:00:00 UTC",
              "+1768816800000", "1768816800000.0"], "timestamp")


# --- hostile Unicode ----------------------------------------------------------------------

EVERY_PLANE = [
    "\x00", "a\x00b", "\x7f", "\u00e9", "\uffff", "\ufeffbom",  # BMP, NUL, noncharacter
    "\U0001f680", "\U0002a6d6", "\U00030000", "\U000e0001", "\U000f0000", "\U0010fffd",
    "\u0645\u0631\u062d\u0628\u0627", "abc\u202edef\u202c", "\u200f\u05e9",  # RTL
    "e\u0301", "Z\u0351\u0334\u0336\u0338" * 5, "\u1100\u1161\u11a8",  # combining
]


def test_hostile_unicode_is_valid_text_kept_as_is_and_rules_count_code_points():
    schema = CuratedSchema.model_validate({"columns": [
        {"name": "s", "type": "string", "cde": True, "rules": {"max_length": 5}},
        {"name": "n", "type": "int"},
    ]})
    rows = std_rows({"s": EVERY_PLANE, "n": EVERY_PLANE})
    result = validate_and_cast(rows, schema)
    kept = [v for v in EVERY_PLANE if len(v) <= 5]
    assert result.valid.column("s").to_pylist() == kept
    assert result.valid.column("n").to_pylist() == [None] * len(kept)
    errors = result.errors.to_pylist()
    assert [(e["rule"], e["offending_value"]) for e in errors] == [
        ("max_length", v) for v in EVERY_PLANE if len(v) > 5
    ]
    assert set(result.warnings.column("rule").to_pylist()) == {"type_cast"}


NOT_UTF8 = [
    b"\xed\xa0\x80",  # a lone high surrogate (U+D800 as CESU-8 / WTF-8)
    b"ok\xed\xb0\x80",  # a lone low surrogate
    b"\xff", b"\xf0\x9f\x9a", b"\xc0\xaf",  # stray byte, truncated, overlong "/"
]


@pytest.mark.parametrize("spec", ["string", "int", "timestamp", "decimal(5,2)"])
def test_bytes_that_are_not_utf8_are_type_cast_errors_shown_escaped(spec):
    schema = CuratedSchema.model_validate(
        {"columns": [{"name": "v", "type": spec, "cde": True}]}
    )
    good = {"string": b"fine", "int": b"7", "timestamp": b"2026-01-19T10:00:00Z",
            "decimal(5,2)": b"1.50"}[spec]
    raw = pa.array([good, *NOT_UTF8], pa.binary()).view(pa.string())
    rows = std_rows({"v": ["x"] * len(raw)}).set_column(6, "v", raw)
    result = validate_and_cast(rows, schema)
    assert result.valid.column("message_id").to_pylist() == ["m0"]
    assert [(e["rule"], e["offending_value"]) for e in result.errors.to_pylist()] == [
        ("type_cast", b.decode("utf-8", "backslashreplace")) for b in NOT_UTF8
    ]
    assert result.errors.column("offending_value").to_pylist()[0] == "\\xed\\xa0\\x80"
    result.errors.validate(full=True)  # storable


def test_an_idempotency_key_that_is_not_utf8_is_an_error_row_not_a_crash():
    schema = CuratedSchema.model_validate({"columns": [{"name": "v", "type": "string"}]})
    rows = std_rows({"v": ["a", "b"]})
    keys = pa.array([b"k0", b"k\xff"], pa.binary()).view(pa.string())
    result = validate_and_cast(rows.set_column(1, "idempotency_key", keys), schema)
    assert result.valid.column("idempotency_key").to_pylist() == ["k0"]
    assert result.errors.select(["column_name", "rule", "offending_value"]).to_pylist() == [
        {"column_name": "idempotency_key", "rule": "type_cast", "offending_value": "k\\xff"}
    ]
    result.errors.validate(full=True)


def test_publish_time_is_the_lambdas_rule_not_this_table():
    """docs/schemas.md: RAW's publish_time comes from the Lambda's own, more lenient rule
    (surrounding whitespace stripped, an offset required); a Curated timestamp column takes
    the table (no whitespace, no offset = UTC)."""
    from ingestion_lambdas.common.raw_record import parse_publish_time

    at = dt.datetime(2026, 1, 19, 10, tzinfo=UTC)
    padded, naive = " 2026-01-19T10:00:00Z\n", "2026-01-19T10:00:00"
    assert parse_publish_time(padded) == at
    rejected([padded], "timestamp")
    assert parse_publish_time(naive) is None
    assert accepted([naive], "timestamp") == [int(at.timestamp()) * 1_000_000]


@pytest.mark.parametrize(
    ("spec", "bad"),
    [("int", "99999999999"), ("long", "-9223372036854775809"), ("date", "2026-02-30"),
     ("timestamp", "2026-02-30T00:00:00Z"), ("timestamp", "2026-01-19T10:00:00+24:00"),
     ("timestamp", "2026-01-19T23:60Z")],
)
def test_a_column_of_bad_values_is_screened_not_cast_value_by_value(spec, bad, monkeypatch):
    """Values the grammar admits but Arrow refuses (a counter past int32 in every message)
    are found by a vectorised screen: a few casts, not one per value."""
    from leanops_dagster.schemas import cast as cast_module

    calls = []
    split = cast_module._split_cast

    def counted(values, target):
        calls.append(len(values))
        return split(values, target)

    monkeypatch.setattr(cast_module, "_split_cast", counted)
    values = [bad] * 5000
    values[7] = {"int": "7", "long": "7", "date": "2026-02-28"}.get(spec, "2026-01-19T10:00Z")
    typed, failed = cast(values, spec)
    assert failed == [i != 7 for i in range(5000)]
    assert typed[7] is not None
    assert len(calls) <= 2
