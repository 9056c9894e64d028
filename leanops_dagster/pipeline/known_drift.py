"""The drift a topic has: its drift log entries the curated schema still does not declare.

The ``schema_drift`` check reads this on every run, so a run that read nothing (or only rows
without the new keys) keeps the warning while the drift is there; extending the curated schema
to use a column clears it for that column.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyiceberg.catalog import Catalog
from pyiceberg.expressions import EqualTo

from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.schemas.models import CuratedSchema
from leanops_dagster.transforms.drift import drift_keys


@dataclass(frozen=True)
class DriftEntry:
    column: str
    first_seen: dt.datetime | None


def known_drift(catalog: Catalog, tables: TopicTables, schema: CuratedSchema) -> list[DriftEntry]:
    """Logged drift columns of ``tables.topic`` not in ``schema``, sorted by column name."""
    if not catalog.table_exists(tables.drift_log):
        return []
    log = catalog.load_table(tables.drift_log)
    if log.current_snapshot() is None:
        return []
    rows = log.scan(
        row_filter=EqualTo("topic_name", tables.topic),
        selected_fields=("column_name", "first_seen"),
    ).to_arrow()
    earliest: dict[str, dt.datetime | None] = {}
    for column, first_seen in zip(
        rows.column("column_name").to_pylist(), rows.column("first_seen").to_pylist(),
        strict=True,
    ):
        # a column logged twice (two runs racing) keeps its earliest sighting
        known = earliest.get(column)
        if column not in earliest or (first_seen and (known is None or first_seen < known)):
            earliest[column] = first_seen
    return [DriftEntry(c, earliest[c]) for c in drift_keys(earliest, schema)]
