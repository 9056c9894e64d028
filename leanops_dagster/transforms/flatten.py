"""RAW rows -> Standardized rows + parse errors (pure: Arrow in, Arrow out).

Input: RAW columns (``message_id``, ``topic_name``, ``json_payload``, ``publish_time``,
``ingestion_ts``) plus, optionally, the caller's lineage column (``raw_snapshot_id``).

Output rows (one per parseable RAW row, in input order), columns in this order:
``message_id``, ``idempotency_key``, the schema's other metadata columns (sorted),
``topic_name``, ``publish_time``, ``ingestion_ts`` (timestamptz, UTC microseconds, as in RAW),
the lineage column if given, then the payload columns sorted by name — every payload column
STRING:

* nested objects are flattened, keys joined by ``_`` and lower-cased (see ``naming``);
* arrays (with whatever they contain) are kept as compact JSON text; an empty object as ``{}``;
* scalars as text: strings unquoted, ``true``/``false``, ``null`` -> null; integers as written
  (``-0`` as ``0``); other numbers in their shortest round-trip form when it has at most 15
  significant digits (``1.50`` -> ``1.5``, ``2.5e15`` -> ``2500000000000000.0``), else as
  written (``1e400``); numbers inside arrays the same way (docs/schemas.md has the full rule);
* the schema's ``metadata`` keys become metadata columns, its ``drop_keys`` are dropped (RAW
  columns carry them).

Parse errors (one row per RAW row that fails, reasons): ``invalid_json`` (also a null payload
and payload bytes that are not UTF-8, shown with ``\\xNN`` escapes), ``not_an_object``,
``too_deep`` (nested more than ``MAX_DEPTH`` levels), ``missing_required_metadata:<column>``
(the first missing in ``required_metadata`` order; the detail lists all; null or empty string
counts as missing). Total: no payload makes this raise.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from leanops_dagster.constants import IDEMPOTENCY_KEY
from leanops_dagster.schemas.models import StandardizedSchema
from leanops_dagster.transforms.naming import ColumnNamer, suffixed_name
from leanops_dagster.transforms.payload import Pieces, PlanSet, float_text, plan_columns
from leanops_dagster.transforms.shapes import ShapeMatcher
from leanops_dagster.transforms.text import invalid_utf8, readable_text

try:  # orjson is a declared dependency; json keeps the module importable without it
    import orjson

    _fast_loads = orjson.loads
    _FastError: type[Exception] = orjson.JSONDecodeError
except ImportError:  # pragma: no cover
    orjson = None  # type: ignore[assignment]
    _fast_loads = json.loads
    _FastError = ValueError

REASON_INVALID_JSON = "invalid_json"
REASON_NOT_AN_OBJECT = "not_an_object"
REASON_MISSING_METADATA = "missing_required_metadata"
REASON_TOO_DEEP = "too_deep"
#: objects and arrays nested deeper than this (the payload itself is level 1) are a parse
#: error: the JSON writers and readers on the way (orjson writes 255 levels, Python's json
#: reads about 1,000) must never meet a payload they cannot handle
MAX_DEPTH = 128

TS = pa.timestamp("us", tz="UTC")
PARSE_ERROR_COLUMNS = (
    "message_id",
    "topic_name",
    "error_reason",
    "error_detail",
    "json_payload",
    "raw_snapshot_id",
    "publish_time",
    "ingestion_ts",
)


@dataclass(frozen=True)
class FlattenResult:
    rows: pa.Table
    errors: pa.Table
    #: payload columns seen in this increment (sorted); drift is judged against these
    columns: list[str]
    #: columns whose name was sanitised or disambiguated -> original key path (JSON)
    sanitised: dict[str, str] = field(default_factory=dict)

    @property
    def drift_keys(self) -> list[str]:
        return self.columns


class _Number(str):
    """A JSON number kept as its exact text (exact parsing mode)."""

    __slots__ = ()


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _loads_exact(text: str):
    return json.loads(
        text, parse_float=_Number, parse_int=_Number, parse_constant=_reject_constant
    )


def _number_text(text: str) -> str:
    """Integers as written (``-0`` as ``0``, as every other path writes it); other numbers as
    the fast path writes them when that is exact."""
    if "." not in text and "e" not in text and "E" not in text:
        return "0" if text == "-0" else text
    value = float(text)
    if value in (float("inf"), float("-inf")):
        return text
    return float_text(value) or text


def _dumps_exact(value: object) -> str:
    if orjson is None:  # pragma: no cover
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return orjson.dumps(
        value,
        option=orjson.OPT_PASSTHROUGH_SUBCLASS,
        default=lambda o: orjson.Fragment(_number_text(str.__str__(o)))
        if isinstance(o, _Number)
        else o,
    ).decode()


def _walk_exact(obj: dict, prefix: tuple, items: list) -> None:
    """Flatten a payload parsed keeping number text into ``(path, text)`` pairs."""
    for key, value in obj.items():
        path = (*prefix, key)
        if isinstance(value, dict):
            if value:
                _walk_exact(value, path, items)
                continue
            items.append((path, "{}"))
        elif isinstance(value, _Number):
            items.append((path, _number_text(str.__str__(value))))
        elif isinstance(value, str):
            items.append((path, value))
        elif value is None:
            continue  # null = absent in Standardized
        elif isinstance(value, bool):
            items.append((path, "true" if value else "false"))
        elif isinstance(value, list):
            items.append((path, _dumps_exact(value)))
        else:  # pragma: no cover - parse hooks turn every number into _Number
            items.append((path, str(value)))


class _ExactRows:
    """Column values of payloads flattened on the exact path."""

    def __init__(self, namer: ColumnNamer) -> None:
        self.namer = namer
        self.values: dict[str, list] = {}
        self.positions: dict[str, list[int]] = {}
        self.sanitised: dict[str, str] = {}

    def add(self, obj: dict, position: int) -> None:
        """Naming rule 4: of paths with a value sharing a name, the first in sort order keeps
        it; the others take their suffixed names."""
        items: list = []
        _walk_exact(obj, (), items)
        by_name: dict[str, list] = {}
        for path, text in items:
            by_name.setdefault(self.namer(path), []).append((path, text))
        for name, group in by_name.items():
            group.sort(key=lambda item: item[0])
            for rank, (path, text) in enumerate(group):
                final = name if rank == 0 else suffixed_name(path)
                if rank:
                    self.sanitised[final] = json.dumps(list(path), ensure_ascii=False)
                self.values.setdefault(final, []).append(text)
                self.positions.setdefault(final, []).append(position)

    def to_pieces(self, pieces: Pieces) -> None:
        for name, values in self.values.items():
            pieces.add(name, pa.array(values, pa.string()),
                       np.asarray(self.positions[name], dtype=np.int64))


PARALLEL_MIN_ROWS = 200_000
#: rows that fit a byte-level shape are flattened vectorised (``shapes``); tests switch it off
#: to compare with the per-row path
FAST_PATH = True


def _auto_workers(rows: int) -> int:
    if rows < PARALLEL_MIN_ROWS:
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, rows // (PARALLEL_MIN_ROWS // 2), 8))


def flatten_raw(
    raw: pa.Table,
    schema: StandardizedSchema,
    *,
    snapshot_column: str | None = "raw_snapshot_id",
    workers: int | None = 1,
) -> FlattenResult:
    """Flatten RAW rows per ``schema``; see the module docstring for the exact output.

    ``workers``: processes to split the increment over (``None``: one per available core for
    200,000 rows or more, else 1). The result is identical for any number of workers. Workers
    start from a forkserver (safe in a threaded process), so a script calling this with
    ``workers != 1`` needs the ``if __name__ == "__main__":`` guard.
    """
    workers = _auto_workers(raw.num_rows) if workers is None else max(1, workers)
    if workers > 1 and raw.num_rows >= 2 * workers:
        return _flatten_parallel(raw, schema, snapshot_column, workers)
    return _flatten_serial(raw, schema, snapshot_column)


def _flatten_parallel(
    raw: pa.Table, schema: StandardizedSchema, snapshot_column: str | None, workers: int
) -> FlattenResult:
    """Flatten contiguous slices in ``workers`` processes (forkserver: safe with threads)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    step = -(-raw.num_rows // workers)
    slices = [raw.slice(start, step) for start in range(0, raw.num_rows, step)]
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(max_workers=len(slices), mp_context=context) as pool:
        parts = list(pool.map(_flatten_serial, slices, [schema] * len(slices),
                              [snapshot_column] * len(slices)))
    rows = pa.concat_tables([p.rows for p in parts], promote_options="default")
    payload = sorted({c for p in parts for c in p.columns})
    meta = [c for c in rows.column_names if c not in set(payload)]
    errors = pa.concat_tables([p.errors for p in parts])
    sanitised = dict(sorted({k: v for p in parts for k, v in p.sanitised.items()}.items()))
    return FlattenResult(rows.select(meta + payload), errors, payload, sanitised)


def _flatten_serial(
    raw: pa.Table, schema: StandardizedSchema, snapshot_column: str | None
) -> FlattenResult:
    namer = ColumnNamer(schema.metadata_targets)
    pieces = Pieces()  # positions: RAW row indices until remapped to output rows below
    column = raw.column("json_payload")
    if isinstance(column, pa.Array):  # pragma: no cover - a Table column is chunked
        column = pa.chunked_array([column])
    not_text = _not_utf8_rows(column)
    if len(not_text):  # a parse error, not a value: neither path may read these bytes
        mask = np.zeros(raw.num_rows, dtype=bool)
        mask[not_text] = True
        column = pc.if_else(pa.array(mask), pa.scalar(None, column.type), column)
    shaped = (
        ShapeMatcher(namer).run(column, pieces.add)
        if FAST_PATH and raw.num_rows
        else np.zeros(0, dtype=np.int64)
    )
    if len(shaped) == raw.num_rows:
        rest = np.zeros(0, dtype=np.int64)
    elif len(shaped):
        left = np.ones(raw.num_rows, dtype=bool)
        left[shaped] = False
        rest = np.flatnonzero(left)
    else:
        rest = np.arange(raw.num_rows, dtype=np.int64)
    kept, errors = _flatten_rows(column, rest, namer, pieces, not_text.tolist())
    kept_rows = np.sort(np.concatenate([shaped, np.asarray(kept, dtype=np.int64)]))
    count = len(kept_rows)
    pieces.remap(kept_rows)
    sanitised = dict(pieces.sanitised)
    for path, name in namer.cache.items():
        if name != "_".join(path).lower():
            sanitised.setdefault(name, json.dumps(list(path), ensure_ascii=False))
    columns = {name: pieces.column(name, count) for name in pieces.names()}
    return _assemble(raw, schema, snapshot_column, columns, kept_rows, count, errors, sanitised)


def _flatten_rows(
    column: pa.ChunkedArray, rows: np.ndarray, namer: ColumnNamer, pieces: Pieces,
    not_text: Sequence[int] = (),
) -> tuple[list[int], list[tuple[int, str, str]]]:
    """The per-row path for RAW rows ``rows``: values go to ``pieces`` at the RAW row index;
    ``not_text``: rows whose payload was not UTF-8 (nulled before)."""
    kept: list[int] = []
    errors: list[tuple[int, str, str]] = []
    if not len(rows):
        return kept, errors
    not_text = frozenset(not_text)
    plans = PlanSet(namer)
    exact = _ExactRows(namer)
    index = rows.tolist()
    payloads = (column if len(rows) == len(column) else column.take(rows)).to_pylist()
    loads, add_planned = _fast_loads, plans.add
    gc_was_enabled = gc.isenabled()
    gc.disable()  # millions of short-lived containers: the cyclic GC would dominate
    try:
        for i, text in zip(index, payloads, strict=True):
            if text is None:
                errors.append((i, REASON_INVALID_JSON, "payload is not valid UTF-8"
                               if i in not_text else "payload is null"))
                continue
            try:
                obj = loads(text)
            except _FastError as exc:
                obj = _loads_fallback(text)
                if obj is None:
                    errors.append((i, REASON_INVALID_JSON, str(exc)))
                    continue
                if type(obj) is dict:
                    if _too_deep(text, obj):
                        errors.append((i, REASON_TOO_DEEP, _TOO_DEEP_DETAIL))
                        continue
                    exact.add(obj, i)
                    kept.append(i)
                    continue
            if type(obj) is not dict:
                errors.append((i, REASON_NOT_AN_OBJECT, f"JSON {_json_kind(obj)}, not an object"))
                continue
            if _too_deep(text, obj):
                errors.append((i, REASON_TOO_DEEP, _TOO_DEEP_DETAIL))
                continue
            if not add_planned(obj, i):
                exact.add(_loads_exact(text), i)
            kept.append(i)
        for plan in plans.plans:
            for position in plan_columns(plan, pieces):
                text = payloads[int(np.searchsorted(rows, position))]
                exact.add(_loads_exact(text), position)
    finally:
        if gc_was_enabled:
            gc.enable()
    exact.to_pieces(pieces)
    pieces.sanitised.update(exact.sanitised)
    return kept, errors


_TOO_DEEP_DETAIL = f"objects and arrays nested deeper than {MAX_DEPTH} levels"


def _too_deep(text: str, obj: dict) -> bool:
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
        stack.extend((child, depth + 1) for child in children  # type: ignore[union-attr]
                     if type(child) is dict or type(child) is list)
    return False


def _not_utf8_rows(column: pa.ChunkedArray) -> np.ndarray:
    """Row indices whose payload bytes are not UTF-8 (one vectorised check per chunk)."""
    found: list[np.ndarray] = []
    base = 0
    for chunk in column.chunks:
        invalid = invalid_utf8(chunk)
        if invalid is not None:
            found.append(np.flatnonzero(invalid.to_numpy(zero_copy_only=False)) + base)
        base += len(chunk)
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _loads_fallback(text: str):
    """Valid JSON orjson refuses (a number beyond double range); None if really invalid."""
    try:
        obj = _loads_exact(text)
        _check_encodable(obj)
    except (ValueError, UnicodeEncodeError, RecursionError):
        return None
    return obj


def _check_encodable(obj: object) -> None:
    """Reject lone surrogates (valid JSON escapes, but not storable as UTF-8 text)."""
    json.dumps(obj, ensure_ascii=False).encode("utf-8")


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


def _assemble(
    raw: pa.Table,
    schema: StandardizedSchema,
    snapshot_column: str | None,
    columns: dict[str, pa.Array],
    kept: Sequence[int] | np.ndarray,
    count: int,
    errors: list[tuple[int, str, str]],
    sanitised: dict[str, str],
) -> FlattenResult:
    kept_idx = pa.array(kept, pa.int64())
    payload = dict(columns)
    # metadata mapping is a column rename; drop keys RAW already carries
    for key in schema.drop_keys:
        payload.pop(key, None)
    metadata = {
        target: payload.pop(source, pa.nulls(count, pa.string()))
        for source, target in schema.metadata.items()
    }

    # required metadata: null or empty -> parse error (first missing in schema order)
    missing_masks = {
        name: pc.fill_null(pc.equal(metadata[name], ""), True)
        for name in schema.required_metadata
    }
    reason = pa.nulls(count, pa.string())
    for name in reversed(schema.required_metadata):
        reason = pc.if_else(missing_masks[name], f"{REASON_MISSING_METADATA}:{name}", reason)
    if isinstance(reason, pa.ChunkedArray):  # a metadata column built from several pieces
        reason = reason.combine_chunks()
    failed = pc.is_valid(reason)
    ok = pc.invert(failed)

    needed = ["message_id", "topic_name", "publish_time", "ingestion_ts"]
    if snapshot_column and snapshot_column in raw.column_names:
        needed.append(snapshot_column)
    base = raw.select(needed)  # not the payloads: taking them would copy every byte
    if count != raw.num_rows:
        base = base.take(kept_idx)
    out_names = [
        "message_id",
        IDEMPOTENCY_KEY,
        *sorted(t for t in metadata if t != IDEMPOTENCY_KEY),
        "topic_name",
        "publish_time",
        "ingestion_ts",
    ]
    arrays = []
    for name in out_names:
        if name in metadata:
            arrays.append(metadata[name])
        elif name in ("publish_time", "ingestion_ts"):
            arrays.append(base.column(name).cast(TS))
        else:
            arrays.append(base.column(name).cast(pa.string()))
    if snapshot_column and snapshot_column in raw.column_names:
        out_names.append(snapshot_column)
        arrays.append(base.column(snapshot_column))
    payload_names = sorted(payload)
    out_names += payload_names
    arrays += [payload[name] for name in payload_names]
    rows = pa.table(arrays, names=out_names)

    has_missing = bool(pc.any(failed).as_py())
    missing_idx = pa.array([], pa.int64())
    missing_reason = pa.array([], pa.string())
    missing_detail = pa.array([], pa.string())
    if has_missing:
        rows = rows.filter(ok)
        positions = pc.indices_nonzero(failed)
        missing_idx = kept_idx.take(positions)
        missing_reason = reason.take(positions)
        flags = {name: mask.take(positions).to_pylist() for name, mask in missing_masks.items()}
        missing_detail = pa.array(
            [
                "missing: " + ", ".join(name for name in flags if flags[name][j])
                for j in range(len(positions))
            ],
            pa.string(),
        )
    # a payload column exists when at least one Standardized row has a value for it
    empty = [name for name in payload_names if rows.column(name).null_count == rows.num_rows]
    if empty:
        rows = rows.drop_columns(empty)
        payload_names = [name for name in payload_names if name not in set(empty)]
    error_table = _error_table(
        raw, snapshot_column, errors, missing_idx, missing_reason, missing_detail
    )
    kept_names = set(payload_names)
    renamed = {k: v for k, v in sorted(sanitised.items()) if k in kept_names}
    return FlattenResult(rows, error_table, payload_names, renamed)


def _storable(payloads: pa.ChunkedArray) -> pa.Array:
    """Payloads as text a Parquet file can hold (bytes that are not UTF-8 as escapes)."""
    payloads = payloads.cast(pa.string()).combine_chunks()
    invalid = invalid_utf8(payloads)
    return payloads if invalid is None else readable_text(payloads, invalid)


def _error_table(
    raw: pa.Table,
    snapshot_column: str | None,
    errors: Sequence[tuple[int, str, str]],
    missing_idx: pa.Array,
    missing_reason: pa.Array,
    missing_detail: pa.Array,
) -> pa.Table:
    idx = pa.concat_arrays([pa.array([e[0] for e in errors], pa.int64()), missing_idx])
    reasons = pa.concat_arrays([pa.array([e[1] for e in errors], pa.string()), missing_reason])
    details = pa.concat_arrays(
        [pa.array([e[2] for e in errors], pa.string()), missing_detail]
    )
    order = pc.sort_indices(idx)
    idx, reasons, details = idx.take(order), reasons.take(order), details.take(order)
    needed = ["message_id", "topic_name", "json_payload", "publish_time", "ingestion_ts"]
    if snapshot_column and snapshot_column in raw.column_names:
        needed.append(snapshot_column)
    # a take on a chunked column concatenates its chunks first, even for zero indices:
    # with no error rows that would copy every payload of the increment for nothing
    raw = raw.select(needed)
    picked = raw.slice(0, 0) if len(idx) == 0 else raw.take(idx)
    snapshot = (
        picked.column(snapshot_column)
        if snapshot_column and snapshot_column in raw.column_names
        else pa.nulls(len(idx), pa.int64())
    )
    return pa.table(
        {
            "message_id": picked.column("message_id").cast(pa.string()),
            "topic_name": picked.column("topic_name").cast(pa.string()),
            "error_reason": reasons,
            "error_detail": details,
            "json_payload": _storable(picked.column("json_payload")),
            "raw_snapshot_id": snapshot,
            "publish_time": picked.column("publish_time").cast(TS),
            "ingestion_ts": picked.column("ingestion_ts").cast(TS),
        }
    )
