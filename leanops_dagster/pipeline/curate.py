"""Standardized -> Curated for one topic: validate, cast, mask, LIFO, MERGE, with watermark.

Commits, each with its own watermark (crash-safe, see ``standardize``):
1. curated ``errors`` rows (CDE failures) of Standardized snapshots after that watermark;
2. ``curated.<topic>``: the partition-scoped copy-on-write MERGE on ``idempotency_key`` plus
   the Standardized watermark and running totals, in one transaction.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.expressions import EqualTo

from leanops_dagster.constants import (
    CURATED_ZONE,
    IDEMPOTENCY_KEY,
    LINEAGE_COLUMNS,
    SCHEMA_VERSION_PROPERTY,
    STANDARDIZED_SNAPSHOT_FROM_PROPERTY,
    STANDARDIZED_SNAPSHOT_ID,
    STD_WATERMARK,
    TOPIC_NAME,
    Count,
    count_properties,
    curated_partition_spec,
    errors_watermark_name,
    watermark_key,
)
from leanops_dagster.iceberg.catalog import ensure_table, load_layer_table, schema_from_arrow
from leanops_dagster.iceberg.commit import ensure_unchanged, retry_commit, snapshot_id_of
from leanops_dagster.iceberg.key_index import carried_property
from leanops_dagster.iceberg.lease import DEFAULT_TTL_S
from leanops_dagster.iceberg.merge import MergeStats, merge_lifo
from leanops_dagster.iceberg.tables import (
    CURATED_ERRORS_PARTITION_SPEC,
    CURATED_ERRORS_SCHEMA,
    DRIFT_LOG_PARTITION_SPEC,
    DRIFT_LOG_SCHEMA,
)
from leanops_dagster.iceberg.watermarks import counter_properties
from leanops_dagster.pipeline import quarantine
from leanops_dagster.pipeline.evolve import conform_curated_table
from leanops_dagster.pipeline.exclusive import run_exclusively
from leanops_dagster.pipeline.increments import (
    read_unconsumed,
    record_error_rows,
    rows_after,
    with_recorded_ts,
)
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.runtime import prepare_for_increments
from leanops_dagster.schemas.models import TopicSchema
from leanops_dagster.transforms import dedup, drift, mask, validate

#: drift-log appends retried on their own (other topics' commits to the shared log)
_DRIFT_LOG_ATTEMPTS = 20


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


def curate_topic(
    catalog: Catalog,
    tables: TopicTables,
    schema: TopicSchema,
    *,
    pii_key: bytes,
    now: dt.datetime | None = None,
    lease_ttl_s: float | None = DEFAULT_TTL_S,
) -> CurateResult:
    """Process the Standardized increment of one topic (this process's transparent huge pages
    are turned off first, ``runtime.prepare_for_increments``). Standardized rows that make
    the run raise are quarantined to curated ``errors`` (``pipeline.quarantine``).

    One writer at a time, as ``standardize.standardize_topic``: the topic's Curated lease,
    and every commit asserts the snapshot its table was read at."""
    prepare_for_increments()
    now = now or dt.datetime.now(dt.UTC)

    def run() -> CurateResult:
        net = quarantine.curated_net(
            catalog, tables, schema, STANDARDIZED_SNAPSHOT_ID, pii_key, now
        )
        return net.run(
            lambda: retry_commit(lambda: _curate_once(catalog, tables, schema, pii_key, now, net))
        )

    return run_exclusively(
        catalog, tables.curated[0], tables.topic, CURATED_ZONE, run,
        lambda message: CurateResult(topic=tables.topic, busy=message),
        ttl_s=lease_ttl_s,
    )


def _curate_once(
    catalog: Catalog,
    tables: TopicTables,
    schema: TopicSchema,
    pii_key: bytes,
    now: dt.datetime | None,
    net: quarantine.SafetyNet,
) -> CurateResult:
    now = now or dt.datetime.now(dt.UTC)
    result = CurateResult(topic=tables.topic)
    if not catalog.table_exists(tables.standardized):
        return result
    std = catalog.load_table(tables.standardized)
    errors_table = ensure_table(
        catalog, tables.curated_errors, CURATED_ERRORS_SCHEMA, CURATED_ERRORS_PARTITION_SPEC
    )
    curated = load_layer_table(catalog, tables.curated)
    curated = conform_curated_table(catalog, tables, schema, curated)
    cur_started = snapshot_id_of(curated)  # the read point the MERGE asserts

    unconsumed = read_unconsumed(
        std, curated, STD_WATERMARK, errors_table, errors_watermark_name(tables.topic),
        STANDARDIZED_SNAPSHOT_ID,
    )
    cur_watermark, err_watermark = unconsumed.layer_watermark, unconsumed.errors_watermark
    increment, positions = unconsumed.increment, unconsumed.positions
    result.watermark_from, result.watermark_to = cur_watermark, unconsumed.watermark_to
    if unconsumed.nothing_new:
        return result
    std_rows, quarantined = net.exclude(increment.rows)  # the safety net's rows, if any

    checked = validate.validate_and_cast(std_rows, schema.curated, topic=tables.topic)
    result.drift_columns = list(checked.drift_columns)

    # 1. CDE error rows not yet recorded for this topic.
    def after(rows: pa.Table, watermark: int | None) -> pa.Table:
        return rows_after(rows, watermark, positions, STANDARDIZED_SNAPSHOT_ID)

    record_error_rows(
        errors_table, after(checked.errors, err_watermark),
        watermark_name=errors_watermark_name(tables.topic),
        to_snapshot_id=increment.to_snapshot_id, now=now,
    )

    if result.drift_columns:
        _log_new_drift(catalog, tables, schema, std_rows, increment.to_snapshot_id, now)

    # 2. MERGE the valid rows of snapshots after the Curated watermark.
    valid = after(checked.valid, cur_watermark)
    result.quarantined = after(quarantined, cur_watermark).num_rows
    result.rows_read = after(std_rows, cur_watermark).num_rows + result.quarantined
    result.cde_errors = after(checked.errors, cur_watermark).num_rows
    # each failing row once
    result.cde_error_rows = result.rows_read - result.quarantined - valid.num_rows
    lineage = [c for c in LINEAGE_COLUMNS if c in valid.column_names]
    masked = mask.mask_pii(valid.drop_columns(lineage), schema.curated, pii_key)
    winners = dedup.lifo_dedup(masked, key=IDEMPOTENCY_KEY, sequence=schema.curated.sequence)
    if curated is None:
        iceberg_schema = schema_from_arrow(schema.curated.arrow_schema())
        curated = ensure_table(
            catalog, tables.curated, iceberg_schema, curated_partition_spec(iceberg_schema)
        )
    ensure_unchanged(curated, cur_started)  # a lost creation race loads the winner's table
    to_snapshot_id = increment.to_snapshot_id
    # the merge is the memory peak: keep the winners
    del increment, std_rows, checked, valid, masked

    def properties_for(stats: MergeStats) -> dict[str, str]:
        """Watermark, this run's counts and running totals: committed with the data."""
        superseded = winners.superseded + stats.stale
        return {
            watermark_key(STD_WATERMARK): str(to_snapshot_id),
            SCHEMA_VERSION_PROPERTY: str(schema.version),
            STANDARDIZED_SNAPSHOT_FROM_PROPERTY: str(cur_watermark or ""),
            **count_properties({
                Count.ROWS_READ: result.rows_read,
                Count.INSERTED: stats.inserted,
                Count.UPDATED: stats.updated,
                Count.SUPERSEDED: superseded,
                Count.CDE_ERROR_ROWS: result.cde_error_rows,
                Count.QUARANTINED: result.quarantined,
            }),
            **counter_properties(
                curated,
                {
                    Count.ROWS_READ: result.rows_read,
                    Count.UPDATED: stats.updated,
                    Count.SUPERSEDED: superseded,
                    Count.CDE_ERROR_ROWS: result.cde_error_rows,
                    Count.QUARANTINED: result.quarantined,
                },
            ),
        }

    stats = merge_lifo(
        curated, winners.rows, key=IDEMPOTENCY_KEY,
        sequence=schema.curated.sequence,
        snapshot_properties=properties_for,
    )
    result.inserted = stats.inserted
    result.updated = stats.updated
    result.files_read = stats.scanned_files
    result.files_rewritten = stats.rewritten_files
    result.rows_rewritten = stats.rewritten_rows
    result.superseded = winners.superseded + stats.stale
    if stats.snapshot_id is None:  # nothing to write: commit the watermark and counts alone
        curated.append(
            curated.schema().as_arrow().empty_table(),
            snapshot_properties={**properties_for(stats),
                                 **carried_property(curated, IDEMPOTENCY_KEY)},
        )
    curated = catalog.load_table(tables.curated)
    result.snapshot_id = curated.current_snapshot().snapshot_id  # type: ignore[union-attr]
    return result



def _log_new_drift(
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
