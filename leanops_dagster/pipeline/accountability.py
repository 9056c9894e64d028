"""Per-topic accountability equations, recomputed from the tables themselves.

- pre-RAW:  SQS messages sent = RAW rows + DLQ error rows + Firehose error records
- post-RAW: RAW rows consumed = Standardized rows + parse errors + duplicates dropped
  + quarantined
- curated:  Standardized rows consumed = Curated rows + updates + superseded + CDE error rows
  + quarantined

*Quarantined* rows are those the safety net (``pipeline.quarantine``) took out of a run because
they made it raise: error-table rows whose reason (``parse_errors.error_reason``) or rule
(curated ``errors.rule``) starts with ``internal:``, counted apart from the rules' own errors.

Table row counts come from Iceberg snapshot summaries (``total-records``) at the watermark
snapshot, error rows from scanning the error tables; duplicates, updates and superseded are
running totals the layer committed with its data (they cannot be recounted after the fact).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.expressions import EqualTo
from pyiceberg.table import Table

from leanops_dagster.constants import (
    MESSAGE_ID,
    RAW_SNAPSHOT_ID,
    RAW_WATERMARK,
    STANDARDIZED_SNAPSHOT_ID,
    STD_WATERMARK,
    TOPIC_NAME,
    Count,
)
from leanops_dagster.iceberg.history import snapshot_order
from leanops_dagster.iceberg.watermarks import read_counter, read_watermark
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.quarantine import INTERNAL_PREFIX


@dataclass(frozen=True)
class Equation:
    layer: str
    left_name: str
    left: int
    right: dict[str, int]
    #: upstream rows this layer has not consumed yet (e.g. RAW buffered before onboarding)
    pending: int = 0

    @property
    def right_total(self) -> int:
        return sum(self.right.values())

    @property
    def balanced(self) -> bool:
        return self.left == self.right_total

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "right_total": self.right_total, "balanced": self.balanced}


def _total_records(table: Table, snapshot_id: int | None = None) -> int:
    snapshot = table.snapshot_by_id(snapshot_id) if snapshot_id else table.current_snapshot()
    if snapshot is None or snapshot.summary is None:
        return 0
    return int(snapshot.summary.get("total-records", "0"))


def _rows_up_to(
    table: Table, topic: str, snapshot_column: str, watermark: int | None,
    positions: dict[int, int], reason_column: str, distinct: str | None = None,
) -> tuple[int, int]:
    """Error rows of ``topic`` whose upstream snapshot is at or before ``watermark``: (rule
    errors, quarantined rows), each counted once per ``distinct`` value if given."""
    if watermark is None or table.current_snapshot() is None:
        return 0, 0
    rows = table.scan(
        row_filter=EqualTo(TOPIC_NAME, topic),
        selected_fields=(snapshot_column, reason_column, *([distinct] if distinct else [])),
    ).to_arrow()
    # rows of snapshots after the watermark are left out; a snapshot no longer listed was
    # expired, and expiry removes the oldest: its rows are at or before the watermark
    cutoff = positions.get(watermark, -1)
    after = [sid for sid, pos in positions.items() if pos > cutoff]
    rows = rows.filter(pc.invert(pc.fill_null(
        pc.is_in(rows[snapshot_column], value_set=pa.array(after, pa.int64())), False)))
    internal = pc.fill_null(pc.starts_with(rows[reason_column], INTERNAL_PREFIX), False)

    def count(part: pa.Table) -> int:
        return len(pc.unique(part[distinct])) if distinct else part.num_rows

    return count(rows.filter(pc.invert(internal))), count(rows.filter(internal))


def post_raw_equation(catalog: Catalog, tables: TopicTables) -> Equation:
    right = {"standardized": 0, "parse_errors": 0, "duplicates": 0, "quarantined": 0}
    if not catalog.table_exists(tables.raw):
        return Equation("post-RAW", "raw_consumed", 0, right)
    raw = catalog.load_table(tables.raw)
    if not catalog.table_exists(tables.standardized):
        return Equation("post-RAW", "raw_consumed", 0, right, pending=_total_records(raw))
    std = catalog.load_table(tables.standardized)
    watermark = read_watermark(std, RAW_WATERMARK)
    right["standardized"] = _total_records(std)
    if catalog.table_exists(tables.parse_errors):
        right["parse_errors"], right["quarantined"] = _rows_up_to(
            catalog.load_table(tables.parse_errors), tables.topic, RAW_SNAPSHOT_ID,
            watermark, snapshot_order(raw), "error_reason",
        )
    right["duplicates"] = read_counter(std, Count.DUPLICATES)
    consumed = _total_records(raw, watermark)
    return Equation("post-RAW", "raw_consumed", consumed, right,
                    pending=_total_records(raw) - consumed)


def curated_equation(catalog: Catalog, tables: TopicTables) -> Equation:
    right = {"curated": 0, "updates": 0, "superseded": 0, "cde_error_rows": 0, "quarantined": 0}
    if not (catalog.table_exists(tables.standardized) and catalog.table_exists(tables.curated)):
        return Equation("curated", "standardized_consumed", 0, right)
    std = catalog.load_table(tables.standardized)
    curated = catalog.load_table(tables.curated)
    watermark = read_watermark(curated, STD_WATERMARK)
    right["curated"] = _total_records(curated)
    consumed = _total_records(std, watermark)
    right["updates"] = read_counter(curated, Count.UPDATED)
    right["superseded"] = read_counter(curated, Count.SUPERSEDED)
    if catalog.table_exists(tables.curated_errors):
        right["cde_error_rows"], right["quarantined"] = _rows_up_to(
            catalog.load_table(tables.curated_errors), tables.topic,
            STANDARDIZED_SNAPSHOT_ID, watermark, snapshot_order(std), "rule",
            distinct=MESSAGE_ID,
        )
    return Equation("curated", "standardized_consumed", consumed, right,
                    pending=_total_records(std) - consumed)


def pre_raw_equation(
    catalog: Catalog, tables: TopicTables, sent: int, firehose_errors: int
) -> Equation:
    raw_rows = _total_records(catalog.load_table(tables.raw)) if catalog.table_exists(
        tables.raw
    ) else 0
    dlq_rows = 0
    if catalog.table_exists(tables.dlq_errors):
        dlq = catalog.load_table(tables.dlq_errors)
        if dlq.current_snapshot() is not None:
            dlq_rows = dlq.scan(
                row_filter=EqualTo(TOPIC_NAME, tables.topic), selected_fields=(TOPIC_NAME,)
            ).to_arrow().num_rows
    right = {"raw": raw_rows, "dlq_errors": dlq_rows, "firehose_errors": firehose_errors}
    return Equation("pre-RAW", "sqs_sent", sent, right)
