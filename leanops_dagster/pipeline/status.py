"""What a topic's layers have not consumed yet (freshness check and alert, demo's wait for quiet,
``leanops watermarks``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from leanops_dagster import constants
from leanops_dagster.constants import RAW_WATERMARK, STD_WATERMARK
from leanops_dagster.iceberg.watermarks import appended_snapshots_since, read_watermark
from leanops_dagster.pipeline.layout import TopicTables


@dataclass(frozen=True)
class Pending:
    layer: str  #: the layer that is behind: "standardized" or "curated"
    oldest: Snapshot  #: the oldest upstream snapshot with data it has not consumed

    def age_seconds(self, now: dt.datetime) -> float:
        """How long that snapshot has waited: how far Curated is behind its upstream data."""
        return max(0.0, now.timestamp() - self.oldest.timestamp_ms / 1000)


def _unconsumed(upstream: Table, watermark: int | None) -> list[Snapshot]:
    return [
        s for s in appended_snapshots_since(upstream, watermark)
        if s.summary is not None and s.summary.get("added-records", "0") != "0"
    ]


def oldest_pending(catalog: Catalog, tables: TopicTables) -> Pending | None:
    """The first layer of ``tables.topic`` that is behind its upstream, or None."""
    if not catalog.table_exists(tables.raw):
        return None
    raw = catalog.load_table(tables.raw)
    std = (catalog.load_table(tables.standardized)
           if catalog.table_exists(tables.standardized) else None)
    behind = _unconsumed(raw, read_watermark(std, RAW_WATERMARK) if std is not None else None)
    if behind:
        return Pending("standardized", behind[0])
    if std is None:
        return None
    curated = (catalog.load_table(tables.curated)
               if catalog.table_exists(tables.curated) else None)
    behind = _unconsumed(std, read_watermark(curated, STD_WATERMARK) if curated else None)
    return Pending("curated", behind[0]) if behind else None


@dataclass(frozen=True)
class LayerWatermark:
    """Where one layer of one topic stands: its watermark and what waits behind it."""

    topic: str
    layer: str  #: "standardized" (consumes RAW) or "curated" (consumes Standardized)
    upstream: str  #: the table the watermark points into, e.g. "raw.events_staging"
    snapshot_id: int | None  #: upstream snapshot consumed up to (None: never ran)
    committed_at: dt.datetime | None  #: that upstream snapshot's commit time (None: expired)
    pending_rows: int  #: rows appended upstream after the watermark
    pending_snapshots: int
    oldest_pending_at: dt.datetime | None  #: commit time of the oldest unconsumed snapshot

    def lag_seconds(self, now: dt.datetime) -> float:
        """How long the oldest unconsumed upstream data has waited (0 when nothing waits)."""
        if self.oldest_pending_at is None:
            return 0.0
        return max(0.0, (now - self.oldest_pending_at).total_seconds())


def _commit_time(snapshot: Snapshot) -> dt.datetime:
    return dt.datetime.fromtimestamp(snapshot.timestamp_ms / 1000, dt.UTC)


def _layer_watermark(
    topic: str, layer: str, upstream: Table, downstream: Table | None, name: str
) -> LayerWatermark:
    watermark = read_watermark(downstream, name) if downstream is not None else None
    snapshot = upstream.snapshot_by_id(watermark) if watermark is not None else None
    behind = _unconsumed(upstream, watermark)
    return LayerWatermark(
        topic=topic,
        layer=layer,
        upstream=".".join(upstream.name()),
        snapshot_id=watermark,
        committed_at=_commit_time(snapshot) if snapshot is not None else None,
        pending_rows=sum(int(s.summary.get("added-records", "0")) for s in behind if s.summary),
        pending_snapshots=len(behind),
        oldest_pending_at=_commit_time(behind[0]) if behind else None,
    )


def layer_watermarks(catalog: Catalog, tables: TopicTables) -> list[LayerWatermark]:
    """The Standardized and Curated watermarks of ``tables.topic`` (a layer whose upstream
    table does not exist yet is left out: nothing can be pending behind it)."""
    if not catalog.table_exists(tables.raw):
        return []
    raw = catalog.load_table(tables.raw)
    std = (catalog.load_table(tables.standardized)
           if catalog.table_exists(tables.standardized) else None)
    marks = [_layer_watermark(tables.topic, "standardized", raw, std, RAW_WATERMARK)]
    if std is not None:
        curated = (catalog.load_table(tables.curated)
                   if catalog.table_exists(tables.curated) else None)
        marks.append(_layer_watermark(tables.topic, "curated", std, curated, STD_WATERMARK))
    return marks


def topics_in_raw(catalog: Catalog, namespace_prefix: str = "") -> list[str]:
    """Topics with a RAW table (``<topic>_staging``), onboarded or still buffered (Day 1)."""
    namespace = f"{namespace_prefix}{constants.RAW_ZONE}"
    if not catalog.namespace_exists(namespace):
        return []
    names = [identifier[-1] for identifier in catalog.list_tables(namespace)]
    return sorted(
        name.removesuffix(constants.RAW_TABLE_SUFFIX) for name in names
        if name.endswith(constants.RAW_TABLE_SUFFIX)
    )
