"""RAW -> Standardized for one topic: read the increment, flatten, dedup, commit with watermark.

Order of commits, each carrying its own watermark so a crash between them is harmless:
1. ``parse_errors`` rows of RAW snapshots after the parse_errors watermark of this topic;
2. ``standardized.<topic>``: new rows + the RAW watermark + running totals, one snapshot.
A rerun re-reads from the lowest watermark and skips rows a table already holds.
"""

from __future__ import annotations

import datetime as dt
import functools
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from leanops_dagster.constants import (
    MESSAGE_ID,
    RAW_SNAPSHOT_FROM_PROPERTY,
    RAW_SNAPSHOT_ID,
    RAW_WATERMARK,
    STANDARDIZED_ZONE,
    Count,
    parse_errors_watermark_name,
)
from leanops_dagster.iceberg.commit import ensure_unchanged
from leanops_dagster.iceberg.key_index import Entries, key_hashes
from leanops_dagster.iceberg.lease import DEFAULT_TTL_S
from leanops_dagster.iceberg.lookup import StoredRows, find_stored
from leanops_dagster.iceberg.tables import PARSE_ERRORS_PARTITION_SPEC, PARSE_ERRORS_SCHEMA
from leanops_dagster.iceberg.writes import append_rows
from leanops_dagster.pipeline import quarantine
from leanops_dagster.pipeline.curated_evolution import refuse_superseded
from leanops_dagster.pipeline.increments import record_error_rows
from leanops_dagster.pipeline.layer_run import Layer, LayerRead, Opened, held, run_layer
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.process_tuning import flatten_increment, prepare_for_increments
from leanops_dagster.pipeline.standardized_evolution import evolve_and_align
from leanops_dagster.schemas.models import TopicSchema
from leanops_dagster.transforms import rules

#: this run's figures in the Standardized commit's summary, each with a running total
STANDARDIZED_TOTALS = (Count.ROWS_READ, Count.PARSE_ERRORS, Count.DUPLICATES, Count.QUARANTINED)


@dataclass
class StandardizeResult:
    topic: str
    rows_read: int = 0
    rows_written: int = 0
    parse_errors: int = 0
    duplicates: int = 0
    watermark_from: int | None = None
    watermark_to: int | None = None
    snapshot_id: int | None = None
    new_columns: list[str] = field(default_factory=list)
    #: rows the safety net routed to ``parse_errors`` with reason ``internal:<Exception>``
    quarantined: int = 0
    #: set when another run holds this topic's Standardized lease: this run did nothing
    busy: str | None = None

    @property
    def balanced(self) -> bool:
        """Post-RAW accountability of this run:
        RAW = new + parse errors + duplicates + quarantined."""
        return self.rows_read == (
            self.rows_written + self.parse_errors + self.duplicates + self.quarantined
        )


def standardized_layer(tables: TopicTables, schema: TopicSchema) -> Layer[StandardizeResult]:
    """RAW -> Standardized of one topic for ``layer_run`` (both engines)."""
    def prepare(std: Table | None) -> Table | None:
        refuse_superseded(std, schema)  # a run on the version a rebuild from RAW replaced
        return std

    return Layer(
        zone=STANDARDIZED_ZONE, topic=tables.topic, upstream=tables.raw,
        table=tables.standardized, errors=tables.parse_errors,
        errors_schema=PARSE_ERRORS_SCHEMA, errors_spec=PARSE_ERRORS_PARTITION_SPEC,
        watermark=RAW_WATERMARK, errors_watermark=parse_errors_watermark_name(tables.topic),
        snapshot_column=RAW_SNAPSHOT_ID, from_property=RAW_SNAPSHOT_FROM_PROPERTY,
        totals=STANDARDIZED_TOTALS,
        result=functools.partial(StandardizeResult, tables.topic), prepare=prepare,
    )


def standardized_figures(result: StandardizeResult) -> dict[str, int]:
    """This run's figures in the Standardized commit's summary (``leanops.<name>``)."""
    return {name: getattr(result, name) for name in STANDARDIZED_TOTALS}


def standardize_topic(
    catalog: Catalog,
    tables: TopicTables,
    schema: TopicSchema,
    *,
    now: dt.datetime | None = None,
    flatten_workers: int | None = 1,
    lease_ttl_s: float | None = DEFAULT_TTL_S,
    upstream_at: int | None = None,
    disable_thp: bool = True,
) -> StandardizeResult:
    """Process the RAW increment of one topic. ``flatten_workers``: processes for flattening
    (``None``: every core for large increments, see ``transforms.flatten.flatten_raw``); one
    is the default since the vectorised flatten is faster than shipping rows to workers.
    This process's transparent huge pages are turned off first unless ``disable_thp`` is false
    (``Settings.disable_thp``, ``process_tuning.prepare_for_increments``). RAW rows that make
    the run raise are quarantined to ``parse_errors`` (``pipeline.quarantine``).

    One writer at a time: the run holds the topic's Standardized lease (``lease_ttl_s``; None:
    no lease) and returns a ``busy`` result without reading anything if another run holds it.
    Every commit also asserts the snapshot its table was read at, so even without the lease a
    writer that lost a race retries from the new watermark and finds nothing to do.
    ``upstream_at``: read RAW as if this snapshot were its current one (a rebuild's chunk)."""
    prepare_for_increments(disable_thp=disable_thp)
    now = now or dt.datetime.now(dt.UTC)
    net = quarantine.standardized_net(catalog, tables, schema, RAW_SNAPSHOT_ID, now)
    body = _ArrowStandardize(catalog, tables, schema, now, flatten_workers, net)
    return run_layer(
        catalog, standardized_layer(tables, schema), body, lease_ttl_s=lease_ttl_s,
        guard=net.run, upstream_at=upstream_at,
    )


