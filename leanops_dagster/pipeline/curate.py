"""Standardized -> Curated for one topic: validate, cast, mask, LIFO, MERGE, with watermark.

Commits, each with its own watermark (crash-safe, see ``standardize``):
1. curated ``errors`` rows (CDE failures) of Standardized snapshots after that watermark;
2. ``curated.<topic>``: the partition-scoped copy-on-write MERGE on ``idempotency_key`` plus
   the Standardized watermark and running totals, in one transaction.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import EqualTo
from pyiceberg.table import Table

from leanops_dagster.constants import (
    CURATED_ZONE,
    IDEMPOTENCY_KEY,
    SCHEMA_VERSION_PROPERTY,
    STANDARDIZED_SNAPSHOT_FROM_PROPERTY,
    STANDARDIZED_SNAPSHOT_ID,
    STD_WATERMARK,
    TOPIC_NAME,
    Count,
    curated_partition_spec,
    errors_watermark_name,
)
from leanops_dagster.iceberg.catalog import ensure_table, schema_from_arrow
from leanops_dagster.iceberg.commit import ensure_unchanged
from leanops_dagster.iceberg.key_index import carried_property
from leanops_dagster.iceberg.lease import DEFAULT_TTL_S
from leanops_dagster.iceberg.merge import MergeStats, merge_lifo
from leanops_dagster.iceberg.state import append_with_state
from leanops_dagster.iceberg.tables import (
    CURATED_ERRORS_PARTITION_SPEC,
    CURATED_ERRORS_SCHEMA,
    DRIFT_LOG_PARTITION_SPEC,
    DRIFT_LOG_SCHEMA,
)
from leanops_dagster.pipeline import quarantine
from leanops_dagster.pipeline.curated_evolution import conform_curated_table
from leanops_dagster.pipeline.increments import record_error_rows, with_recorded_ts
from leanops_dagster.pipeline.layer_run import Layer, LayerRead, Opened, held, run_layer
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.process_tuning import prepare_for_increments
from leanops_dagster.schemas.models import TopicSchema
from leanops_dagster.transforms import drift, rules

#: drift-log appends retried on their own (other topics' commits to the shared log)
_DRIFT_LOG_ATTEMPTS = 20


#: this run's figures in the Curated commit's summary, and those with a running total
CURATED_FIGURES = (Count.ROWS_READ, Count.INSERTED, Count.UPDATED, Count.SUPERSEDED,
                   Count.CDE_ERROR_ROWS, Count.QUARANTINED)
CURATED_TOTALS = (Count.ROWS_READ, Count.UPDATED, Count.SUPERSEDED, Count.CDE_ERROR_ROWS,
                  Count.QUARANTINED)


@dataclass
class CurateResult:
    topic: str
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    superseded: int = 0
    cde_error_rows: int = 0
    cde_errors: int = 0
    watermark_from: int | None = None
    watermark_to: int | None = None
    snapshot_id: int | None = None
    drift_columns: list[str] = field(default_factory=list)
    #: the MERGE's cost: files its lookup read, files rewritten (copy-on-write), their rows
    files_read: int = 0
    files_rewritten: int = 0
    rows_rewritten: int = 0
    #: rows the safety net routed to curated ``errors`` with reason ``internal:<Exception>``
    quarantined: int = 0
    #: set when another run holds this topic's Curated lease: this run did nothing
    busy: str | None = None

    @property
    def balanced(self) -> bool:
        """Curated accountability:
        Standardized = inserts + updates + superseded + CDE errors + quarantined."""
        return self.rows_read == (
            self.inserted + self.updated + self.superseded + self.cde_error_rows
            + self.quarantined
        )

    @property
    def cde_error_rate(self) -> float:
        return self.cde_error_rows / self.rows_read if self.rows_read else 0.0

    def count_read(self, *, rows_read: int, quarantined: int, cde_errors: int, valid: int) -> None:
        """The figures of what this run read (both engines): ``rows_read`` Standardized rows
        (quarantined ones included), ``cde_errors`` error rows, ``valid`` rows that passed;
        each failing row counts once in ``cde_error_rows``."""
        self.rows_read, self.quarantined, self.cde_errors = rows_read, quarantined, cde_errors
        self.cde_error_rows = rows_read - quarantined - valid

    def count_merged(self, *, inserted: int, updated: int, superseded: int, stale: int) -> None:
        """The figures of the MERGE (both engines): rows ``inserted`` and ``updated``; rows that
        lost to a newer row of the increment (``superseded``) or to the stored row (``stale``)
        are both superseded."""
        self.inserted, self.updated = inserted, updated
        self.superseded = superseded + stale


def curated_layer(
    catalog: Catalog, tables: TopicTables, schema: TopicSchema
) -> Layer[CurateResult]:
    """Standardized -> Curated of one topic for ``layer_run`` (both engines)."""
    return Layer(
        zone=CURATED_ZONE, topic=tables.topic, upstream=tables.standardized,
        table=tables.curated, errors=tables.curated_errors,
        errors_schema=CURATED_ERRORS_SCHEMA, errors_spec=CURATED_ERRORS_PARTITION_SPEC,
        watermark=STD_WATERMARK, errors_watermark=errors_watermark_name(tables.topic),
        snapshot_column=STANDARDIZED_SNAPSHOT_ID, from_property=STANDARDIZED_SNAPSHOT_FROM_PROPERTY,
        totals=CURATED_TOTALS,
        result=functools.partial(CurateResult, tables.topic),
        prepare=functools.partial(conform_curated_table, catalog, tables, schema),
    )


def curated_figures(result: CurateResult) -> dict[str, int]:
    """This run's figures in the Curated commit's summary (``leanops.<name>``)."""
    return {name: getattr(result, name) for name in CURATED_FIGURES}


def curated_extra(schema: TopicSchema) -> dict[str, str]:
    """The Curated commit's summary beyond the figures: the schema version it conforms to."""
    return {SCHEMA_VERSION_PROPERTY: str(schema.version)}


