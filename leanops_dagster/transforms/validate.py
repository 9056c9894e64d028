"""Standardized rows -> typed Curated rows + CDE error rows (pure, vectorised).

Per curated column (value = the ``source`` Standardized column, absent = null):

1. ``not_null``: a null value of a ``cde`` column (``idempotency_key`` is always a CDE);
2. ``type_cast``: a non-null value that does not parse as the column type or lies outside
   what the type stores (see ``cast``: the accepted text and ranges per type), or is not
   valid UTF-8 (its ``offending_value`` shows the bytes as ``\\xNN`` escapes);
3. rules on non-null, cast values: ``regex`` (on the text), ``min``/``max``, ``allowed``
   (on the typed value), ``min_length``/``max_length``.

Total: every input gives a valid row or error/warning rows with one of ``RULE_ORDER``'s rule
names, never an exception (a rule bound that does not cast is rejected when the schema loads).

A failure on a ``cde`` column is an error row (``errors``) and excludes the row from ``valid``;
a row is counted once in ``failed_rows`` however many errors it has. A failure on a non-CDE
column is a ``warnings`` row: the value becomes null (then its ``default``) and the row stays.
``default`` fills null non-CDE values. Strict: Standardized columns that no curated column uses
(other than metadata/lineage) are not carried and are reported in ``drift_columns``.

Error/warning rows: ``message_id``, ``idempotency_key``, ``topic_name``, ``column_name``,
``rule``, ``offending_value``, ``error_detail``, ``publish_time`` and any lineage column of the
input (``standardized_snapshot_id``), ordered by input row, then schema column, then rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from leanops_dagster.constants import (
    IDEMPOTENCY_KEY,
    INGESTION_TS,
    LINEAGE_COLUMNS,
    MESSAGE_ID,
    PUBLISH_TIME,
    TOPIC_NAME,
)
from leanops_dagster.schemas.cast import cast_column, cast_literal
from leanops_dagster.schemas.models import CuratedColumn, CuratedSchema
from leanops_dagster.transforms.drift import drift_columns

TS = pa.timestamp("us", tz="UTC")
RULE_ORDER = (
    "not_null", "type_cast", "regex", "min", "max", "allowed", "min_length", "max_length"
)
ERROR_COLUMNS = (
    MESSAGE_ID, IDEMPOTENCY_KEY, TOPIC_NAME, "column_name", "rule", "offending_value",
    "error_detail", PUBLISH_TIME,
)


@dataclass(frozen=True)
class ValidationResult:
    valid: pa.Table
    errors: pa.Table
    warnings: pa.Table
    #: rows excluded from ``valid`` (each once, however many error rows it has)
    failed_rows: int
    drift_columns: list[str] = field(default_factory=list)
    defaults_applied: dict[str, int] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return self.errors.num_rows

    @property
    def rows_in(self) -> int:
        return self.valid.num_rows + self.failed_rows


@dataclass
class _Failure:
    column: int
    rule: str
    mask: pa.BooleanArray
    text: pa.Array
    detail: str


def _column_or_null(rows: pa.Table, name: str, kind: pa.DataType) -> pa.Array:
    if name in rows.column_names:
        return rows.column(name).combine_chunks()
    return pa.nulls(rows.num_rows, kind)


def _check_rules(
    index: int, column: CuratedColumn, text: pa.Array, typed: pa.Array, present: pa.Array
) -> list[_Failure]:
    rules = column.rules
    if rules.is_empty():
        return []
    failures: list[_Failure] = []

    def add(rule: str, bad: pa.Array, detail: str) -> None:
        bad = pc.and_(present, pc.fill_null(bad, False))
        if pc.any(bad).as_py():
            failures.append(_Failure(index, rule, bad, text, detail))

    if rules.regex is not None:
        matched = pc.match_substring_regex(text, pattern=rules.regex)
        add("regex", pc.invert(matched), f"does not match {rules.regex}")
    if rules.min is not None:
        bound = cast_literal(rules.min, column.type)
        add("min", pc.less(typed, bound), f"below min {rules.min}")
    if rules.max is not None:
        bound = cast_literal(rules.max, column.type)
        add("max", pc.greater(typed, bound), f"above max {rules.max}")
    if rules.allowed is not None:
        allowed = pa.array([cast_literal(v, column.type).as_py() for v in rules.allowed],
                           column.arrow_type)
        add("allowed", pc.invert(pc.is_in(typed, value_set=allowed)),
            f"not one of {list(rules.allowed)}")
    if rules.min_length is not None:
        add("min_length", pc.less(pc.utf8_length(text), rules.min_length),
            f"shorter than {rules.min_length}")
    if rules.max_length is not None:
        add("max_length", pc.greater(pc.utf8_length(text), rules.max_length),
            f"longer than {rules.max_length}")
    return failures


def validate_and_cast(
    rows: pa.Table, schema: CuratedSchema, *, topic: str | None = None
) -> ValidationResult:
    """Cast and check Standardized ``rows`` against ``schema``; see the module docstring."""
    n = rows.num_rows
    cde_failures: list[_Failure] = []
    warn_failures: list[_Failure] = []
    typed_columns: list[pa.Array] = []
    defaults: dict[str, int] = {}

    keys = _column_or_null(rows, IDEMPOTENCY_KEY, pa.string()).cast(pa.string())
    if keys.null_count:
        cde_failures.append(
            _Failure(-1, "not_null", pc.is_null(keys), keys, "idempotency_key is null")
        )
    key_cast = cast_column(keys, "string")  # a key that is not UTF-8 cannot be stored
    if key_cast.failure_count:
        keys = key_cast.text
        cde_failures.append(_Failure(-1, "type_cast", key_cast.failed, keys,
                                     "idempotency_key is not valid UTF-8"))

    for index, column in enumerate(schema.columns):
        text = _column_or_null(rows, column.source_column, pa.string())
        if not pa.types.is_string(text.type):
            text = text.cast(pa.string())
        cast = cast_column(text, column.type)
        text = cast.text  # the input, with any value that is not UTF-8 shown escaped
        typed = cast.values
        present = pc.is_valid(typed)
        failures: list[_Failure] = []
        if column.cde and text.null_count:
            failures.append(_Failure(index, "not_null", pc.is_null(text), text,
                                     f"{column.name} is a CDE and is null"))
        if cast.failure_count:
            failures.append(_Failure(index, "type_cast", cast.failed, text,
                                     f"not a valid {column.type}"))
        failures += _check_rules(index, column, text, typed, present)
        if column.cde:
            cde_failures += failures
        else:
            warn_failures += failures
            if failures:
                bad = failures[0].mask
                for failure in failures[1:]:
                    bad = pc.or_(bad, failure.mask)
                typed = pc.if_else(bad, pa.scalar(None, typed.type), typed)
            if column.default is not None and typed.null_count:
                defaults[column.name] = typed.null_count
                typed = pc.fill_null(typed, cast_literal(column.default, column.type))
        typed_columns.append(typed)

    failed_mask = _any(n, [f.mask for f in cde_failures])
    failed_rows = int(np.count_nonzero(failed_mask))
    lineage = [c for c in LINEAGE_COLUMNS if c in rows.column_names]
    meta = _metadata(rows, keys, topic)
    valid = pa.table(
        [*meta.values(), *(rows.column(c) for c in lineage), *typed_columns],
        names=[*meta, *lineage, *(c.name for c in schema.columns)],
    )
    if failed_rows:
        valid = valid.filter(pa.array(~failed_mask))
    names = [IDEMPOTENCY_KEY] + [c.name for c in schema.columns]
    return ValidationResult(
        valid=valid,
        errors=_failure_table(cde_failures, names, meta, rows, lineage),
        warnings=_failure_table(warn_failures, names, meta, rows, lineage),
        failed_rows=failed_rows,
        drift_columns=drift_columns(rows, schema),
        defaults_applied=defaults,
    )


def _any(n: int, masks: list[pa.BooleanArray]) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    for mask in masks:
        out |= mask.to_numpy(zero_copy_only=False)
    return out


def _metadata(rows: pa.Table, keys: pa.Array, topic: str | None) -> dict[str, pa.Array]:
    n = rows.num_rows
    topic_col = _column_or_null(rows, TOPIC_NAME, pa.string()).cast(pa.string())
    if topic is not None:
        topic_col = pc.fill_null(topic_col, topic)
    return {
        MESSAGE_ID: _column_or_null(rows, MESSAGE_ID, pa.string()).cast(pa.string()),
        IDEMPOTENCY_KEY: keys,
        TOPIC_NAME: topic_col,
        PUBLISH_TIME: _column_or_null(rows, PUBLISH_TIME, TS).cast(TS)
        if n else pa.array([], TS),
        INGESTION_TS: _column_or_null(rows, INGESTION_TS, TS).cast(TS)
        if n else pa.array([], TS),
    }


def _failure_table(
    failures: list[_Failure],
    names: list[str],
    meta: dict[str, pa.Array],
    rows: pa.Table,
    lineage: list[str],
) -> pa.Table:
    row_idx, col_idx, rule_idx, parts_text = [], [], [], []
    details: list[pa.Array] = []
    for failure in failures:
        positions = pc.indices_nonzero(failure.mask)
        k = len(positions)
        row_idx.append(positions)
        col_idx.append(np.full(k, failure.column + 1, dtype=np.int64))
        rule_idx.append(np.full(k, RULE_ORDER.index(failure.rule), dtype=np.int64))
        parts_text.append(failure.text.take(positions))
        details.append(pa.array([failure.detail] * k, pa.string()) if k else
                       pa.array([], pa.string()))
    schema = pa.schema(
        [pa.field(c, pa.string()) for c in ERROR_COLUMNS[:-1]]
        + [pa.field(PUBLISH_TIME, TS)]
        + [rows.schema.field(c) for c in lineage]
    )
    if not failures:
        return schema.empty_table()
    rows_at = pa.concat_arrays([p.cast(pa.int64()) for p in row_idx])
    cols_at = np.concatenate(col_idx)
    rules_at = np.concatenate(rule_idx)
    order = np.lexsort((rules_at, cols_at, rows_at.to_numpy()))
    rows_at = rows_at.take(pa.array(order))
    text = pa.concat_arrays(parts_text).take(pa.array(order))
    detail = pa.concat_arrays(details).take(pa.array(order))
    column_name = pa.array(np.array(names, dtype=object)[cols_at[order]], pa.string())
    rule = pa.array(np.array(RULE_ORDER, dtype=object)[rules_at[order]], pa.string())
    arrays = [
        meta[MESSAGE_ID].take(rows_at),
        meta[IDEMPOTENCY_KEY].take(rows_at),
        meta[TOPIC_NAME].take(rows_at),
        column_name,
        rule,
        text,
        detail,
        meta[PUBLISH_TIME].take(rows_at),
        *(rows.column(c).take(rows_at) for c in lineage),
    ]
    return pa.Table.from_arrays(arrays, schema=schema)
