"""RAW -> Standardized for one topic: read the increment, flatten, dedup, commit with watermark.

Order of commits, each carrying its own watermark so a crash between them is harmless:
1. ``parse_errors`` rows of RAW snapshots after the parse_errors watermark of this topic;
2. ``standardized.<topic>``: new rows + the RAW watermark + running totals, one snapshot.
A rerun re-reads from the lowest watermark and skips rows a table already holds.
"""

from __future__ import annotations

import datetime as dt
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
    count_properties,
    parse_errors_watermark_name,
    watermark_key,
)
from leanops_dagster.iceberg.catalog import ensure_table, load_layer_table
from leanops_dagster.iceberg.commit import ensure_unchanged, retry_commit, snapshot_id_of
from leanops_dagster.iceberg.key_index import Entries, key_hashes
from leanops_dagster.iceberg.lease import DEFAULT_TTL_S
from leanops_dagster.iceberg.lookup import StoredRows, find_stored
from leanops_dagster.iceberg.tables import PARSE_ERRORS_PARTITION_SPEC, PARSE_ERRORS_SCHEMA
from leanops_dagster.iceberg.watermarks import counter_properties
from leanops_dagster.iceberg.writes import append_rows
from leanops_dagster.pipeline import quarantine
from leanops_dagster.pipeline.evolve import refuse_superseded
from leanops_dagster.pipeline.exclusive import run_exclusively
from leanops_dagster.pipeline.increments import (
    read_unconsumed,
    record_error_rows,
    rows_after,
)
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.schema_evolution import evolve_and_align
from leanops_dagster.runtime import flatten_increment, prepare_for_increments
from leanops_dagster.schemas.models import TopicSchema
from leanops_dagster.transforms import dedup


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


def standardize_topic(
    catalog: Catalog,
    tables: TopicTables,
    schema: TopicSchema,
    *,
    now: dt.datetime | None = None,
    flatten_workers: int | None = 1,
    lease_ttl_s: float | None = DEFAULT_TTL_S,
) -> StandardizeResult:
    """Process the RAW increment of one topic. ``flatten_workers``: processes for flattening
    (``None``: every core for large increments, see ``runtime.flatten_increment``); one
    is the default since the vectorised flatten is faster than shipping rows to workers.
    This process's transparent huge pages are turned off first
    (``runtime.prepare_for_increments``). RAW rows that make the run raise are quarantined to
    ``parse_errors`` (``pipeline.quarantine``).

    One writer at a time: the run holds the topic's Standardized lease (``lease_ttl_s``; None:
    no lease) and returns a ``busy`` result without reading anything if another run holds it.
    Every commit also asserts the snapshot its table was read at, so even without the lease a
    writer that lost a race retries from the new watermark and finds nothing to do."""
    prepare_for_increments()
    now = now or dt.datetime.now(dt.UTC)

    def run() -> StandardizeResult:
        net = quarantine.standardized_net(catalog, tables, schema, RAW_SNAPSHOT_ID, now)
        return net.run(lambda: retry_commit(
            lambda: _standardize_once(catalog, tables, schema, now, flatten_workers, net)
        ))

    return run_exclusively(
        catalog, tables.standardized[0], tables.topic, STANDARDIZED_ZONE, run,
        lambda message: StandardizeResult(topic=tables.topic, busy=message),
        ttl_s=lease_ttl_s,
    )


