"""Standardized STRING values -> Curated types, vectorised, with a per-value failure mask.

Total: every input text gives a typed value or a failure (a ``type_cast`` error row), never
an exception and never a value Iceberg/Parquet cannot store. Accepted text per type (anything
else fails; nothing is rounded but a double to its nearest value; no surrounding whitespace):

=============  ============================================================================
int, long      ``-?[0-9]+`` (leading zeros allowed: ``007``, ``-0``; no ``+``) within the type's
               range, bounds inclusive (int: -2**31 .. 2**31-1, long: -2**63 .. 2**63-1)
double         ``-?[0-9]+(\\.[0-9]+)?([eE][+-]?[0-9]+)?`` (leading zeros allowed; ``.5`` and
               ``1.`` are not numbers); the nearest double; rejected when it overflows to
               ±infinity or a non-zero text underflows to 0 (``1e-400``)
decimal(p,s)   ``-?[0-9]+(\\.[0-9]+)?`` (no exponent; ``.12`` and ``1.`` rejected); leading
               zeros and trailing fractional zeros do not count: at most ``p-s`` integer digits
               (``0`` when p = s) and at most ``s`` fractional digits (``12.340`` fits
               ``decimal(10,2)``, ``12.345`` does not)
boolean        ``true``/``false`` (any case), ``1``/``0``
timestamp      ``YYYY-MM-DD(T| )hh:mm(:ss(.f+)?)?`` then optionally ``Z``/``z`` or ``±hh``,
               ``±hhmm``, ``±hh:mm`` (offset hours 00-23, minutes 00-59; none = UTC; digits
               after microseconds truncated), or epoch milliseconds ``-?[0-9]{1,15}``; the
               instant in UTC must lie in 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z
               (what Iceberg/Parquet readers can hold); stored as UTC microseconds (timestamptz)
date           ``YYYY-MM-DD``, a real calendar date in 0001-01-01 .. 9999-12-31
string         any value that is valid UTF-8 (NUL and every plane included)
=============  ============================================================================

The common case is one regex pass and one Arrow cast per column. When the cast refuses a value
the grammar admits (``2026-02-30``, an int32 overflow), a vectorised screen (digits against the
bound, calendar fields) removes such values and the cast runs again; anything the screen did
not foresee is isolated by casting halves (O(k log n) casts for k values). Range checks are
Arrow compute comparisons on the typed column. No per-row Python except to show the few values
that are not UTF-8.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from leanops_dagster.schemas.text import invalid_utf8, readable_text
from leanops_dagster.schemas.types import arrow_type, parse_type

_INTEGER = r"^-?[0-9]+$"
_DOUBLE = r"^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$"
#: a double text whose digits are all zeros (its value is 0 however it is written)
_ZERO_DOUBLE = r"^-?[0]+(\.0+)?([eE]|$)"
_BOOLEAN = r"^(?i)(true|false|1|0)$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_ISO = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
    r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)?$"
)
_HAS_OFFSET = r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"
_EPOCH_MS = r"^-?[0-9]{1,15}$"
#: leading zeros of a decimal text (``-007.5`` -> ``-7.5``, ``00.5`` -> ``0.5``)
_LEADING_ZEROS = (r"^(-?)0+([0-9])", r"\1\2")
#: trailing zeros of its fraction (``12.340`` -> ``12.34``, ``1.000`` -> ``1``; ``1.`` stays)
_TRAILING_ZEROS = (r"^(-?[0-9]+)(?:\.0+|(\.[0-9]*[1-9])0*)$", r"\1\2")
_TS = pa.timestamp("us", tz="UTC")

#: what Iceberg/Parquet readers hold (Python, Java and Spark datetimes): years 1 to 9999 in UTC
MIN_TIMESTAMP_US = -62_135_596_800_000_000  # 0001-01-01T00:00:00Z
MAX_TIMESTAMP_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z
MIN_DATE_DAYS = -719_162  # 0001-01-01
MAX_DATE_DAYS = 2_932_896  # 9999-12-31


@dataclass(frozen=True)
class CastResult:
    """``values`` typed; ``failed`` is true where a non-null input could not be cast;
    ``text`` is the input as storable UTF-8 (the input itself unless a value was not valid
    UTF-8: that value is shown with ``\\xNN`` escapes), for rules and error rows."""

    values: pa.Array
    failed: pa.BooleanArray
    text: pa.Array

    @property
    def failure_count(self) -> int:
        return int(pc.sum(self.failed).as_py() or 0)


def cast_column(values: pa.Array | pa.ChunkedArray, spec: str) -> CastResult:
    """Cast a string column to the schema type ``spec``; failed values become null."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    invalid = invalid_utf8(values)
    text = values
    if invalid is not None:  # not text at all: a failure of every type, shown escaped
        text = readable_text(values, invalid)
        values = pc.if_else(invalid, pa.scalar(None, pa.string()), text)
    result = _cast_valid_text(values, spec)
    failed = result.failed if invalid is None else pc.or_(result.failed, invalid)
    return CastResult(result.values, failed, text)


