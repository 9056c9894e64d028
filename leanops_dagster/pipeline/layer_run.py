"""The one skeleton of a Standardized or Curated run, on either engine.

    lease of the topic's layer (one writer; a second trigger is a no-op, ``exclusive``)
      -> the engine's guard (the Arrow engine's safety net, ``quarantine.SafetyNet.run``)
        -> commit retries (``iceberg.commit.retry_commit``: a lost race reruns from here)
          1. open: the upstream table, the error table, the layer table (``Layer.prepare``:
             refuse a superseded version, conform Curated), the layer's snapshot at the read;
          2. read after the older of the layer's and the error table's watermarks
             (``increments.read_unconsumed`` with the engine's reader); nothing new: done;
          3. the engine transforms the increment;
          4. error rows first, with the error table's own watermark;
          5. then the layer's commit: its rows, the watermark, this run's figures and the
             running totals in one snapshot (``commit_properties``), set as table properties
             in the same commit (``iceberg.state``);
          6. the layer's tag on its upstream moves to where it has read (``iceberg.history``:
             snapshot expiry keeps what the layer has not read yet).

What differs between the layers is data (``Layer``: tables, watermark names, the figures with
running totals); what differs between the engines plugs in as a ``LayerBody`` (steps 2 to 5).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table

from leanops_dagster.constants import count_properties, watermark_key
from leanops_dagster.iceberg.catalog import ensure_table, load_layer_table
from leanops_dagster.iceberg.commit import retry_commit, snapshot_id_of
from leanops_dagster.iceberg.history import HistoryLost, protect_read
from leanops_dagster.iceberg.lease import DEFAULT_TTL_S
from leanops_dagster.iceberg.watermarks import counter_properties
from leanops_dagster.pipeline.exclusive import run_exclusively
from leanops_dagster.pipeline.increments import (
    Unconsumed,
    UpstreamRows,
    lowest_watermark,
    read_unconsumed,
    rows_after,
)
from leanops_dagster.pipeline.layout import Identifier


class LayerResult(Protocol):
    """What the skeleton sets on a layer's result (``StandardizeResult``, ``CurateResult``)."""

    watermark_from: int | None
    watermark_to: int | None


R = TypeVar("R", bound=LayerResult)
W = TypeVar("W")


@dataclass(frozen=True)
class Layer(Generic[R]):
    """One layer of one topic as the skeleton sees it (``standardize.standardized_layer``,
    ``curate.curated_layer``)."""

    zone: str  # the lease's layer name
    topic: str
    upstream: Identifier
    table: Identifier
    errors: Identifier
    errors_schema: Schema
    errors_spec: PartitionSpec
    watermark: str  # the layer's watermark: the upstream snapshot it has consumed
    errors_watermark: str  # the error table's own watermark of this topic
    snapshot_column: str  # each increment row's upstream snapshot
    from_property: str  # the summary key of where this run's read started
    totals: tuple[str, ...]  # the figures the layer keeps running totals of
    result: Callable[..., R]  # the layer's result of this topic (``busy=`` for a no-op)
    #: checks or conforms the layer table before its read (None: not created yet)
    prepare: Callable[[Table | None], Table | None]


@dataclass(frozen=True)
class Opened:
    """Step 1: the tables of a run, opened before its read."""

    upstream: Table
    errors: Table
    table: Table | None
    started: int | None  # the layer's snapshot at the read: every layer commit asserts it