def _standardize_once(
    catalog: Catalog,
    tables: TopicTables,
    schema: TopicSchema,
    now: dt.datetime | None,
    flatten_workers: int | None,
    net: quarantine.SafetyNet,
) -> StandardizeResult:
    now = now or dt.datetime.now(dt.UTC)
    result = StandardizeResult(topic=tables.topic)
    if not catalog.table_exists(tables.raw):
        return result
    raw = catalog.load_table(tables.raw)
    parse_errors_table = ensure_table(
        catalog, tables.parse_errors, PARSE_ERRORS_SCHEMA, PARSE_ERRORS_PARTITION_SPEC
    )
    std = load_layer_table(catalog, tables.standardized)
    refuse_superseded(std, schema)  # a run on the version a rebuild from RAW replaced
    std_started = snapshot_id_of(std)  # the read point every Standardized commit asserts

    unconsumed = read_unconsumed(
        raw, std, RAW_WATERMARK, parse_errors_table, parse_errors_watermark_name(tables.topic),
        RAW_SNAPSHOT_ID,
    )
    std_watermark, pe_watermark = unconsumed.layer_watermark, unconsumed.errors_watermark
    increment, positions = unconsumed.increment, unconsumed.positions
    result.watermark_from, result.watermark_to = std_watermark, unconsumed.watermark_to
    if unconsumed.nothing_new:
        return result
    raw_rows, quarantined = net.exclude(increment.rows)  # the safety net's rows, if any

    flattened = flatten_increment(
        raw_rows, schema.standardized, snapshot_column=RAW_SNAPSHOT_ID,
        workers=flatten_workers,
    )

    # 1. parse errors: only the RAW snapshots this table has not recorded yet.
    def after(rows: pa.Table, watermark: int | None) -> pa.Table:
        return rows_after(rows, watermark, positions, RAW_SNAPSHOT_ID)

    record_error_rows(
        parse_errors_table, after(flattened.errors, pe_watermark),
        watermark_name=parse_errors_watermark_name(tables.topic),
        to_snapshot_id=increment.to_snapshot_id, now=now,
    )

    # 2. standardized rows of the snapshots after the Standardized watermark.
    rows = after(flattened.rows, std_watermark)
    # hashed once: the index lookup probes with them, the append indexes the rows it keeps
    hashes = key_hashes(rows.column(MESSAGE_ID))
    stored = _stored_message_ids(std, rows.column(MESSAGE_ID), hashes)
    deduped = dedup.fifo_dedup(
        rows, existing_ids=stored.rows.column(MESSAGE_ID).combine_chunks(),
        snapshot_column=RAW_SNAPSHOT_ID, snapshot_order=positions,
    )
    std, aligned, new_columns = evolve_and_align(
        catalog, tables.standardized, std, deduped.rows.drop_columns([RAW_SNAPSHOT_ID])
    )
    result.quarantined = after(quarantined, std_watermark).num_rows
    result.rows_read = after(raw_rows, std_watermark).num_rows + result.quarantined
    result.parse_errors = after(flattened.errors, std_watermark).num_rows
    result.duplicates = deduped.dropped
    result.rows_written = aligned.num_rows
    result.new_columns = new_columns
    counts = {
        Count.ROWS_READ: result.rows_read,
        Count.PARSE_ERRORS: result.parse_errors,
        Count.DUPLICATES: result.duplicates,
        Count.QUARANTINED: result.quarantined,
    }
    properties = {
        watermark_key(RAW_WATERMARK): str(increment.to_snapshot_id),
        RAW_SNAPSHOT_FROM_PROPERTY: str(std_watermark or ""),
        **count_properties(counts),
        **counter_properties(std, counts),
    }
    kept = hashes if deduped.kept is None else hashes[np.asarray(deduped.kept)]
    ensure_unchanged(std, std_started)  # created or evolved since the read: still that snapshot?
    append_rows(std, aligned, properties, indexed=stored, hashes=kept)
    result.snapshot_id = std.current_snapshot().snapshot_id  # type: ignore[union-attr]
    return result


def _stored_message_ids(
    std: Table | None, message_ids: pa.ChunkedArray, hashes: np.ndarray
) -> StoredRows:
    """Stored rows among ``message_ids`` (through the table's key index on ``message_id``)."""
    if std is None or std.current_snapshot() is None:
        empty = pa.table({MESSAGE_ID: pa.array([], pa.string())})
        return StoredRows(empty, MESSAGE_ID, rebuilt=Entries.empty())
    return find_stored(std, message_ids, MESSAGE_ID, hashes=hashes)
