"""Property tests: the casts and rules are total and do exactly what docs/schemas.md says.

Each type has an *oracle* written from the accepted-text table of docs/schemas.md with
Python's own parsers (``int``, ``float``, ``Decimal``, calendar arithmetic), independent of the
Arrow implementation. For arbitrary text (any Unicode, and texts built near each grammar and
each bound) ``cast_column`` must give exactly the oracle's value, or fail where the oracle
rejects; ``validate_and_cast`` must never raise and must account for every row.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Context, Decimal

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given
from hypothesis import strategies as st

from leanops_dagster.schemas.cast import CastResult, cast_column
from leanops_dagster.schemas.models import CuratedSchema
from leanops_dagster.transforms.validate import RULE_ORDER, validate_and_cast
from tests.transforms.conftest import BOUNDED, std_rows

REJECT = object()
# the documented ranges, computed here rather than imported (an oracle of its own)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MIN_TIMESTAMP_US = (dt.datetime(1, 1, 1, tzinfo=dt.UTC) - EPOCH) // dt.timedelta(microseconds=1)
MAX_TIMESTAMP_US = (dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC) - EPOCH
                    ) // dt.timedelta(microseconds=1)
MIN_DATE_DAYS = (dt.date(1, 1, 1) - EPOCH.date()).days
MAX_DATE_DAYS = (dt.date(9999, 12, 31) - EPOCH.date()).days
WIDE = Context(prec=200)  # Decimal's default 28 digits would round a 38-digit value

# --- oracles: docs/schemas.md "Accepted text per type" -----------------------------------


def _integer(bits: int):
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def oracle(text: str):
        if not re.fullmatch(r"-?[0-9]+", text):
            return REJECT
        value = int(text)
        return value if low <= value <= high else REJECT

    return oracle


def double_oracle(text: str):
    if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?", text):
        return REJECT
    value = float(text)
    mantissa = re.split("[eE]", text)[0]
    if math.isinf(value) or (value == 0 and re.search("[1-9]", mantissa)):
        return REJECT  # overflow / underflow of a non-zero number
    return value


def _decimal(precision: int, scale: int):
    def oracle(text: str):
        if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text):
            return REJECT
        integer, _, fraction = text.lstrip("-").partition(".")
        if len(integer.lstrip("0")) > precision - scale or len(fraction.rstrip("0")) > scale:
            return REJECT
        return Decimal(text).quantize(Decimal(1).scaleb(-scale), context=WIDE)

    return oracle


def boolean_oracle(text: str):
    if text.isascii() and text.lower() in ("true", "1"):
        return True
    if text.isascii() and text.lower() in ("false", "0"):
        return False
    return REJECT


def date_oracle(text: str):
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        return REJECT
    try:
        return dt.date.fromisoformat(text)  # years 1..9999 only: the documented range
    except ValueError:
        return REJECT


_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]+))?)?"
    r"(Z|z|([+-])([0-9]{2}):?([0-9]{2})?)?"
)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (year 0 included)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def _month_days(year: int, month: int) -> int:
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]


def timestamp_oracle(text: str):
    """Epoch microseconds (UTC) or REJECT."""
    if re.fullmatch(r"-?[0-9]{1,15}", text):
        micros = int(text) * 1000
    else:
        match = _ISO.fullmatch(text)
        if not match:
            return REJECT
        year, month, day, hour, minute = (int(match[k]) for k in range(1, 6))
        second = int(match[6] or 0)
        micro = int((match[7] or "")[:6].ljust(6, "0"))
        if not (1 <= month <= 12 and 1 <= day <= _month_days(year, month) and hour <= 23
                and minute <= 59 and second <= 59):
            return REJECT
        offset = 0
        if match[9]:
            off_h, off_m = int(match[10]), int(match[11] or 0)
            if off_h > 23 or off_m > 59:
                return REJECT
            offset = (1 if match[9] == "+" else -1) * (off_h * 60 + off_m) * 60
        seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60
        micros = (seconds + second - offset) * 1_000_000 + micro
    return micros if MIN_TIMESTAMP_US <= micros <= MAX_TIMESTAMP_US else REJECT


ORACLES = {
    "int": _integer(32),
    "long": _integer(64),
    "double": double_oracle,
    "decimal(2,2)": _decimal(2, 2),
    "decimal(6,2)": _decimal(6, 2),
    "decimal(38,0)": _decimal(38, 0),
    "decimal(38,10)": _decimal(38, 10),
    "boolean": boolean_oracle,
    "date": date_oracle,
    "timestamp": timestamp_oracle,
    "string": lambda text: text,
}


def typed_values(array: pa.Array) -> list:
    """Typed values as the oracles give them (timestamps as epoch microseconds: a value out
    of Python's range must not break the comparison itself)."""
    if pa.types.is_timestamp(array.type):
        return array.cast(pa.int64()).to_pylist()
    return array.to_pylist()


# --- texts: anything, and texts near every grammar and bound ----------------------------

digits = st.text("0123456789", min_size=1, max_size=45)
sign = st.sampled_from(["", "-", "+", " "])
numbers = st.builds(
    lambda s, i, f, e: s + i + f + e, sign, digits | st.just(""),
    st.one_of(st.just(""), st.just("."), digits.map("." .__add__)),
    st.one_of(st.just(""), st.builds(lambda m, d: m + d, st.sampled_from(["e", "E", "e+",
                                     "e-", "E-"]), st.text("0123456789", max_size=4))),
)
near_bounds = st.one_of(
    st.sampled_from([2**31, 2**63, 10**38, 10**36]).flatmap(
        lambda b: st.integers(-b - 3, -b + 3) | st.integers(b - 3, b + 3)).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e308", "1.7976931348623157e308", "1.8e308", "5e-324", "2e-324",
                     "1e-400", "0e-400", "0.0e99999", "1e99999999999999999999"]),
    st.integers(MIN_TIMESTAMP_US // 1000 - 3, MIN_TIMESTAMP_US // 1000 + 3).map(str),
    st.integers(MAX_TIMESTAMP_US // 1000 - 3, MAX_TIMESTAMP_US // 1000 + 3).map(str),
    st.integers(-(10**15), 10**15).map(str),
)
two = st.integers(0, 99).map("{:02d}".format)
iso_texts = st.builds(
    lambda y, mo, d, sep, h, mi, sec, off: f"{y:04d}-{mo}-{d}{sep}{h}:{mi}{sec}{off}",
    st.sampled_from([0, 1, 2, 1969, 1970, 2024, 2026, 9999]) | st.integers(0, 9999),
    st.integers(0, 13).map("{:02d}".format), st.integers(0, 32).map("{:02d}".format),
    st.sampled_from(["T", " ", "t", "_"]), st.integers(0, 25).map("{:02d}".format),
    st.integers(0, 61).map("{:02d}".format),
    st.one_of(st.just(""), two.map(":".__add__),
              st.builds(lambda s, f: f":{s}.{f}", two, digits)),
    st.one_of(st.sampled_from(["", "Z", "z", "+00:00", "-00:00", "UTC", "+", "+1"]),
              st.builds(lambda s, h, m, c: f"{s}{h}{c}{m}", st.sampled_from("+-"), two, two,
                        st.sampled_from([":", ""])),
              st.builds(lambda s, h: f"{s}{h}", st.sampled_from("+-"), two)),
)
date_texts = st.builds(lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d}", st.integers(0, 9999),
                       st.integers(0, 13), st.integers(0, 32))
