"""Each layer's rules as one pure function of Arrow rows.

``standardize_rules`` (RAW -> Standardized) and ``curate_rules`` (Standardized -> Curated) are
the one sequence of a layer's rules. The Arrow layer bodies (``pipeline.standardize``,
``pipeline.curate``), the safety net's probes (``pipeline.quarantine``) and the Spark engine's
per-batch step (``engines.spark.standardize``, ``engines.spark.curate``, with ``fifo=False`` /
``lifo=False``: Spark applies the dedup as a window over all batches, ordered by
``transforms.ordering``) all call them, so a rule added here is applied, probed and
quarantined everywhere without touching any of them.

What a caller supplies is only what needs storage: the rows the layer has not consumed yet
(``unconsumed``) and, for FIFO, the message ids already stored (``stored_ids``); and, on
Spark, the rule functions as its driver resolved them (``flatten_rows``, ``validate_and_cast``,
``mask_pii``; None: the modules' own, looked up at the call), which travel to its workers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pyarrow as pa

from leanops_dagster.constants import IDEMPOTENCY_KEY, LINEAGE_COLUMNS
from leanops_dagster.schemas.models import CuratedSchema, StandardizedSchema
from leanops_dagster.transforms import dedup, flatten, mask, validate

Rows = Callable[[pa.Table], pa.Table]


@dataclass(frozen=True)
class StandardizedRows:
    """What the Standardized rules make of some RAW rows."""

    #: every input row flattened (``rows``), or a parse error (``errors``)
    flattened: flatten.FlattenResult
    #: the unconsumed flattened rows after FIFO on ``message_id`` (None: ``fifo=False``)
    deduped: dedup.FifoResult | None


def standardize_rules(
    raw_rows: pa.Table,
    schema: StandardizedSchema,
    *,
    snapshot_column: str,
    fifo: bool = True,
    unconsumed: Rows | None = None,
    stored_ids: Callable[[pa.Table], pa.Array | pa.ChunkedArray] | None = None,
    snapshot_order: Mapping[int, int] | None = None,
    flatten_rows: Callable[..., flatten.FlattenResult] | None = None,
) -> StandardizedRows:
    """RAW rows -> Standardized rows: flatten (parse errors apart, ``flatten_rows``: the
    tuned ``process_tuning.flatten_increment`` or ``flatten.flatten_raw``), then keep the rows
    ``unconsumed`` selects and FIFO on ``message_id`` among them and against
    ``stored_ids(rows)`` (``transforms.dedup.fifo_dedup``, in ``snapshot_order``)."""
    flatten_rows = flatten_rows or flatten.flatten_raw
    flattened = flatten_rows(raw_rows, schema, snapshot_column=snapshot_column)
    if not fifo:
        return StandardizedRows(flattened, None)
    rows = unconsumed(flattened.rows) if unconsumed is not None else flattened.rows
    deduped = dedup.fifo_dedup(
        rows, existing_ids=stored_ids(rows) if stored_ids is not None else None,
        snapshot_column=snapshot_column, snapshot_order=snapshot_order,
    )
    return StandardizedRows(flattened, deduped)


@dataclass(frozen=True)
class CuratedRows:
    """What the Curated rules make of some Standardized rows."""

    #: CDE error rows of every input row
    errors: pa.Table
    #: columns the rows carry that the Curated schema does not know (the drift log)
    drift_columns: list[str]
    #: valid rows among the unconsumed ones
    valid: int
    #: the valid unconsumed rows, masked; with ``lifo``: the newest per key, without lineage
    rows: pa.Table
    #: rows that lost to a newer row of their key within these rows (``lifo``)
    superseded: int = 0


def curate_rules(
    std_rows: pa.Table,
    schema: CuratedSchema,
    *,
    topic: str,
    pii_key: bytes,
    lifo: bool = True,
    unconsumed: Rows | None = None,
    validate_and_cast: Callable[..., validate.ValidationResult] | None = None,
    mask_pii: Callable[..., pa.Table] | None = None,
) -> CuratedRows:
    """Standardized rows -> Curated rows: validate the CDEs and cast
    (``transforms.validate``), keep the valid rows ``unconsumed`` selects, mask PII
    (``transforms.mask``), then, with ``lifo``, drop the lineage columns (Curated stores
    none) and keep the newest row per ``idempotency_key`` (``transforms.dedup.lifo_dedup``)."""
    validate_and_cast = validate_and_cast or validate.validate_and_cast
    mask_pii = mask_pii or mask.mask_pii
    checked = validate_and_cast(std_rows, schema, topic=topic)
    valid = unconsumed(checked.valid) if unconsumed is not None else checked.valid
    errors, drift_columns, count = checked.errors, list(checked.drift_columns), valid.num_rows
    del checked  # the valid rows are the memory peak: hold one copy
    if not lifo:
        masked = mask_pii(valid, schema, pii_key)
        return CuratedRows(errors, drift_columns, count, masked)
    lineage = [c for c in LINEAGE_COLUMNS if c in valid.column_names]
    masked = mask_pii(valid.drop_columns(lineage), schema, pii_key)
    del valid
    winners = dedup.lifo_dedup(masked, key=IDEMPOTENCY_KEY, sequence=schema.sequence)
    return CuratedRows(errors, drift_columns, count, winners.rows, winners.superseded)
