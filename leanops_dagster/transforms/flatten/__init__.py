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

The payload columns come from a ``payload.Flattener``: ``payload.ReferenceFlattener`` (record
by record, the definition) or ``shapes.FastFlattener`` (vectorised, the same output for every
input), chosen in one place, ``new_flattener``. Pure: no process pool, no GC or allocator
tuning here (``process_tuning.flatten_increment`` adds them for the layer runs); the Spark engine
calls ``flatten_raw`` on its workers as is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from leanops_dagster.constants import IDEMPOTENCY_KEY
from leanops_dagster.schemas.models import StandardizedSchema
from leanops_dagster.schemas.text import invalid_utf8, readable_text
from leanops_dagster.transforms.flatten.naming import ColumnNamer
from leanops_dagster.transforms.flatten.payload import (
    MAX_DEPTH,
    REASON_INVALID_JSON,
    Columns,
    Flattener,
    ReferenceFlattener,
)
from leanops_dagster.transforms.flatten.shapes import FastFlattener

REASON_MISSING_METADATA = "missing_required_metadata"

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
__all__ = [
    "MAX_DEPTH",
    "PARSE_ERROR_COLUMNS",
    "FlattenResult",
    "concat_results",
    "flatten_raw",
    "new_flattener",
]


@dataclass(frozen=True)
class FlattenResult:
    rows: pa.Table
    errors: pa.Table
    #: payload columns seen in this increment (sorted); drift is judged against these
    columns: list[str]
    #: columns whose name was sanitised or disambiguated -> original key path (JSON)
    sanitised: dict[str, str] = field(default_factory=dict)


def new_flattener(*, reference: bool = False) -> Flattener:
    """The implementation of the payload columns: the fast one unless ``reference``."""
    return ReferenceFlattener() if reference else FastFlattener()


def flatten_raw(
    raw: pa.Table,
    schema: StandardizedSchema,
    *,
    snapshot_column: str | None = "raw_snapshot_id",
    reference: bool = False,
) -> FlattenResult:
    """Flatten RAW rows per ``schema``; see the module docstring for the exact output, which
    does not depend on ``reference`` (``new_flattener``) nor on how the rows are split
    (``concat_results``)."""
    namer = ColumnNamer(schema.metadata_targets)
    payloads, errors = _text_payloads(raw.column("json_payload"))
    columns = new_flattener(reference=reference).flatten(payloads, namer)
    kept = columns.kept_rows()
    sanitised = dict(columns.renamed)
    for path, name in namer.cache.items():
        if name != "_".join(path).lower():
            sanitised.setdefault(name, json.dumps(list(path), ensure_ascii=False))
    built = _columns_of(columns, kept)
    return _assemble(
        raw, schema, snapshot_column, built, kept, len(kept), errors + columns.errors, sanitised
    )


def concat_results(parts: Sequence[FlattenResult]) -> FlattenResult:
    """The result of flattening the concatenated RAW rows of ``parts`` (in order) at once."""
    rows = pa.concat_tables([p.rows for p in parts], promote_options="default")
    payload = sorted({c for p in parts for c in p.columns})
    meta = [c for c in rows.column_names if c not in set(payload)]
    errors = pa.concat_tables([p.errors for p in parts])
    sanitised = dict(sorted({k: v for p in parts for k, v in p.sanitised.items()}.items()))
    return FlattenResult(rows.select(meta + payload), errors, payload, sanitised)


def _text_payloads(
    column: pa.ChunkedArray | pa.Array,
) -> tuple[pa.ChunkedArray, list[tuple[int, str, str]]]:
    """The payloads with the bytes that are not UTF-8 nulled (a parse error, not a value: no
    implementation may read them), and the parse errors of the null ones."""
    if isinstance(column, pa.Array):  # pragma: no cover - a Table column is chunked
        column = pa.chunked_array([column])
    not_text = _not_utf8_rows(column)
    if len(not_text):
        mask = np.zeros(len(column), dtype=bool)
        mask[not_text] = True
        column = pc.if_else(pa.array(mask), pa.scalar(None, column.type), column)
    if not column.null_count:
        return column, []
    unreadable = frozenset(not_text.tolist())
    nulls = np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False)).tolist()
    return column, [
        (
            i,
            REASON_INVALID_JSON,
            "payload is not valid UTF-8" if i in unreadable else "payload is null",
        )
        for i in nulls
    ]


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


def _columns_of(columns: Columns, kept: np.ndarray) -> dict[str, pa.Array | pa.ChunkedArray]:
    """Each payload column over the output rows (the RAW rows ``kept``, ascending)."""
    count = len(kept)
    position_of = None  # RAW row -> output row, unless every row up to the last is kept
    if count and kept[-1] != count - 1:
        position_of = np.zeros(int(kept[-1]) + 1, dtype=np.int64)
        position_of[kept] = np.arange(count, dtype=np.int64)
    built: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name, pieces in columns.values.items():
        positions = np.concatenate(columns.rows[name])
        if position_of is not None:
            positions = position_of[positions]
        if len(positions) == count and np.array_equal(positions, np.arange(count)):
            # the pieces are the rows in order: no copy
            built[name] = pieces[0] if len(pieces) == 1 else pa.chunked_array(pieces, pa.string())
            continue
        values = pa.concat_arrays(pieces) if len(pieces) > 1 else pieces[0]
        index = np.full(count, -1, dtype=np.int64)
        index[positions] = np.arange(len(positions), dtype=np.int64)
        built[name] = values.take(pa.array(index, mask=index < 0))
    return built


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
        name: pc.fill_null(pc.equal(metadata[name], ""), True) for name in schema.required_metadata
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
    details = pa.concat_arrays([pa.array([e[2] for e in errors], pa.string()), missing_detail])
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
