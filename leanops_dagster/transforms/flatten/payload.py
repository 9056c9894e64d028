"""Payloads -> payload columns: the flatten interface and its reference implementation.

``Flattener`` turns the JSON payloads of some RAW rows into Standardized payload columns (every
value STRING) and parse errors. ``ReferenceFlattener`` is the definition of correct, record by
record (docs/schemas.md, "Flattening"):

1. *Reading*: orjson reads the payload. What orjson refuses is read by the standard library
   (strictly: no ``NaN``/``Infinity``) and kept only when its strings are storable UTF-8 (no
   lone surrogate): a number beyond double range (``1e400``) is valid JSON. Anything else is
   ``invalid_json`` with orjson's message; a payload that is not an object ``not_an_object``;
   objects and arrays nested deeper than ``MAX_DEPTH`` levels ``too_deep``.
2. *Values*, from the standard library's reading with every number kept as its text: strings as
   they are, ``true``/``false``, ``null`` = absent, an empty object ``{}``, numbers by
   ``number_text``, arrays as compact JSON with their numbers by ``number_text``.
3. *Names*, from the key path (``naming``); two paths of one payload with one name: the path that
   sorts first keeps it, the others take their suffixed names.

The fast implementation (``shapes.FastFlattener``) gives the same columns, errors and names for
every input (tests/transforms/test_flatten_shapes.py, test_flatten_properties.py and
test_flatten_limits.py run both); ``flatten.new_flattener`` is the one place that chooses.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import orjson
import pyarrow as pa

from leanops_dagster.transforms.flatten.naming import ColumnNamer, suffixed_name

REASON_INVALID_JSON = "invalid_json"
REASON_NOT_AN_OBJECT = "not_an_object"
REASON_TOO_DEEP = "too_deep"
#: objects and arrays nested deeper than this (the payload itself is level 1) are a parse
#: error: the JSON writers and readers on the way (orjson writes 255 levels, Python's json
#: reads about 1,000) must never meet a payload they cannot handle
MAX_DEPTH = 128
TOO_DEEP_DETAIL = f"objects and arrays nested deeper than {MAX_DEPTH} levels"


def float_text(value: float) -> str | None:
    """Shortest round-trip text (Python's ``repr``) if it has at most 15 significant digits
    (leading and trailing zeros not counted: ``2500000000000000.0`` has 2), else None."""
    text = repr(value)
    if len(text) <= 16:  # sign, point and 15 digits at most
        return text
    mantissa = text.split("e")[0].lstrip("-").replace(".", "").strip("0")
    return text if len(mantissa) <= 15 else None


def number_text(text: str) -> str:
    """A JSON number's Standardized text, from the number as written (the one rule): an
    integer as written (``-0`` as ``0``); another number as ``float_text`` of its double when
    that is not None, else as written (``0.12345678901234567``, ``1e400``)."""
    if "." not in text and "e" not in text and "E" not in text:
        return "0" if text == "-0" else text
    value = float(text)
    if value in (float("inf"), float("-inf")):
        return text
    return float_text(value) or text


@dataclass
class Columns:
    """Payload columns of some RAW rows, as pieces: per name, STRING arrays and the RAW row
    indices their values belong to; the rows that are objects; parse errors."""

    values: dict[str, list[pa.Array]] = field(default_factory=dict)
    rows: dict[str, list[np.ndarray]] = field(default_factory=dict)
    #: RAW rows whose payload is an object (each a row of the output, values or not)
    kept: list[np.ndarray] = field(default_factory=list)
    #: ``(RAW row, reason, detail)``
    errors: list[tuple[int, str, str]] = field(default_factory=list)
    #: names taken by rule 4 of ``naming`` (a suffix against a collision) -> key path (JSON)
    renamed: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, values: pa.Array, rows: np.ndarray) -> None:
        self.values.setdefault(name, []).append(values)
        self.rows.setdefault(name, []).append(rows)

    def kept_rows(self) -> np.ndarray:
        """``kept`` as one ascending array."""
        if not self.kept:
            return np.zeros(0, dtype=np.int64)
        return np.sort(np.concatenate(self.kept))

    def extend(self, other: Columns) -> None:
        for name, pieces in other.values.items():
            self.values.setdefault(name, []).extend(pieces)
            self.rows.setdefault(name, []).extend(other.rows[name])
        self.kept += other.kept
        self.errors += other.errors
        self.renamed.update(other.renamed)


class Flattener(ABC):
    """Payload columns of RAW rows; a null payload is no row to flatten (the caller's parse
    error), every other row ends in ``kept`` (its values in the columns) or in ``errors``."""

    @abstractmethod
    def flatten(self, payloads: pa.ChunkedArray, namer: ColumnNamer) -> Columns: ...


def text_rows(payloads: pa.ChunkedArray) -> np.ndarray:
    """Indices of the rows with a payload (ascending)."""
    if not payloads.null_count:
        return np.arange(len(payloads), dtype=np.int64)
    return np.flatnonzero(payloads.is_valid().to_numpy(zero_copy_only=False))


class ReferenceFlattener(Flattener):
    """The definition: each payload read, checked and walked on its own (module docstring)."""

    def flatten(self, payloads: pa.ChunkedArray, namer: ColumnNamer) -> Columns:
        return self.flatten_rows(payloads, text_rows(payloads), namer)

    def flatten_rows(
        self, payloads: pa.ChunkedArray, rows: np.ndarray, namer: ColumnNamer
    ) -> Columns:
        """``flatten`` of the rows ``rows`` (ascending indices of payloads that are not
        null)."""
        out = Columns()
        if not len(rows):
            return out
        texts = (payloads if len(rows) == len(payloads) else payloads.take(rows)).to_pylist()
        values: dict[str, list[str]] = {}
        positions: dict[str, list[int]] = {}
        kept: list[int] = []
        for row, text in zip(rows.tolist(), texts, strict=True):
            obj = read_payload(text)
            if type(obj) is tuple:
                out.errors.append((row, *obj))
                continue
            kept.append(row)
            for name, value, renamed_from in record_values(obj, namer):  # type: ignore[arg-type]
                values.setdefault(name, []).append(value)
                positions.setdefault(name, []).append(row)
                if renamed_from is not None:
                    out.renamed[name] = json.dumps(list(renamed_from), ensure_ascii=False)
        for name, column in values.items():
            out.add(
                name, pa.array(column, pa.string()), np.asarray(positions[name], dtype=np.int64)
            )
        out.kept.append(np.asarray(kept, dtype=np.int64))
        return out


class _Number(str):
    """A JSON number kept as its text (the standard library's exact reading)."""

    __slots__ = ()


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def loads_exact(text: str) -> object:
    """``text`` read by the standard library, numbers kept as ``_Number`` texts."""
    return json.loads(text, parse_float=_Number, parse_int=_Number, parse_constant=_reject_constant)


def read_payload(text: str) -> dict | tuple[str, str]:
    """The payload as an object with its numbers as written (step 1 of the module docstring),
    or ``(reason, detail)``."""
    exact = None
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        try:  # valid JSON orjson refuses: a number beyond double range
            obj = exact = loads_exact(text)
            json.dumps(obj, ensure_ascii=False).encode("utf-8")  # no lone surrogate
        except (ValueError, UnicodeEncodeError, RecursionError):
            return REASON_INVALID_JSON, str(exc)
    if type(obj) is not dict:
        return REASON_NOT_AN_OBJECT, f"JSON {_json_kind(obj)}, not an object"
    if too_deep(text, obj):
        return REASON_TOO_DEEP, TOO_DEEP_DETAIL
    return exact if exact is not None else loads_exact(text)  # type: ignore[return-value]


def too_deep(text: str, obj: object) -> bool:
    """More than ``MAX_DEPTH`` levels; the bracket count bounds the depth (counting in C), so
    only a payload with that many brackets is walked."""
    if text.count("{") + text.count("[") <= MAX_DEPTH:
        return False
    stack: list[tuple[object, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = value.values() if type(value) is dict else value  # type: ignore[union-attr]
        stack.extend(
            (child, depth + 1)
            for child in children  # type: ignore[union-attr]
            if type(child) is dict or type(child) is list
        )
    return False


def _json_kind(obj: object) -> str:
    if isinstance(obj, list):
        return "array"
    if isinstance(obj, str):
        return "string"
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "boolean"
    return "number"


def record_values(obj: dict, namer: ColumnNamer) -> list[tuple[str, str, tuple | None]]:
    """``(column name, text, key path if the name was suffixed by rule 4 else None)`` of one
    payload read by ``loads_exact``."""
    by_name: dict[str, list[tuple[tuple, str]]] = {}
    for path, text in _leaves(obj, ()):
        by_name.setdefault(namer(path), []).append((path, text))
    out: list[tuple[str, str, tuple | None]] = []
    for name, group in by_name.items():
        group.sort(key=lambda item: item[0])  # rule 4: the first path keeps the name
        out.append((name, group[0][1], None))
        out += [(suffixed_name(path), text, path) for path, text in group[1:]]
    return out


def _leaves(obj: dict, prefix: tuple) -> list[tuple[tuple, str]]:
    """``(key path, text)`` of every value of ``obj`` that is not null (step 2)."""
    items: list[tuple[tuple, str]] = []
    for key, value in obj.items():
        path = (*prefix, key)
        if type(value) is dict:
            if value:
                items += _leaves(value, path)
            else:
                items.append((path, "{}"))
        elif type(value) is _Number:
            items.append((path, number_text(str.__str__(value))))
        elif type(value) is str:
            items.append((path, value))
        elif type(value) is bool:
            items.append((path, "true" if value else "false"))
        elif type(value) is list:
            items.append((path, array_text(value)))
        # None: null = absent in Standardized
    return items


def array_text(value: list) -> str:
    """An array as compact JSON, its numbers by ``number_text`` (``value`` read by
    ``loads_exact``)."""
    return orjson.dumps(
        value,
        option=orjson.OPT_PASSTHROUGH_SUBCLASS,
        default=lambda o: (
            orjson.Fragment(number_text(str.__str__(o))) if isinstance(o, _Number) else o
        ),
    ).decode()
