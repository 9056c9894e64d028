"""Read-only views of the catalog for ``leanops raw`` and ``leanops info`` (never creates state)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyiceberg.catalog import load_catalog

from leanops_dagster import constants
from leanops_dagster.settings import Settings


def _sqlite_path(settings: Settings) -> Path | None:
    uri = settings.catalog_config.get("uri", "")
    if settings.catalog_type == "sql" and uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///"))
    return None


def catalog_exists(settings: Settings) -> bool:
    """False for an embedded catalog that was never created (opening it would create it)."""
    path = _sqlite_path(settings)
    return path is None or path.exists()


def _open(settings: Settings):
    return load_catalog(settings.catalog_name, **settings.catalog_config)


def catalog_info(settings: Settings) -> dict:
    """Catalog properties (enough for pyiceberg's ``load_catalog`` or DuckDB) and tables."""
    props = settings.catalog_config
    info: dict = {
        "catalog": {
            "name": settings.catalog_name, "type": props.get("type"),
            "uri": props.get("uri"), "warehouse": props.get("warehouse"),
            "home": str(settings.home), "properties": dict(props),
        },
        "namespaces": {},
    }
    if not catalog_exists(settings):
        return info
    catalog = _open(settings)
    for ns in sorted(catalog.list_namespaces()):
        name = ".".join(ns)
        info["namespaces"][name] = sorted(t[-1] for t in catalog.list_tables(ns))
    return info


def raw_table_summary(settings: Settings, topic: str) -> dict | None:
    """Rows, snapshots and latest snapshot id of ``<raw ns>.<topic>_staging`` (None if absent)."""
    ident = (settings.raw_namespace, constants.raw_table_name(topic))
    catalog = _open(settings)
    if not catalog.table_exists(ident):
        return None
    table = catalog.load_table(ident)
    current = table.current_snapshot()
    snapshots = []
    for snap in table.snapshots():
        summary = snap.summary
        snapshots.append({
            "snapshot_id": snap.snapshot_id,
            "parent_snapshot_id": snap.parent_snapshot_id,
            "committed_at": dt.datetime.fromtimestamp(snap.timestamp_ms / 1000, dt.UTC)
            .strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            "operation": summary.operation.value if summary else "",
            "added_records": int(summary.get("added-records", "0")) if summary else 0,
            "total_records": int(summary.get("total-records", "0")) if summary else 0,
        })
    rows = (
        int(current.summary.get("total-records", "0"))
        if current is not None and current.summary is not None else 0
    )
    return {
        "table": ".".join(ident),
        "rows": rows,
        "snapshot_count": len(snapshots),
        "latest_snapshot_id": current.snapshot_id if current is not None else None,
        "snapshots": snapshots,
        "location": table.location(),
    }