words = st.sampled_from(["true", "false", "TRUE", "False", "1", "0", "yes", "tru", "",
                         " true", "falſe", "TRUE\n", "NaN", "Infinity", "-0", "00", "0x1"])
small_decimals = st.one_of(
    st.decimals(min_value=-10, max_value=10, places=3).map(str),
    st.builds(lambda s, z, f, t: f"{s}{z}.{f}{t}", st.sampled_from(["", "-"]),
              st.sampled_from(["0", "00", "", "1"]), st.text("0123456789", min_size=1,
                                                                max_size=3),
              st.sampled_from(["", "0", "000"])),
)
texts = st.one_of(st.text(max_size=40), numbers, near_bounds, iso_texts, date_texts, words,
                  small_decimals)
columns_of_text = st.lists(st.one_of(st.none(), texts), max_size=25)


def _check_against_oracle(values: list, spec: str) -> None:
    result = cast_column(pa.array(values, pa.string()), spec)
    typed, failed = typed_values(result.values), result.failed.to_pylist()
    assert len(typed) == len(failed) == len(values)
    for text, value, fail in zip(values, typed, failed, strict=True):
        if text is None:
            assert (value, fail) == (None, False)
            continue
        expected = ORACLES[spec](text)
        if expected is REJECT:
            assert (value, fail) == (None, True), (spec, text, value)
        else:
            assert not fail and value == expected, (spec, text, value, expected)
            if spec == "double":  # -0 keeps its sign, like float()
                assert math.copysign(1, value) == math.copysign(1, expected)


@BOUNDED
@given(values=columns_of_text)
def test_property_every_text_gives_the_documented_value_or_fails(values):
    for spec in ORACLES:  # every type reads the same texts
        _check_against_oracle(values, spec)


@BOUNDED
@given(values=st.lists(st.one_of(st.none(), st.binary(max_size=12), texts.map(str.encode)),
                       max_size=20))
def test_property_bytes_that_are_not_utf8_fail_and_are_shown_escaped(values):
    """Arbitrary bytes in a STRING array (as a Parquet file could hold them)."""
    array = pa.array(values, pa.binary()).view(pa.string())
    for spec in ORACLES:
        _check_bytes(values, cast_column(array, spec), spec)


