"""Helpers shared by the layers: which rows of an increment a table has not consumed yet."""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table

from leanops_dagster.iceberg.history import snapshot_order
from leanops_dagster.iceberg.state import append_with_state
from leanops_dagster.iceberg.watermarks import (
    read_increment,
    read_watermark,
    watermark_key,
)

#: appends to a shared error table retried on their own (other topics' commits)
_SHARED_TABLE_ATTEMPTS = 20


class UpstreamRows(Protocol):
    """An engine's read of an upstream table after a watermark (``watermarks.Increment`` on
    Arrow, ``engines.spark.table_io.SparkIncrement`` on Spark)."""

    @property
    def is_empty(self) -> bool: ...

    @property
    def to_snapshot_id(self) -> int | None: ...


I = TypeVar("I", bound=UpstreamRows)  # noqa: E741 (the increment's type)


def lowest_watermark(a: int | None, b: int | None, positions: dict[int, int]) -> int | None:
    """The older of two watermarks (None = never consumed = oldest of all)."""
    if a is None or b is None:
        return None
    return a if positions.get(a, -1) <= positions.get(b, -1) else b


def snapshots_after(watermark: int | None, positions: dict[int, int]) -> list[int] | None:
    """The upstream snapshots after ``watermark`` in the upstream history (None: all). An
    expired ``watermark`` is older than every snapshot still listed."""
    if watermark is None:
        return None
    cutoff = positions.get(watermark, -1)
    return [sid for sid, pos in positions.items() if pos > cutoff]


@dataclass(frozen=True)
class Unconsumed(Generic[I]):
    """What a layer table and its error table have not consumed of their upstream table."""

    increment: I  # from the older of the two watermarks
    positions: dict[int, int]  # upstream snapshot id -> position in its history
    layer_watermark: int | None
    errors_watermark: int | None

    @property
    def nothing_new(self) -> bool:
        return self.increment.is_empty or self.increment.to_snapshot_id == self.layer_watermark

    @property
    def watermark_to(self) -> int | None:
        """Where the layer's watermark stands after this run."""
        return self.layer_watermark if self.nothing_new else self.increment.to_snapshot_id

    def snapshots_after(self, watermark: int | None) -> list[int] | None:
        """The upstream snapshots after ``watermark`` (None: all), as ``rows_after`` keeps."""
        return snapshots_after(watermark, self.positions)


def read_unconsumed(
    upstream: Table, layer: Table | None, layer_watermark: str, errors: Table,
    errors_watermark: str, snapshot_column: str,
    read: Callable[[int | None, int | None], I] | None = None,
) -> Unconsumed[I]:
    """Read ``upstream`` after the older of the layer's and its error table's watermarks, so a
    crash between their two commits is caught up on the next run (rows tagged with their
    upstream snapshot in ``snapshot_column``). ``read(watermark, split_at)`` is the engine's
    read of what was appended after a watermark (``split_at``: the newer watermark, which
    a read through rewritten history tags its older rows with); by default pyiceberg's
    (``watermarks.read_increment``)."""
    layer_at = read_watermark(layer, layer_watermark) if layer is not None else None
    errors_at = read_watermark(errors, errors_watermark)
    positions = snapshot_order(upstream)
    watermark = lowest_watermark(layer_at, errors_at, positions)
    newer = errors_at if watermark == layer_at else layer_at
    split_at = newer if newer != watermark else None
    if read is None:
        increment = read_increment(upstream, watermark, snapshot_column, split_at=split_at)
    else:
        increment = read(watermark, split_at)
    return Unconsumed(increment, positions, layer_at, errors_at)  # type: ignore[arg-type]


def rows_after(
    rows: pa.Table, watermark: int | None, positions: dict[int, int], snapshot_column: str
) -> pa.Table:
    """Rows whose upstream snapshot comes after ``watermark`` in the upstream history."""
    newer = snapshots_after(watermark, positions)
    if newer is None or rows.num_rows == 0:
        return rows
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
    read_at = read_watermark(table, watermark_name)
    if rows.num_rows == 0 and read_at == to_snapshot_id:
        return
    for attempt in range(1, _SHARED_TABLE_ATTEMPTS + 1):
        arrow = table.schema().as_arrow()
        try:
            append_with_state(
                table, with_recorded_ts(rows, now).select(arrow.names).cast(arrow),
                {watermark_key(watermark_name): str(to_snapshot_id)},
            )
            return
        except CommitFailedException:
            # The table is shared by every topic: a commit of another topic moved it, which
            # says nothing about these rows. Only a moved watermark of this topic (another
            # run of it recorded them) makes the caller rerun its whole step.
            table.refresh()
            if attempt == _SHARED_TABLE_ATTEMPTS or read_watermark(
                table, watermark_name
            ) != read_at:
                raise
            time.sleep(0.02 * attempt * (1 + random.random()))