def _cast_valid_text(values: pa.Array, spec: str) -> CastResult:
    kind, precision, scale = parse_type(spec)
    target = arrow_type(spec)
    if kind == "string":
        return CastResult(values, _false(len(values)), values)
    if kind == "timestamp":
        return _in_range(_cast_timestamp(values), MIN_TIMESTAMP_US, MAX_TIMESTAMP_US)
    if kind == "decimal":
        return _cast_decimal(values, precision, scale, target)  # type: ignore[arg-type]
    grammar = {
        "int": _INTEGER,
        "long": _INTEGER,
        "double": _DOUBLE,
        "boolean": _BOOLEAN,
        "date": _DATE,
    }[kind]
    screen = {"int": _integer_screen(32), "long": _integer_screen(64), "date": _calendar_ok}
    result = _finish(values, _matches(values, grammar), target, screen.get(kind))
    if kind == "date":
        return _in_range(result, MIN_DATE_DAYS, MAX_DATE_DAYS)
    if kind == "double":
        typed = result.values
        bad = pc.or_(pc.is_inf(typed), pc.is_nan(typed))
        zero = pc.equal(typed, 0.0)
        if pc.any(zero).as_py():  # underflow: non-zero digits that became 0
            underflow = pc.and_(zero, pc.invert(_matches(values, _ZERO_DOUBLE)))
            bad = pc.or_(bad, underflow)
        return _reject(result, pc.fill_null(bad, False))
    return result


def _cast_decimal(values: pa.Array, precision: int, scale: int, target: pa.DataType
                  ) -> CastResult:
    """Leading zeros and trailing fractional zeros are not counted by the grammar; Arrow's
    parser reads at most 38 digits, so a longer text that fits is cast without them."""
    integer_digits = precision - scale
    integer = rf"0*[0-9]{{1,{integer_digits}}}" if integer_digits else "0+"
    fraction = rf"(\.[0-9]{{1,{scale}}}0*)?" if scale else r"(\.0+)?"
    ok = _matches(values, rf"^-?{integer}{fraction}$")
    candidates = values
    long = pc.and_(ok, pc.greater(pc.binary_length(values), 38))
    if pc.any(long).as_py():
        short = values.filter(long)
        for pattern, replacement in (_LEADING_ZEROS, _TRAILING_ZEROS):
            short = pc.replace_substring_regex(short, pattern, replacement)
        candidates = pc.replace_with_mask(values, long, short)
    result = _finish(candidates, ok, target)
    return CastResult(result.values, result.failed, values)


def _cast_timestamp(values: pa.Array) -> CastResult:
    iso = _matches(values, _ISO)
    epoch = _matches(values, _EPOCH_MS)
    iso_text = pc.if_else(iso, values, pa.scalar(None, pa.string()))
    # beyond microseconds: truncate; no offset: UTC
    iso_text = pc.replace_substring_regex(iso_text, r"(\.[0-9]{6})[0-9]+", r"\1")
    lower_z = pc.fill_null(pc.ends_with(iso_text, "z"), False)
    if pc.any(lower_z).as_py():  # RFC 3339 allows "z"; Arrow's parser wants "Z"
        iso_text = pc.if_else(lower_z, pc.ascii_upper(iso_text), iso_text)
    iso_text = pc.if_else(
        pc.fill_null(pc.match_substring_regex(iso_text, _HAS_OFFSET), True),
        iso_text,
        pc.binary_join_element_wise(iso_text, "Z", ""),
    )
    iso_typed, iso_failed = _cast_or_screen(iso_text, _TS, _calendar_ok)
    millis = pc.if_else(epoch, values, pa.scalar(None, pa.string())).cast(pa.int64())
    epoch_typed = millis.cast(pa.timestamp("ms", tz="UTC")).cast(_TS)
    typed = pc.if_else(epoch, epoch_typed, iso_typed)
    not_grammar = pc.and_(pc.is_valid(values), pc.invert(pc.or_(iso, epoch)))
    return CastResult(typed, pc.or_(not_grammar, iso_failed), values)


def _in_range(result: CastResult, low: int, high: int) -> CastResult:
    """Values outside ``[low, high]`` (in the type's integer unit) fail."""
    typed = result.values
    storage = typed.cast(pa.int64() if pa.types.is_timestamp(typed.type) else pa.int32())
    outside = pc.or_(pc.less(storage, low), pc.greater(storage, high))
    return _reject(result, pc.fill_null(outside, False))


def _reject(result: CastResult, bad: pa.BooleanArray) -> CastResult:
    if not pc.any(bad).as_py():
        return result
    return CastResult(
        pc.if_else(bad, pa.scalar(None, result.values.type), result.values),
        pc.or_(result.failed, bad),
        result.text,
    )


def _matches(values: pa.Array, pattern: str) -> pa.BooleanArray:
    """True where the value matches; false for nulls."""
    return pc.fill_null(pc.match_substring_regex(values, pattern=pattern), False)