def _check_bytes(values: list, result: CastResult, spec: str) -> None:
    shown = result.text.to_pylist()  # a Python str for every value: valid UTF-8
    for raw, value, fail, text in zip(values, result.values.to_pylist(),
                                      result.failed.to_pylist(), shown, strict=True):
        if raw is None:
            assert (value, fail, text) == (None, False, None)
            continue
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError:
            assert (value, fail) == (None, True)
            assert text == raw.decode("utf-8", "backslashreplace")
            continue
        assert text == decoded
        assert fail == (ORACLES[spec](decoded) is REJECT)


SCHEMA = CuratedSchema.model_validate({
    "columns": [
        {"name": "ts", "type": "timestamp", "cde": True},
        {"name": "day", "type": "date", "rules": {"min": "2000-01-01"}},
        {"name": "n", "type": "int", "cde": True, "rules": {"min": -5, "max": 1000}},
        {"name": "big", "type": "long", "default": 0},
        {"name": "x", "type": "double", "rules": {"max": 1e300}},
        {"name": "amount", "type": "decimal(6,2)", "cde": True, "rules": {"min": 0}},
        {"name": "share", "type": "decimal(2,2)", "rules": {"allowed": [0.5, 0.25]}},
        {"name": "ok", "type": "boolean", "default": False},
        {"name": "label", "type": "string", "cde": True,
         "rules": {"regex": "^[a-z]", "min_length": 1, "max_length": 8}},
        {"name": "note", "type": "string", "pii": True},
    ],
})
SOURCE_OF = {column.name: column.source_column for column in SCHEMA.columns}
SOURCES = list(SOURCE_OF.values())


def shown(value: str | bytes | None) -> str | None:
    """The text an error row shows for a value (bytes that are not UTF-8 as escapes)."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


def as_string_array(values: list) -> pa.Array:
    """A STRING array holding these texts and raw bytes as they are."""
    raw = [v.encode() if isinstance(v, str) else v for v in values]
    return pa.array(raw, pa.binary()).view(pa.string())


@BOUNDED
@given(data=st.data(), n=st.integers(0, 12))
def test_property_validate_never_raises_and_accounts_for_every_row(data, n):
    """Values are text or, now and then, arbitrary bytes (possibly not UTF-8)."""
    cell = st.one_of(st.none(), texts, texts, texts, st.binary(max_size=6))
    drawn = {name: data.draw(st.lists(cell, min_size=n, max_size=n)) for name in SOURCES}
    raw_keys = data.draw(st.lists(st.one_of(st.none(), st.text(max_size=5),
                                            st.binary(max_size=3)), min_size=n, max_size=n))
    columns = {name: [shown(v) for v in values] for name, values in drawn.items()}
    keys = [shown(v) for v in raw_keys]
    rows = std_rows(columns, n=n)
    for name, values in (("idempotency_key", raw_keys), *drawn.items()):
        rows = rows.set_column(rows.column_names.index(name), name, as_string_array(values))
    result = validate_and_cast(rows, SCHEMA, topic="events")
    result.errors.validate(full=True)  # what is recorded is storable text
    result.warnings.validate(full=True)

    assert result.valid.num_rows + result.failed_rows == n
    for table in (result.errors, result.warnings):
        assert set(table.column("rule").to_pylist()) <= set(RULE_ORDER)
    failed_ids = set(result.errors.column("message_id").to_pylist())
    assert len(failed_ids) == result.failed_rows
    valid = result.valid.to_pylist()
    assert not failed_ids & {row["message_id"] for row in valid}
    by_id = {f"m{i}": i for i in range(n)}
    for error in result.errors.to_pylist() + result.warnings.to_pylist():
        i = by_id[error["message_id"]]
        name = error["column_name"]
        text = keys[i] if name == "idempotency_key" else columns[SOURCE_OF[name]][i]
        assert error["offending_value"] == text
    for row in valid:  # what was kept is within its type's bounds and obeys the CDE rules
        i = by_id[row["message_id"]]
        assert row["idempotency_key"] == keys[i] is not None
        assert row["ts"] is not None and row["n"] is not None and row["amount"] is not None
        assert -5 <= row["n"] <= 1000 and row["amount"] >= 0
        assert 1 <= len(row["label"]) <= 8 and "a" <= row["label"][0] <= "z"
        assert row["big"] is not None and row["ok"] is not None  # defaults
        if row["day"] is not None:
            assert row["day"] >= dt.date(2000, 1, 1)
        if row["share"] is not None:
            assert row["share"] in (Decimal("0.50"), Decimal("0.25"))
    ts = result.valid.column("ts").cast(pa.int64())
    if len(ts):
        assert pc.min(ts).as_py() >= MIN_TIMESTAMP_US and pc.max(ts).as_py() <= MAX_TIMESTAMP_US
    days = result.valid.column("day").cast(pa.int32()).drop_null()
    if len(days):
        assert pc.min(days).as_py() >= MIN_DATE_DAYS and pc.max(days).as_py() <= MAX_DATE_DAYS
