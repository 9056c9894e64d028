"""What a topic's layers have not consumed yet (freshness check, demo's wait for quiet)."""

from __future__ import annotations

from dataclasses import dataclass

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from leanops_dagster.iceberg.watermarks import appended_snapshots_since, read_watermark
from leanops_dagster.pipeline.curate import STD_WATERMARK
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.standardize import RAW_WATERMARK


@dataclass(frozen=True)
class Pending:
    layer: str  #: the layer that is behind: "standardized" or "curated"
    oldest: Snapshot  #: the oldest upstream snapshot with data it has not consumed


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