def _finish(values: pa.Array, ok: pa.BooleanArray, target: pa.DataType,
            screen: Callable[[pa.Array], pa.BooleanArray] | None = None) -> CastResult:
    candidates = pc.if_else(ok, values, pa.scalar(None, pa.string()))
    typed, cast_failed = _cast_or_screen(candidates, target, screen)
    not_grammar = pc.and_(pc.is_valid(values), pc.invert(ok))
    return CastResult(typed, pc.or_(not_grammar, cast_failed), values)


def _cast_or_screen(
    values: pa.Array, target: pa.DataType, screen: Callable[[pa.Array], pa.BooleanArray] | None
) -> tuple[pa.Array, pa.BooleanArray]:
    """Cast; when the whole cast fails, ``screen`` (vectorised: an int beyond its range, a
    ``2026-02-30``) removes what Arrow refuses, so a column of bad values costs a few passes
    rather than one cast per value; halving isolates whatever the screen did not foresee."""
    try:
        return pc.cast(values, target), _false(len(values))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if screen is None:
            return _split_cast(values, target)
    refused = pc.and_(pc.is_valid(values), pc.invert(pc.fill_null(screen(values), False)))
    typed, failed = _split_cast(pc.if_else(refused, pa.scalar(None, values.type), values), target)
    return typed, pc.or_(failed, refused)


def _integer_screen(bits: int) -> Callable[[pa.Array], pa.BooleanArray]:
    """Texts ``-?[0-9]+`` within a signed ``bits``-bit integer: digits without leading zeros
    compared with the bound's digits (same length: lexical order is numeric order)."""
    high, low = str(2 ** (bits - 1) - 1), str(2 ** (bits - 1))

    def fits(values: pa.Array) -> pa.BooleanArray:
        negative = pc.fill_null(pc.starts_with(values, "-"), False)
        digits = pc.if_else(negative, pc.utf8_slice_codeunits(values, 1), values)
        padded = pc.fill_null(pc.starts_with(digits, "0"), False)
        if pc.any(padded).as_py():
            stripped = pc.replace_substring_regex(digits.filter(padded), r"^0+([0-9])", r"\1")
            digits = pc.replace_with_mask(digits, padded, stripped)
        length = pc.binary_length(digits)
        bound = pc.if_else(negative, low, high)
        return pc.or_(pc.less(length, len(high)),
                      pc.and_(pc.equal(length, len(high)), pc.less_equal(digits, bound)))

    return fits


_CALENDAR = (
    r"^(?P<y>[0-9]{4})-(?P<mo>[0-9]{2})-(?P<d>[0-9]{2})(?:[T ](?P<h>[0-9]{2}):(?P<mi>[0-9]{2})"
    r"(?::(?P<s>[0-9]{2}))?(?:\.[0-9]+)?(?:Z|[+-](?P<oh>[0-9]{2}):?(?P<om>[0-9]{2})?)?)?$"
)
_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _calendar_ok(values: pa.Array) -> pa.BooleanArray:
    """Dates and ISO date-times (as ``_cast_timestamp`` passes them) whose fields are real:
    month 1-12, the month's days (proleptic Gregorian), hours 0-23, minutes and seconds 0-59,
    offsets up to 23:59."""
    parts = pc.extract_regex(values, _CALENDAR)

    def field(name: str) -> np.ndarray:
        text = pc.struct_field(parts, name)
        text = pc.if_else(pc.equal(text, ""), "0", text)  # an absent optional field
        return pc.fill_null(text.cast(pa.int32()), -1).to_numpy(zero_copy_only=False)

    year, month, day = field("y"), field("mo"), field("d")
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    days = _MONTH_DAYS[np.clip(month, 1, 12) - 1] + ((month == 2) & leap)
    ok = (month >= 1) & (month <= 12) & (day >= 1) & (day <= days)
    ok &= (field("h") <= 23) & (field("mi") <= 59) & (field("s") <= 59)
    ok &= (field("oh") <= 23) & (field("om") <= 59)
    ok &= year >= 0  # -1: no match (or null)
    return pa.array(ok)


def _split_cast(values: pa.Array, target: pa.DataType) -> tuple[pa.Array, pa.BooleanArray]:
    """Cast; where the whole cast fails, cast halves until each bad value is isolated."""
    try:
        return pc.cast(values, target), _false(len(values))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(values) == 1:
            return pa.nulls(1, target), pa.array([True])
    mid = len(values) // 2
    left_values, left_failed = _split_cast(values.slice(0, mid), target)
    right_values, right_failed = _split_cast(values.slice(mid), target)
    return (
        pa.concat_arrays([left_values, right_values]),
        pa.concat_arrays([left_failed, right_failed]),
    )


def _false(n: int) -> pa.BooleanArray:
    return pa.repeat(pa.scalar(False), n) if hasattr(pa, "repeat") else pa.array([False] * n)


def literal_text(value: str | int | float | bool) -> str:
    """The Standardized text of a schema literal (JSON scalar -> its JSON text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def cast_literal(value: str | int | float | bool, spec: str) -> pa.Scalar:
    """A schema literal (default, rule bound) cast like data; ``ValueError`` if it does not."""
    result = cast_column(pa.array([literal_text(value)], pa.string()), spec)
    if result.failed[0].as_py():
        raise ValueError(f"{value!r} is not a valid {spec}")
    return result.values[0]