@dataclass(frozen=True)
class LayerRead:
    """Steps 1 and 2: the opened tables and what they have not consumed."""

    layer: Layer
    opened: Opened
    unconsumed: Unconsumed

    @property
    def to_snapshot_id(self) -> int | None:
        return self.unconsumed.increment.to_snapshot_id

    def rows_after(self, rows: pa.Table, watermark: int | None) -> pa.Table:
        """Arrow ``rows`` of the upstream snapshots after ``watermark``."""
        return rows_after(rows, watermark, self.unconsumed.positions, self.layer.snapshot_column)

    def commit_properties(
        self, table: Table, figures: Mapping[str, int], extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The layer commit's summary: the watermark, where the read started, this run's
        ``figures`` (``leanops.<name>``) and the running totals of ``Layer.totals``."""
        layer = self.layer
        return {
            watermark_key(layer.watermark): str(self.to_snapshot_id),
            **(extra or {}),
            layer.from_property: str(self.unconsumed.layer_watermark or ""),
            **count_properties(figures),
            **counter_properties(table, {name: figures[name] for name in layer.totals}),
        }


class LayerBody(Protocol[W]):
    """What an engine plugs into the skeleton (``W``: its transformed increment)."""

    def reader(
        self, opened: Opened
    ) -> Callable[[int | None, int | None], UpstreamRows] | None:
        """Step 2: the engine's read of what ``opened.upstream`` appended after a watermark
        (None: pyiceberg's, ``watermarks.read_increment``; its second argument:
        ``increments.read_unconsumed``'s ``split_at``)."""

    def transform(self, read: LayerRead) -> AbstractContextManager[W]:
        """Step 3: the rules over the increment (held until the commit is made)."""

    def record_errors(self, read: LayerRead, work: W) -> None:
        """Step 4: the error rows not recorded yet, with the error table's watermark."""

    def commit(self, read: LayerRead, work: W, result: LayerResult) -> None:
        """Step 5: the layer's rows with ``read.commit_properties``, in one snapshot; sets
        the run's figures on ``result``."""


def run_layer(
    catalog: Catalog,
    layer: Layer[R],
    body: LayerBody,
    *,
    lease_ttl_s: float | None = DEFAULT_TTL_S,
    guard: Callable[[Callable[[], R]], R] | None = None,
    errors_table: Callable[[Table], Table] | None = None,
) -> R:
    """One run of ``layer`` with ``body`` (see the module docstring), under the topic's lease
    (``lease_ttl_s``; None: no lease, the commits still assert their snapshots) and inside
    ``guard`` (an engine's net around every attempt). ``errors_table``: the engine's
    preparation of the error table (Spark makes it copy-on-write)."""

    def once() -> R:
        result = layer.result()
        if not catalog.table_exists(layer.upstream):
            return result
        opened = open_tables(catalog, layer, errors_table)
        try:
            unconsumed = read_unconsumed(
                opened.upstream,
                opened.table,
                layer.watermark,
                opened.errors,
                layer.errors_watermark,
                layer.snapshot_column,
                read=body.reader(opened),
            )
        except HistoryLost as lost:
            raise HistoryLost(lost.table, lost.snapshot_id, layer.topic) from None
        result.watermark_from, result.watermark_to = (
            unconsumed.layer_watermark,
            unconsumed.watermark_to,
        )
        if unconsumed.nothing_new:
            # a table consumed before the tags: protect where it stands
            protect_read(opened.upstream, layer.zone, lowest_watermark(
                unconsumed.layer_watermark, unconsumed.errors_watermark, unconsumed.positions))
            return result
        read = LayerRead(layer, opened, unconsumed)
        with body.transform(read) as work:
            body.record_errors(read, work)  # first: a crash before the commit is harmless
            body.commit(read, work, result)
        # both watermarks stand at the read's end now: expiry must keep it (``history``)
        protect_read(opened.upstream, layer.zone, read.to_snapshot_id)
        return result

    def attempts() -> R:
        return retry_commit(once)

    return run_exclusively(
        catalog,
        layer.table[0],
        layer.topic,
        layer.zone,
        attempts if guard is None else lambda: guard(attempts),
        lambda message: layer.result(busy=message),
        ttl_s=lease_ttl_s,
    )


def open_tables(
    catalog: Catalog, layer: Layer, errors_table: Callable[[Table], Table] | None = None
) -> Opened:
    """Step 1: the upstream table (it exists), the error table (created if missing), the
    layer table as ``Layer.prepare`` leaves it, and its snapshot at this read."""
    upstream = catalog.load_table(layer.upstream)
    errors = ensure_table(catalog, layer.errors, layer.errors_schema, layer.errors_spec)
    if errors_table is not None:
        errors = errors_table(errors)
    table = layer.prepare(load_layer_table(catalog, layer.table))
    return Opened(upstream, errors, table, snapshot_id_of(table))


@contextlib.contextmanager
def held(work: W) -> Iterator[W]:
    """A transformed increment with nothing to release (``LayerBody.transform`` of Arrow)."""
    yield work
