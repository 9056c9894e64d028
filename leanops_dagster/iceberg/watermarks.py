"""Watermarks stored in Iceberg snapshot summaries, committed with the data they describe.

A layer's commit carries ``leanops.watermark.<name>=<upstream snapshot id>`` in its snapshot
summary. Reading the watermark walks the table's ancestry from the current snapshot to the
newest snapshot carrying the key, so a crash between two commits can neither skip nor repeat
an increment: whatever was committed is exactly what the watermark says.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyiceberg.table import FileScanTask, Table
from pyiceberg.table.snapshots import Operation, Snapshot, ancestors_of

from leanops_dagster.constants import total_key, watermark_key
from leanops_dagster.iceberg.reads import read_files


def _ancestry(table: Table) -> Iterator[Snapshot]:
    return ancestors_of(table.current_snapshot(), table.metadata)


def read_summary_value(table: Table, key: str) -> str | None:
    """The newest value of summary property ``key`` along the current snapshot's ancestry."""
    for snapshot in _ancestry(table):
        if snapshot.summary is not None and key in snapshot.summary.additional_properties:
            return snapshot.summary.additional_properties[key]
    return None


def read_watermark(table: Table, name: str) -> int | None:
    """Upstream snapshot id up to which ``table`` has consumed, or None if never."""
    value = read_summary_value(table, watermark_key(name))
    return int(value) if value is not None else None


def read_counter(table: Table, name: str) -> int:
    """A running total (e.g. duplicates dropped) kept in the snapshot summaries."""
    value = read_summary_value(table, total_key(name))
    return int(value) if value is not None else 0


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
    """APPEND snapshots after ``watermark`` (exclusive) up to the current one, oldest first."""
    newer: list[Snapshot] = []
    for snapshot in _ancestry(table):
        if snapshot.snapshot_id == watermark:
            break
        newer.append(snapshot)
    else:
        if watermark is not None and newer:
            raise ValueError(
                f"watermark snapshot {watermark} is not an ancestor of {table.name()}'s current "
                "snapshot (expired or rolled back); refusing to guess what is new"
            )
    return [
        s for s in reversed(newer)
        if s.summary is not None and s.summary.operation == Operation.APPEND
    ]


def read_increment(
    table: Table,
    watermark: int | None,
    snapshot_column: str,
    selected_fields: tuple[str, ...] = ("*",),
) -> Increment:
    """Read what was appended after ``watermark``, adding ``snapshot_column`` per row.

    Plans pyiceberg's incremental append scan one snapshot at a time so every row knows the
    snapshot that brought it (error rows record it; crash recovery filters on it), then reads
    all the files at once (``reads.read_files``).
    """
    current = table.current_snapshot()
    snapshots = appended_snapshots_since(table, watermark)
    if current is None or (watermark is not None and current.snapshot_id == watermark):
        return Increment(_empty(table, selected_fields, snapshot_column), watermark, watermark, ())
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
    schema = table.schema()
    if "*" not in selected_fields:
        schema = schema.select(*selected_fields)
    parts: list[pa.Table] = []
    # all files in one read (pyarrow's threads over every file), each tagged afterwards
    for read, snapshot_id in zip(read_files(table, tasks, schema), brought_by, strict=True):
        part = read.rows
        if part.num_rows:
            parts.append(part.append_column(
                snapshot_column, pa.array(np.full(part.num_rows, snapshot_id, np.int64))
            ))
    rows = (
        pa.concat_tables(parts, promote_options="default")
        if parts
        else _empty(table, selected_fields, snapshot_column)
    )
    return Increment(
        rows=rows,
        from_snapshot_id=watermark,
        to_snapshot_id=current.snapshot_id,
        snapshot_ids=tuple(s.snapshot_id for s in snapshots),
    )


def _empty(table: Table, selected_fields: tuple[str, ...], snapshot_column: str) -> pa.Table:
    schema = table.schema()
    if "*" not in selected_fields:
        schema = schema.select(*selected_fields)
    arrow = schema.as_arrow()
    return arrow.empty_table().append_column(snapshot_column, pa.array([], pa.int64()))


def snapshot_position(table: Table) -> dict[int, int]:
    """Snapshot id -> position in the current ancestry (0 = oldest), to order increments."""
    ids = [s.snapshot_id for s in _ancestry(table)]
    return {sid: pos for pos, sid in enumerate(reversed(ids))}
