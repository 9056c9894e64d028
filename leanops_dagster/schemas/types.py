"""The column types a Curated schema may declare (``"long"``, ``"decimal(12, 2)"``, ...) and
their Arrow (= Iceberg) types: what both the schema models and the casts read."""

from __future__ import annotations

import re

import pyarrow as pa

_DECIMAL = re.compile(r"^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
SIMPLE_TYPES = ("int", "long", "double", "boolean", "timestamp", "date", "string")
ORDERABLE_TYPES = ("int", "long", "double", "timestamp", "date", "string", "decimal")


def parse_type(spec: str) -> tuple[str, int | None, int | None]:
    """``"decimal(12, 2)"`` -> ``("decimal", 12, 2)``; ``"long"`` -> ``("long", None, None)``."""
    spec = spec.strip().lower()
    if spec in SIMPLE_TYPES:
        return spec, None, None
    match = _DECIMAL.fullmatch(spec)
    if not match:
        raise ValueError(
            f"unsupported type {spec!r}: expected one of {', '.join(SIMPLE_TYPES)} or decimal(p,s)"
        )
    precision, scale = int(match[1]), int(match[2])
    if not 1 <= precision <= 38:
        raise ValueError(f"decimal precision {precision} must be between 1 and 38")
    if scale > precision:
        raise ValueError(f"decimal scale {scale} exceeds precision {precision}")
    return "decimal", precision, scale


def arrow_type(spec: str) -> pa.DataType:
    """The Arrow (= Iceberg) type of a schema type; timestamps are UTC microseconds."""
    kind, precision, scale = parse_type(spec)
    if kind == "decimal":
        return pa.decimal128(precision, scale)  # type: ignore[arg-type]
    return {
        "int": pa.int32(),
        "long": pa.int64(),
        "double": pa.float64(),
        "boolean": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "date": pa.date32(),
        "string": pa.string(),
    }[kind]