@dataclass
class _StoredIds:
    """``rules.standardize_rules``'s ``stored_ids``: the stored message ids among the new rows,
    through the key index; keeps the lookup and the rows' key hashes (hashed once: the index
    lookup probes with them, the append indexes the rows it keeps)."""

    table: Table | None
    stored: StoredRows | None = None
    hashes: np.ndarray | None = None

    def __call__(self, rows: pa.Table) -> pa.Array:
        self.hashes = key_hashes(rows.column(MESSAGE_ID))
        self.stored = _stored_message_ids(self.table, rows.column(MESSAGE_ID), self.hashes)
        return self.stored.rows.column(MESSAGE_ID).combine_chunks()


@dataclass(frozen=True)
class _Standardized:
    raw_rows: pa.Table  # the increment without the safety net's rows
    quarantined: pa.Table  # the safety net's rows
    ruled: rules.StandardizedRows
    lookup: _StoredIds


@dataclass(frozen=True)
class _ArrowStandardize:
    """The Arrow engine's body of a Standardized run (``layer_run.LayerBody``)."""

    catalog: Catalog
    tables: TopicTables
    schema: TopicSchema
    now: dt.datetime
    flatten_workers: int | None
    net: quarantine.SafetyNet

    def reader(self, opened: Opened) -> None:
        return None  # pyiceberg's incremental read

    def transform(self, read: LayerRead) -> AbstractContextManager[_Standardized]:
        raw_rows, quarantined = self.net.exclude(read.unconsumed.increment.rows)
        lookup = _StoredIds(read.opened.table)
        ruled = rules.standardize_rules(
            raw_rows, self.schema.standardized, snapshot_column=RAW_SNAPSHOT_ID,
            # standardized rows of the snapshots after the Standardized watermark
            unconsumed=lambda rows: read.rows_after(rows, read.unconsumed.layer_watermark),
            stored_ids=lookup, snapshot_order=read.unconsumed.positions,
            flatten_rows=functools.partial(flatten_increment, workers=self.flatten_workers),
        )
        return held(_Standardized(raw_rows, quarantined, ruled, lookup))

    def record_errors(self, read: LayerRead, work: _Standardized) -> None:
        # parse errors: only the RAW snapshots this table has not recorded yet
        record_error_rows(
            read.opened.errors,
            read.rows_after(work.ruled.flattened.errors, read.unconsumed.errors_watermark),
            watermark_name=read.layer.errors_watermark,
            to_snapshot_id=read.to_snapshot_id, now=self.now,
        )

    def commit(self, read: LayerRead, work: _Standardized, result: StandardizeResult) -> None:
        std_watermark = read.unconsumed.layer_watermark

        def after(rows: pa.Table) -> pa.Table:
            return read.rows_after(rows, std_watermark)

        deduped, hashes = work.ruled.deduped, work.lookup.hashes
        assert deduped is not None and hashes is not None
        std, aligned, new_columns = evolve_and_align(
            self.catalog, self.tables.standardized, read.opened.table,
            deduped.rows.drop_columns([RAW_SNAPSHOT_ID]),
        )
        result.quarantined = after(work.quarantined).num_rows
        result.rows_read = after(work.raw_rows).num_rows + result.quarantined
        result.parse_errors = after(work.ruled.flattened.errors).num_rows
        result.duplicates = deduped.dropped
        result.rows_written = aligned.num_rows
        result.new_columns = new_columns
        properties = read.commit_properties(std, standardized_figures(result))
        kept = hashes if deduped.kept is None else hashes[np.asarray(deduped.kept)]
        # created or evolved since the read: still that snapshot?
        ensure_unchanged(std, read.opened.started)
        append_rows(std, aligned, properties, indexed=work.lookup.stored, hashes=kept)
        result.snapshot_id = std.current_snapshot().snapshot_id  # type: ignore[union-attr]


def _stored_message_ids(
    std: Table | None, message_ids: pa.ChunkedArray, hashes: np.ndarray
) -> StoredRows:
    """Stored rows among ``message_ids`` (through the table's key index on ``message_id``)."""
    if std is None or std.current_snapshot() is None:
        empty = pa.table({MESSAGE_ID: pa.array([], pa.string())})
        return StoredRows(empty, MESSAGE_ID, rebuilt=Entries.empty())
    return find_stored(std, message_ids, MESSAGE_ID, hashes=hashes)
