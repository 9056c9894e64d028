"""The safety net of a layer run: rows that make it raise are quarantined, not retried forever.

A rule that does not foresee some input (a timestamp whose UTC instant is in year 10000, a
value pyiceberg cannot put into Parquet statistics) used to fail every run of its topic: the
same increment was read again and raised again, and good rows behind it never moved. AWS's
answer in Lambda is ``BisectBatchOnFunctionError``; this is the same idea for a layer run:

1. The good path costs nothing: the layer runs as before. ``SafetyNet.exclude`` hands it the
   increment unchanged and remembers it as the rows this attempt is working on.
2. When the attempt raises a *row fault* (``is_row_fault``: ValueError, OverflowError,
   TypeError, ArrowInvalid, UnicodeError, RecursionError, ...; never an OSError, MemoryError,
   pyiceberg catalog exception or SQLAlchemy error) the net asks a *probe*, a pure function of
   some input rows: the layer's own rules function (``transforms.rules``: what the layer
   calls, so a rule added there is probed too) and their data files built in memory
   (``build_data_files``, Parquet and pyiceberg statistics included, nothing stored). The
   bisection and that in-memory build are all the net adds.
   A row is quarantined exactly when the probe fails on that row alone; ``isolate`` finds
   those rows by bisection in O(k log n) probes for k such rows among n (about 1.5 log2 n
   per row, most of them on small ranges).
3. The quarantined rows go to the layer's error table (``parse_errors`` for Standardized,
   curated ``errors`` for Curated) with reason/rule ``internal:<ExceptionClass>`` and the
   exception's message, in one append that skips rows the table already holds (a crash
   between that append and the layer's commit must not record them twice). Then the attempt
   runs again without them and commits everything else with the watermark as usual; the
   layer counts them as its own term of the accountability equation (``quarantined``).

A fault the probe does not reproduce (it needs the stored table, or no single row causes it)
is not a row fault: the run fails with the original exception, as does every catalog or
storage fault (retryable, nothing committed half way). Each round must quarantine new rows
and there are at most ``max_rounds``: never an endless retry of the same increment.

The Spark engine applies the rules batch by batch in its workers, where no attempt can be
rerun as a whole: ``guard_batch`` is the same net for one batch (``isolate`` with the rules as
the probe, the same reasons), and the driver records the quarantined rows it returns with the
same route (``ErrorRoute.record_rows``).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import And, EqualTo, StartsWith
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.metadata import new_table_metadata
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER

from leanops_dagster.constants import (
    IDEMPOTENCY_KEY,
    INGESTION_TS,
    JSON_PAYLOAD,
    MESSAGE_ID,
    PUBLISH_TIME,
    TOPIC_NAME,
    Count,
    count_properties,
    curated_partition_spec,
    publish_day_spec,
)
from leanops_dagster.iceberg._pyiceberg_internals import DiscardingIO
from leanops_dagster.iceberg.catalog import ensure_table, schema_from_arrow
from leanops_dagster.iceberg.commit import retry_commit
from leanops_dagster.iceberg.datafiles import refuse_nulls, write_data_files
from leanops_dagster.iceberg.tables import (
    CURATED_ERRORS_PARTITION_SPEC,
    CURATED_ERRORS_SCHEMA,
    PARSE_ERRORS_PARTITION_SPEC,
    PARSE_ERRORS_SCHEMA,
)
from leanops_dagster.pipeline.increments import with_recorded_ts
from leanops_dagster.pipeline.layout import Identifier, TopicTables
from leanops_dagster.pipeline.standardized_evolution import stored_schema
from leanops_dagster.schemas.models import TopicSchema
from leanops_dagster.transforms import rules

log = logging.getLogger(__name__)
R = TypeVar("R")

#: prefix of the reason (Standardized) / rule (Curated) of a quarantined row
INTERNAL_PREFIX = "internal:"
#: the ``column_name`` of a quarantined curated error row: the whole row, no single column
WHOLE_ROW = "*"
#: longest exception message kept in ``error_detail``
MAX_DETAIL = 2_000

_ROW_FAULTS = (ArithmeticError, ValueError, TypeError, LookupError, RecursionError,
               pa.ArrowException)
_INFRA_FAULTS = (OSError, MemoryError)


def is_row_fault(exc: BaseException) -> bool:
    """Whether ``exc`` may come from the rows being transformed or written (then the net
    probes for culprits), rather than from the catalog or the storage (then the run fails)."""
    if isinstance(exc, _INFRA_FAULTS) or not isinstance(exc, _ROW_FAULTS):
        return False
    # pyiceberg's catalog exceptions and SQLAlchemy's derive from Exception only; checked by
    # module so a catalog error that ever derives from ValueError is still not a row fault
    module = type(exc).__module__
    return not module.startswith(("pyiceberg.exceptions", "sqlalchemy", "botocore"))


def _fails(probe: Callable[[pa.Table], object], rows: pa.Table) -> Exception | None:
    try:
        probe(rows)
    except Exception as exc:  # the probe is pure: whatever it raises is data
        if isinstance(exc, _INFRA_FAULTS):
            raise
        return exc
    return None


def isolate(
    rows: pa.Table, probe: Callable[[pa.Table], object]
) -> list[tuple[int, Exception]]:
    """Positions of the rows on which ``probe`` fails alone, each with that exception, in
    order. ``rows`` are known to fail together (the attempt just raised on them).

    Bisection of a failing range: probe its left half; if that passes, the right half must
    hold the fault (a row-local fault fails every range containing its row) and is split
    without a probe of its own, else the right half is probed too. A row is only reported
    after the probe failed on it alone, so a fault of rows together (every single row passes)
    or of no row at all (the probe fails without rows) yields nothing. Costs about
    1.5 log2(n) probes per culprit, most of them on small ranges."""
    if rows.num_rows == 0 or _fails(probe, rows.slice(0, 0)) is not None:
        return []  # fails without rows: not caused by a row
    culprits: list[tuple[int, Exception]] = []
    # (start, stop, the exception of probing exactly this range, or None if only inferred)
    pending: list[tuple[int, int, Exception | None]] = [(0, rows.num_rows, None)]
    while pending:
        start, stop, error = pending.pop()
        if stop - start == 1:
            error = error or _fails(probe, rows.slice(start, 1))
            if error is not None:
                culprits.append((start, error))
            continue
        middle = (start + stop) // 2
        left = _fails(probe, rows.slice(start, middle - start))
        if left is None:  # the fault is on the right
            pending.append((middle, stop, None))
            continue
        right = _fails(probe, rows.slice(middle, stop - middle))
        if right is not None:
            pending.append((middle, stop, right))
        pending.append((start, middle, left))  # popped first: culprits come left to right
    return sorted(culprits, key=lambda c: c[0])


@dataclass(frozen=True)
class Quarantined:
    """Input rows the net took out of the increment, with why (parallel lists)."""

    rows: pa.Table
    reasons: list[str]
    details: list[str]


def _describe(exc: Exception) -> tuple[str, str]:
    detail = f"{type(exc).__name__}: {exc}"
    return f"{INTERNAL_PREFIX}{type(exc).__name__}", detail[:MAX_DETAIL]


def _quarantine(rows: pa.Table, culprits: list[tuple[int, Exception]]) -> Quarantined:
    """The ``culprits`` of ``isolate`` among ``rows``, each with its reason and detail."""
    described = [_describe(e) for _, e in culprits]
    return Quarantined(
        rows.take(pa.array([p for p, _ in culprits], pa.int64())),
        [r for r, _ in described], [d for _, d in described],
    )


def guard_batch(
    rows: pa.Table, rules: Callable[[pa.Table], R]
) -> tuple[R, Quarantined | None]:
    """The net of one batch, for an engine that applies the rules batch by batch where no
    attempt can be rerun as a whole (the Spark engine's ``mapInArrow`` functions):
    ``rules(rows)``; when that raises a row fault, the rows on which ``rules`` fails alone
    (``isolate``, with ``rules`` as the probe) are taken out, described as ``SafetyNet``
    describes them (``internal:<Exception>`` and its message), and the rules run again over
    the rest. A fault no single row reproduces, or one the rest still raises, is raised.

    The same row gives the same reason as on the Arrow engine, where the probe applies the
    same rules to it alone. (The Arrow net's probe also builds the data files; on Spark the
    rows are written by Spark's own writer, outside this net.)"""
    try:
        return rules(rows), None
    except Exception as exc:
        if not is_row_fault(exc):
            raise
        culprits = isolate(rows, rules)
        if not culprits:
            raise  # not reproduced row by row: not a row fault
    quarantined = _quarantine(rows, culprits)
    taken = np.zeros(rows.num_rows, dtype=bool)
    taken[[p for p, _ in culprits]] = True
    return rules(rows.filter(pa.array(~taken))), quarantined


class SafetyNet:
    """One layer run's net; see the module docstring.

    ``key_columns`` identify an input row (used to take quarantined rows out of the next
    attempt's increment, which is read again); ``probe`` is the pure stand-in of the layer's
    transform + write for some input rows; ``record`` appends quarantined rows to the error
    table (``ErrorRoute.record``).
    """

    def __init__(
        self,
        *,
        key_columns: Sequence[str],
        probe: Callable[[pa.Table], object],
        record: Callable[[Quarantined], int],
        max_rounds: int = 3,
    ) -> None:
        self.key_columns = tuple(key_columns)
        self.probe = probe
        self.record = record
        self.max_rounds = max_rounds
        self._keys: set[tuple] = set()
        self._armed: pa.Table | None = None

    def exclude(self, rows: pa.Table) -> tuple[pa.Table, pa.Table]:
        """``rows`` without the quarantined ones, and the quarantined ones; arms the net with
        the kept rows (what the attempt transforms and writes). Costs nothing until a row has
        been quarantined."""
        if not self._keys:
            self._armed = rows
            return rows, rows.slice(0, 0)
        first = self.key_columns[0]
        candidates = pc.is_in(rows.column(first),
                              value_set=pa.array(sorted({k[0] for k in self._keys})))
        hit = [
            bool(candidate) and tuple(rows.column(c)[i].as_py() for c in self.key_columns)
            in self._keys
            for i, candidate in enumerate(candidates.to_pylist())
        ]
        mask_hit = pa.array(hit, pa.bool_())
        kept = rows.filter(pc.invert(mask_hit))
        self._armed = kept
        return kept, rows.filter(mask_hit)

    def run(self, attempt: Callable[[], R]) -> R:
        """Run ``attempt`` (a whole read-transform-commit of the layer, which calls
        ``exclude`` on the increment it read); on a row fault, quarantine the culprits and run
        it again, at most ``max_rounds`` times."""
        for round_ in range(1, self.max_rounds + 1):
            self._armed = None
            try:
                return attempt()
            except Exception as exc:
                armed = self._armed
                if armed is None or not is_row_fault(exc) or round_ == self.max_rounds:
                    raise
                culprits = isolate(armed, self.probe)
                if not culprits:
                    raise  # not reproduced row by row: not a row fault
                quarantined = _quarantine(armed, culprits)
                taken = quarantined.rows
                # the error table is shared by every topic: a conflict with another topic's
                # commit is retried (``record`` reloads it and skips rows already held)
                recorded = retry_commit(functools.partial(self.record, quarantined))
                log.warning(
                    "safety net: %d row(s) quarantined (%d newly recorded) after %s: %s",
                    taken.num_rows, recorded, type(exc).__name__, exc,
                )
                self._keys |= {
                    tuple(taken.column(c)[i].as_py() for c in self.key_columns)
                    for i in range(taken.num_rows)
                }
        raise AssertionError("unreachable: the last round returns or raises")


# --- in-memory data files (the write half of a probe) ---------------------------------------
def build_data_files(rows: pa.Table, schema: Schema, spec: PartitionSpec) -> None:
    """Write ``rows`` as the data files (Parquet + pyiceberg statistics + partition values) a
    table of ``schema`` and ``spec`` would get, in memory, and drop them."""
    metadata = new_table_metadata(schema, spec, UNSORTED_SORT_ORDER, "memory://probe")
    target = metadata.schema().as_arrow()
    columns = []
    for target_field in target:
        if target_field.name in rows.column_names:
            column = rows.column(target_field.name)
            refuse_nulls(target_field, column)  # as the MERGE refuses
            columns.append(column.cast(target_field.type))
        else:
            columns.append(pa.nulls(rows.num_rows, target_field.type))
    conformed = pa.Table.from_arrays(columns, schema=target)
    write_data_files(metadata, DiscardingIO(), conformed)


# --- the two layers --------------------------------------------------------------------------
def standardized_probe(schema: TopicSchema, snapshot_column: str) -> Callable[[pa.Table], None]:
    """The Standardized rules (``transforms.rules.standardize_rules``) and the data files
    Standardized would store of some RAW rows."""
    def probe(raw_rows: pa.Table) -> None:
        ruled = rules.standardize_rules(
            raw_rows, schema.standardized, snapshot_column=snapshot_column)
        assert ruled.deduped is not None
        rows = ruled.deduped.rows.drop_columns([snapshot_column])
        iceberg_schema = schema_from_arrow(stored_schema(rows.schema))
        build_data_files(rows, iceberg_schema, publish_day_spec(iceberg_schema))
    return probe


def curated_probe(
    schema: TopicSchema, topic: str, pii_key: bytes
) -> Callable[[pa.Table], None]:
    """The Curated rules (``transforms.rules.curate_rules``) and the data files Curated would
    store of some Standardized rows."""
    @functools.cache
    def table_layout() -> tuple[Schema, PartitionSpec]:  # on the first probe, not per run
        iceberg_schema = schema_from_arrow(schema.curated.arrow_schema())
        return iceberg_schema, curated_partition_spec(iceberg_schema)

    def probe(std_rows: pa.Table) -> None:
        ruled = rules.curate_rules(std_rows, schema.curated, topic=topic, pii_key=pii_key)
        build_data_files(ruled.rows, *table_layout())
    return probe


@dataclass(frozen=True)
class ErrorRoute:
    """Where a layer's quarantined rows go: its error table, and how they look there."""

    catalog: Catalog
    identifier: Identifier
    schema: Schema
    spec: PartitionSpec
    topic: str
    reason_column: str  # ``error_reason`` (parse_errors) or ``rule`` (curated errors)
    snapshot_column: str
    build: Callable[[Quarantined], pa.Table]
    now: dt.datetime

    def record(self, quarantined: Quarantined) -> int:
        """Append the rows the table does not hold yet (same message_id and upstream
        snapshot, an ``internal:`` reason), in one snapshot; return how many."""
        return self.record_rows(self.build(quarantined))

    def record_rows(self, rows: pa.Table) -> int:
        """``record`` of rows already built as error rows (``build``; the Spark engine builds
        them in its workers)."""
        table = ensure_table(self.catalog, self.identifier, self.schema, self.spec)
        if table.current_snapshot() is not None:
            held = table.scan(
                row_filter=And(EqualTo(TOPIC_NAME, self.topic),
                               StartsWith(self.reason_column, INTERNAL_PREFIX)),
                selected_fields=(MESSAGE_ID, self.snapshot_column),
            ).to_arrow()
            known = set(zip(held.column(MESSAGE_ID).to_pylist(),
                            held.column(self.snapshot_column).to_pylist(), strict=True))
            if known:
                new = [(m, s) not in known for m, s in zip(
                    rows.column(MESSAGE_ID).to_pylist(),
                    rows.column(self.snapshot_column).to_pylist(), strict=True)]
                rows = rows.filter(pa.array(new, pa.bool_()))
        if rows.num_rows == 0:
            return 0
        arrow = table.schema().as_arrow()
        table.append(
            with_recorded_ts(rows, self.now).select(arrow.names).cast(arrow),
            snapshot_properties=count_properties({Count.QUARANTINED: rows.num_rows}),
        )
        return rows.num_rows


def parse_errors_route(
    catalog: Catalog, tables: TopicTables, snapshot_column: str, now: dt.datetime
) -> ErrorRoute:
    """Quarantined RAW rows as ``parse_errors`` rows (``parse_error_rows``)."""
    build = functools.partial(parse_error_rows, topic=tables.topic,
                              snapshot_column=snapshot_column)
    return ErrorRoute(catalog, tables.parse_errors, PARSE_ERRORS_SCHEMA,
                      PARSE_ERRORS_PARTITION_SPEC, tables.topic, "error_reason",
                      snapshot_column, build, now)


def parse_error_rows(q: Quarantined, *, topic: str, snapshot_column: str) -> pa.Table:
    """Quarantined RAW rows as ``parse_errors`` rows: the payload as received, the reason
    ``internal:<Exception>``, the exception's message (no ``recorded_ts`` yet)."""
    rows = q.rows
    return pa.table({
        MESSAGE_ID: rows.column(MESSAGE_ID),
        TOPIC_NAME: pa.array([topic] * rows.num_rows, pa.string()),
        "error_reason": pa.array(q.reasons, pa.string()),
        "error_detail": pa.array(q.details, pa.string()),
        JSON_PAYLOAD: rows.column(JSON_PAYLOAD),
        snapshot_column: rows.column(snapshot_column),
        PUBLISH_TIME: rows.column(PUBLISH_TIME),
        INGESTION_TS: rows.column(INGESTION_TS),
    })


def curated_errors_route(
    catalog: Catalog, tables: TopicTables, snapshot_column: str, now: dt.datetime
) -> ErrorRoute:
    """Quarantined Standardized rows as curated ``errors`` rows (``curated_error_rows``)."""
    build = functools.partial(curated_error_rows, topic=tables.topic,
                              snapshot_column=snapshot_column)
    return ErrorRoute(catalog, tables.curated_errors, CURATED_ERRORS_SCHEMA,
                      CURATED_ERRORS_PARTITION_SPEC, tables.topic, "rule", snapshot_column,
                      build, now)


def curated_error_rows(q: Quarantined, *, topic: str, snapshot_column: str) -> pa.Table:
    """Quarantined Standardized rows as curated ``errors`` rows: column ``*`` (the row), rule
    ``internal:<Exception>``, the exception's message (no ``recorded_ts`` yet); the row itself
    stays in Standardized."""
    rows = q.rows
    n = rows.num_rows
    return pa.table({
        MESSAGE_ID: rows.column(MESSAGE_ID),
        IDEMPOTENCY_KEY: rows.column(IDEMPOTENCY_KEY) if IDEMPOTENCY_KEY in
        rows.column_names else pa.nulls(n, pa.string()),
        TOPIC_NAME: pa.array([topic] * n, pa.string()),
        "column_name": pa.array([WHOLE_ROW] * n, pa.string()),
        "rule": pa.array(q.reasons, pa.string()),
        "offending_value": pa.nulls(n, pa.string()),
        "error_detail": pa.array(q.details, pa.string()),
        snapshot_column: rows.column(snapshot_column),
        PUBLISH_TIME: rows.column(PUBLISH_TIME),
    })


#: what identifies an input row across attempts (the increment is read again each time)
RAW_ROW_KEY = (MESSAGE_ID, INGESTION_TS, JSON_PAYLOAD)
STANDARDIZED_ROW_KEY = (MESSAGE_ID,)


def standardized_net(
    catalog: Catalog, tables: TopicTables, schema: TopicSchema, snapshot_column: str,
    now: dt.datetime,
) -> SafetyNet:
    """The net of a RAW -> Standardized run (RAW rows in, ``parse_errors`` rows out)."""
    return SafetyNet(
        key_columns=(*RAW_ROW_KEY, snapshot_column),
        probe=standardized_probe(schema, snapshot_column),
        record=parse_errors_route(catalog, tables, snapshot_column, now).record,
    )


def curated_net(
    catalog: Catalog, tables: TopicTables, schema: TopicSchema, snapshot_column: str,
    pii_key: bytes, now: dt.datetime,
) -> SafetyNet:
    """The net of a Standardized -> Curated run (Standardized rows in, curated ``errors``
    rows out)."""
    return SafetyNet(
        key_columns=(*STANDARDIZED_ROW_KEY, snapshot_column),
        probe=curated_probe(schema, tables.topic, pii_key),
        record=curated_errors_route(catalog, tables, snapshot_column, now).record,
    )