def commit_watermark_only(curated: Table, properties: dict[str, str]) -> None:
    """Nothing to write (both engines): one commit of no rows carrying the watermark, this
    run's counts and the running totals (``properties``) as its summary and state, the key
    index carried over."""
    append_with_state(curated, curated.schema().as_arrow().empty_table(),
                      {**properties, **carried_property(curated, IDEMPOTENCY_KEY)})


def create_curated_table(catalog: Catalog, tables: TopicTables, schema: TopicSchema) -> Table:
    """The topic's Curated table as both engines create it: the curated schema, partitioned
    by ``day(publish_time)`` and ``bucket(16, idempotency_key)``."""
    iceberg_schema = schema_from_arrow(schema.curated.arrow_schema())
    return ensure_table(
        catalog, tables.curated, iceberg_schema, curated_partition_spec(iceberg_schema)
    )


def curate_topic(
    catalog: Catalog,
    tables: TopicTables,
    schema: TopicSchema,
    *,
    pii_key: bytes,
    now: dt.datetime | None = None,
    lease_ttl_s: float | None = DEFAULT_TTL_S,
    upstream_at: int | None = None,
    disable_thp: bool = True,
) -> CurateResult:
    """Process the Standardized increment of one topic (this process's transparent huge pages
    are turned off first unless ``disable_thp`` is false: ``Settings.disable_thp``,
    ``process_tuning.prepare_for_increments``). Standardized rows that make
    the run raise are quarantined to curated ``errors`` (``pipeline.quarantine``).

    One writer at a time, as ``standardize.standardize_topic``: the topic's Curated lease,
    and every commit asserts the snapshot its table was read at. ``upstream_at``: as there."""
    prepare_for_increments(disable_thp=disable_thp)
    now = now or dt.datetime.now(dt.UTC)
    net = quarantine.curated_net(catalog, tables, schema, STANDARDIZED_SNAPSHOT_ID, pii_key, now)
    body = _ArrowCurate(catalog, tables, schema, pii_key, now, net)
    return run_layer(
        catalog, curated_layer(catalog, tables, schema), body, lease_ttl_s=lease_ttl_s,
        guard=net.run, upstream_at=upstream_at,
    )


@dataclass
class _Checked:
    std_rows: pa.Table  # the increment without the safety net's rows
    quarantined: pa.Table  # the safety net's rows
    ruled: rules.CuratedRows


