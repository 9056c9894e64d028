"""Standardized STRING values -> Curated types, vectorised, with a per-value failure mask.

Accepted text per type (anything else is a ``type_cast`` failure; nothing is rounded):

=============  ============================================================================
int, long      ``-?[0-9]+`` within the type's range (int = 32-bit, long = 64-bit)
double         a JSON number (``-1.5``, ``2e-3``); ``NaN``/``Infinity`` and overflow rejected
decimal(p,s)   ``-?[0-9]+(\\.[0-9]+)?`` with at most ``p-s`` integer digits and at most ``s``
               significant fractional digits (``12.340`` fits ``decimal(10,2)``, ``12.345``
               does not); no exponent
boolean        ``true``/``false`` (any case), ``1``/``0``
timestamp      ISO-8601 date-time ``YYYY-MM-DD[T ]hh:mm[:ss[.f+]]`` with ``Z`` or ``±hh[:mm]``
               (no offset = UTC; digits after microseconds truncated), or epoch milliseconds
               (``-?[0-9]{1,15}``); stored as UTC microseconds (timestamptz)
date           ``YYYY-MM-DD``
string         any value
=============  ============================================================================

A value that matches the grammar but still cannot be cast (``2026-02-30``, an int32 overflow)
is found by casting halves until the single bad value is isolated: O(k log n) extra casts for
k bad values, no per-row Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from leanops_dagster.schemas.models import arrow_type, parse_type

_INTEGER = r"^-?[0-9]+$"
_DOUBLE = r"^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_BOOLEAN = r"^(?i)(true|false|1|0)$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_ISO = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
    r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)?$"
)
_HAS_OFFSET = r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"
_EPOCH_MS = r"^-?[0-9]{1,15}$"
_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class CastResult:
    """``values`` typed; ``failed`` is true where a non-null input could not be cast."""

    values: pa.Array
    failed: pa.BooleanArray

    @property
    def failure_count(self) -> int:
        return int(pc.sum(self.failed).as_py() or 0)


def cast_column(values: pa.Array | pa.ChunkedArray, spec: str) -> CastResult:
    """Cast a string column to the schema type ``spec``; failed values become null."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    kind, precision, scale = parse_type(spec)
    target = arrow_type(spec)
    if kind == "string":
        return CastResult(values, _false(len(values)))
    if kind == "timestamp":
        return _cast_timestamp(values)
    if kind == "decimal":
        integer_digits = precision - scale  # type: ignore[operator]
        grammar = (
            rf"^-?[0-9]{{1,{integer_digits}}}(\.[0-9]+)?$"
            if integer_digits
            else r"^-?0*(\.[0-9]+)?$"
        )
        # leading zeros do not count towards precision
        values_for_grammar = pc.replace_substring_regex(values, r"^(-?)0+([0-9])", r"\1\2")
        ok = _matches(values_for_grammar, grammar)
        return _finish(values, ok, target)
    grammar = {
        "int": _INTEGER,
        "long": _INTEGER,
        "double": _DOUBLE,
        "boolean": _BOOLEAN,
        "date": _DATE,
    }[kind]
    result = _finish(values, _matches(values, grammar), target)
    if kind == "double":
        bad = pc.fill_null(pc.or_(pc.is_inf(result.values), pc.is_nan(result.values)), False)
        if pc.any(bad).as_py():
            return CastResult(
                pc.if_else(bad, pa.scalar(None, target), result.values),
                pc.or_(result.failed, bad),
            )
    return result


def _cast_timestamp(values: pa.Array) -> CastResult:
    iso = _matches(values, _ISO)
    epoch = _matches(values, _EPOCH_MS)
    iso_text = pc.if_else(iso, values, pa.scalar(None, pa.string()))
    # beyond microseconds: truncate; no offset: UTC
    iso_text = pc.replace_substring_regex(iso_text, r"(\.[0-9]{6})[0-9]+", r"\1")
    iso_text = pc.if_else(
        pc.fill_null(pc.match_substring_regex(iso_text, _HAS_OFFSET), True),
        iso_text,
        pc.binary_join_element_wise(iso_text, "Z", ""),
    )
    iso_typed, iso_failed = _split_cast(iso_text, _TS)
    millis = pc.if_else(epoch, values, pa.scalar(None, pa.string())).cast(pa.int64())
    epoch_typed = millis.cast(pa.timestamp("ms", tz="UTC")).cast(_TS)
    typed = pc.if_else(epoch, epoch_typed, iso_typed)
    not_grammar = pc.and_(pc.is_valid(values), pc.invert(pc.or_(iso, epoch)))
    return CastResult(typed, pc.or_(not_grammar, iso_failed))


def _matches(values: pa.Array, pattern: str) -> pa.BooleanArray:
    """True where the value matches; false for nulls."""
    return pc.fill_null(pc.match_substring_regex(values, pattern=pattern), False)


def _finish(values: pa.Array, ok: pa.BooleanArray, target: pa.DataType) -> CastResult:
    candidates = pc.if_else(ok, values, pa.scalar(None, pa.string()))
    typed, cast_failed = _split_cast(candidates, target)
    not_grammar = pc.and_(pc.is_valid(values), pc.invert(ok))
    return CastResult(typed, pc.or_(not_grammar, cast_failed))


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
