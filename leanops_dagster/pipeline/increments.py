"""Helpers shared by the layers: which rows of an increment a table has not consumed yet."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.table import Table

from leanops_dagster.iceberg.watermarks import read_watermark, watermark_key


def lowest_watermark(a: int | None, b: int | None, positions: dict[int, int]) -> int | None:
    """The older of two watermarks (None = never consumed = oldest of all)."""
    if a is None or b is None:
        return None
    return a if positions.get(a, -1) <= positions.get(b, -1) else b


def rows_after(
    rows: pa.Table, watermark: int | None, positions: dict[int, int], snapshot_column: str
) -> pa.Table:
    """Rows whose upstream snapshot comes after ``watermark`` in the upstream history."""
    if watermark is None or rows.num_rows == 0:
        return rows
    cutoff = positions[watermark]
    newer = [sid for sid, pos in positions.items() if pos > cutoff]
    return rows.filter(pc.is_in(rows[snapshot_column], pa.array(newer, pa.int64())))


def with_recorded_ts(errors: pa.Table, now: dt.datetime) -> pa.Table:
    ts = pa.array([now] * errors.num_rows, pa.timestamp("us", tz="UTC"))
    if "recorded_ts" in errors.column_names:
        return errors.set_column(errors.column_names.index("recorded_ts"), "recorded_ts", ts)
    return errors.append_column("recorded_ts", ts)


def record_error_rows(
    table: Table, rows: pa.Table, *, watermark_name: str, to_snapshot_id: int | None,
    now: dt.datetime,
) -> None:
    """Append error rows with the error table's own per-topic watermark, in one snapshot.

    ``rows`` must already be limited to what this table has not recorded (``rows_after`` its
    watermark). A commit with no rows still advances the watermark, so a crash right after it
    cannot make the next run record those snapshots again.
    """
    if rows.num_rows == 0 and read_watermark(table, watermark_name) == to_snapshot_id:
        return
    arrow = table.schema().as_arrow()
    table.append(
        with_recorded_ts(rows, now).select(arrow.names).cast(arrow),
        snapshot_properties={watermark_key(watermark_name): str(to_snapshot_id)},
    )
