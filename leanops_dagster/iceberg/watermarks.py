"""Watermarks and running totals, committed with the data they describe.

A layer's commit carries ``leanops.watermark.<name>=<upstream snapshot id>`` and its running
totals (``leanops.total.<count>``) in its snapshot summary and, in the same commit, as table
properties (``iceberg.state``: other writers' compaction and expiry keep properties, not
summaries). A crash between two commits can neither skip nor repeat an increment: whatever was
committed is exactly what the watermark says. What was appended after a watermark is read
through other writers' compaction and expiry too (``iceberg.history``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyiceberg.table import FileScanTask, Table
from pyiceberg.table.snapshots import Snapshot

from leanops_dagster.constants import total_key, watermark_key
from leanops_dagster.iceberg.history import (
    HistoryLost,
    appends_after,
    plan_after,
    subtract_rows,
)
from leanops_dagster.iceberg.reads import read_files
from leanops_dagster.iceberg.state import read_state, read_summary_value

__all__ = [
    "HistoryLost", "Increment", "appended_snapshots_since", "counter_properties",
    "read_counter", "read_increment", "read_summary_value", "read_watermark",
    "watermark_key",
]


def read_watermark(table: Table, name: str) -> int | None:
    """Upstream snapshot id up to which ``table`` has consumed, or None if never."""
    value = read_state(table, watermark_key(name))
    return int(value) if value else None


def read_counter(table: Table, name: str) -> int:
    """A running total (e.g. duplicates dropped) kept with the table's state."""
    value = read_state(table, total_key(name))
    return int(value) if value else 0


def counter_properties(table: Table, increments: dict[str, int]) -> dict[str, str]:
    """Summary properties advancing running totals by ``increments``."""
    return {
        total_key(name): str(read_counter(table, name) + delta)
        for name, delta in increments.items()
    }


@dataclass(frozen=True)
class Increment:
    """Rows appended to an upstream table after a watermark, each tagged with its snapshot."""

    rows: pa.Table
    from_snapshot_id: int | None
    to_snapshot_id: int | None
    snapshot_ids: tuple[int, ...]

    @property
    def is_empty(self) -> bool:
        return not self.snapshot_ids


def appended_snapshots_since(table: Table, watermark: int | None) -> list[Snapshot]:
    """APPEND snapshots after ``watermark`` (exclusive) up to the current one, oldest first,
    when the history between is intact; [] when other writers' expiry left a gap (then
    ``read_increment`` reads the rewritten way; see ``history``)."""
    return list(appends_after(table, watermark) or ())


def read_increment(
    table: Table,
    watermark: int | None,
    snapshot_column: str,
    selected_fields: tuple[str, ...] = ("*",),
    split_at: int | None = None,
) -> Increment:
    """Read what was appended after ``watermark``, adding ``snapshot_column`` per row.

    Intact history (``history.plan_after``): pyiceberg's incremental append scan is planned
    one snapshot at a time so every row knows the snapshot that brought it (error rows record
    it; crash recovery filters on it), then all the files are read at once
    (``reads.read_files``). Rewritten history (other writers compacted and expired the
    snapshots after ``watermark``): the rows are the difference of the live files, tagged with
    the current snapshot, except those at or before ``split_at`` (a newer watermark of the
    same read, e.g. the layer's when its error table's is older), tagged ``split_at``.
    """
    current = table.current_snapshot()
    if current is None or (watermark is not None and current.snapshot_id == watermark):
        return Increment(_empty(table, selected_fields, snapshot_column), watermark, watermark, ())
    plan = plan_after(table, watermark)
    schema = table.schema()
    if "*" not in selected_fields:
        schema = schema.select(*selected_fields)
    if plan.rewritten:
        rows = _read_rewritten(table, plan, schema, snapshot_column, current.snapshot_id)
        if split_at is not None and split_at != watermark and rows.num_rows:
            newer = read_increment(table, split_at, snapshot_column, selected_fields).rows
            older = subtract_rows(rows, newer.drop_columns([snapshot_column]))
            older = older.set_column(
                older.column_names.index(snapshot_column), snapshot_column,
                pa.array(np.full(older.num_rows, split_at, np.int64)),
            )
            rows = pa.concat_tables([older, newer.select(older.column_names)])
        return Increment(
            rows, watermark, current.snapshot_id, (current.snapshot_id,) if rows.num_rows else ()
        )
    snapshots = plan.appends
    tasks: list[FileScanTask] = []
    brought_by: list[int] = []  # the snapshot that added each file of ``tasks``
    for snapshot in snapshots:
        if snapshot.summary is not None and snapshot.summary.get("added-records", "0") == "0":
            continue  # a watermark-only commit: no data files
        added = list(table.incremental_append_scan(
            from_snapshot_id_exclusive=snapshot.parent_snapshot_id,
            to_snapshot_id_inclusive=snapshot.snapshot_id,
        ).plan_files())
        tasks += added
        brought_by += [snapshot.snapshot_id] * len(added)
    rows = _tagged(table, tasks, brought_by, schema, snapshot_column)
    return Increment(
        rows=rows,
        from_snapshot_id=watermark,
        to_snapshot_id=current.snapshot_id,
        snapshot_ids=tuple(s.snapshot_id for s in snapshots),
    )


def _tagged(
    table: Table, tasks: list[FileScanTask], brought_by: list[int], schema, snapshot_column: str
) -> pa.Table:
    """The rows of ``tasks``, each file's tagged with its ``brought_by`` snapshot."""
    parts: list[pa.Table] = []
    # all files in one read (pyarrow's threads over every file), each tagged afterwards
    for read, snapshot_id in zip(read_files(table, tasks, schema), brought_by, strict=True):
        part = read.rows
        if part.num_rows:
            parts.append(part.append_column(
                snapshot_column, pa.array(np.full(part.num_rows, snapshot_id, np.int64))
            ))
    if not parts:
        return schema.as_arrow().empty_table().append_column(
            snapshot_column, pa.array([], pa.int64()))
    return pa.concat_tables(parts, promote_options="default")


def _read_rewritten(
    table: Table, plan, schema, snapshot_column: str, current_id: int
) -> pa.Table:
    """The rows of the files live now but not at the watermark, minus those of the files live
    then but not now (``history``), tagged with the current snapshot."""
    added = list(plan.added_files)
    rows = _tagged(table, added, [current_id] * len(added), schema, snapshot_column)
    removed = list(plan.removed_files)
    if removed and rows.num_rows:
        gone = _tagged(table, removed, [current_id] * len(removed), schema, snapshot_column)
        rows = subtract_rows(rows, gone.drop_columns([snapshot_column]))
    return rows


def _empty(table: Table, selected_fields: tuple[str, ...], snapshot_column: str) -> pa.Table:
    schema = table.schema()
    if "*" not in selected_fields:
        schema = schema.select(*selected_fields)
    arrow = schema.as_arrow()
    return arrow.empty_table().append_column(snapshot_column, pa.array([], pa.int64()))