@dataclass(frozen=True)
class _ArrowCurate:
    """The Arrow engine's body of a Curated run (``layer_run.LayerBody``)."""

    catalog: Catalog
    tables: TopicTables
    schema: TopicSchema
    pii_key: bytes
    now: dt.datetime
    net: quarantine.SafetyNet

    def reader(self, opened: Opened) -> None:
        return None  # pyiceberg's incremental read

    def transform(self, read: LayerRead) -> AbstractContextManager[_Checked]:
        std_rows, quarantined = self.net.exclude(read.unconsumed.increment.rows)
        ruled = rules.curate_rules(
            std_rows, self.schema.curated, topic=self.tables.topic, pii_key=self.pii_key,
            # MERGE the valid rows of snapshots after the Curated watermark
            unconsumed=lambda rows: read.rows_after(rows, read.unconsumed.layer_watermark),
        )
        return held(_Checked(std_rows, quarantined, ruled))

    def record_errors(self, read: LayerRead, work: _Checked) -> None:
        # CDE error rows not yet recorded for this topic
        record_error_rows(
            read.opened.errors,
            read.rows_after(work.ruled.errors, read.unconsumed.errors_watermark),
            watermark_name=read.layer.errors_watermark,
            to_snapshot_id=read.to_snapshot_id, now=self.now,
        )
        if work.ruled.drift_columns:
            log_new_drift(self.catalog, self.tables, self.schema, work.std_rows,
                          read.to_snapshot_id, self.now)

    def commit(self, read: LayerRead, work: _Checked, result: CurateResult) -> None:
        cur_watermark = read.unconsumed.layer_watermark

        def after(rows: pa.Table) -> pa.Table:
            return read.rows_after(rows, cur_watermark)

        schema, ruled = self.schema, work.ruled
        result.drift_columns = list(ruled.drift_columns)
        quarantined = after(work.quarantined).num_rows
        result.count_read(rows_read=after(work.std_rows).num_rows + quarantined,
                          quarantined=quarantined, cde_errors=after(ruled.errors).num_rows,
                          valid=ruled.valid)
        winners, superseded = ruled.rows, ruled.superseded
        # the merge is the memory peak: keep the winners
        del work.ruled, ruled
        curated = read.opened.table
        if curated is None:
            curated = create_curated_table(self.catalog, self.tables, schema)
        # a lost creation race loads the winner's table
        ensure_unchanged(curated, read.opened.started)

        def properties_for(stats: MergeStats) -> dict[str, str]:
            """Watermark, this run's counts and running totals: committed with the data."""
            result.count_merged(inserted=stats.inserted, updated=stats.updated,
                                superseded=superseded, stale=stats.stale)
            return read.commit_properties(curated, curated_figures(result), curated_extra(schema))

        stats = merge_lifo(
            curated, winners, key=IDEMPOTENCY_KEY,
            sequence=schema.curated.sequence,
            snapshot_properties=properties_for,
        )
        result.count_merged(inserted=stats.inserted, updated=stats.updated,
                            superseded=superseded, stale=stats.stale)
        result.files_read = stats.scanned_files
        result.files_rewritten = stats.rewritten_files
        result.rows_rewritten = stats.rewritten_rows
        if stats.snapshot_id is None:  # nothing to write: the watermark and counts alone
            commit_watermark_only(curated, properties_for(stats))
        curated = self.catalog.load_table(self.tables.curated)
        result.snapshot_id = curated.current_snapshot().snapshot_id  # type: ignore[union-attr]


def log_new_drift(
    catalog: Catalog, tables: TopicTables, schema: TopicSchema, rows: pa.Table,
    snapshot_id: int | None, now: dt.datetime,
) -> None:
    """Append drift records for columns this topic has not logged before (the drift log)."""
    log = ensure_table(
        catalog, tables.drift_log, DRIFT_LOG_SCHEMA, DRIFT_LOG_PARTITION_SPEC
    )
    records = drift.drift_records(rows, schema.curated, tables.topic)
    for attempt in range(1, _DRIFT_LOG_ATTEMPTS + 1):
        known: set[str] = set()
        if log.current_snapshot() is not None:
            logged = log.scan(
                row_filter=EqualTo(TOPIC_NAME, tables.topic), selected_fields=("column_name",)
            ).to_arrow()
            known = set(logged.column("column_name").to_pylist())
        new = records.filter(pc.invert(pc.is_in(records["column_name"],
                                                pa.array(sorted(known), pa.string()))))
        if new.num_rows == 0:
            return
        new = new.append_column(
            STANDARDIZED_SNAPSHOT_ID, pa.array([snapshot_id] * new.num_rows, pa.int64())
        )
        try:
            log.append(with_recorded_ts(new, now).cast(DRIFT_LOG_SCHEMA.as_arrow()))
            return
        except CommitFailedException:
            # the log is shared by every topic: re-read this topic's records and append
            # again, rather than rerun the whole step for another topic's commit
            if attempt == _DRIFT_LOG_ATTEMPTS:
                raise
            log.refresh()
            time.sleep(0.02 * attempt * (1 + random.random()))
