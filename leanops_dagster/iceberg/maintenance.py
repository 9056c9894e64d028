"""Table maintenance (the runbook's ``table_maintenance`` job): compaction of small files,
snapshot expiry that spares what a consumer has not read, orphaned key-index segments removed."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from leanops_dagster import constants
from leanops_dagster.constants import INDEX_PROPERTY_PREFIX, SUMMARY_PREFIX
from leanops_dagster.iceberg.datafiles import write_data_files
from leanops_dagster.iceberg.key_index import unreferenced_segments
from leanops_dagster.iceberg.state import is_state_key, read_state, read_summary_value


@dataclass
class MaintenanceResult:
    table: str
    files_before: int
    files_after: int
    snapshots_expired: int
    index_segments_removed: int = 0


def compact_small_files(table: Table, *, min_files: int = 8) -> tuple[int, int]:
    """Rewrite a table's data files into fewer, larger ones when it has many small files.

    Copy-on-write replace in one commit; the latest watermark/total properties are carried
    forward on the new snapshot so readers of the summary keep finding them, and so is the key
    index while every row stays in its partition.
    """
    tasks = list(table.scan().plan_files())
    if len(tasks) < min_files:
        return len(tasks), len(tasks)
    rows = table.scan().to_arrow()
    carried = _carried_properties(table)
    if any(task.file.spec_id != table.spec().spec_id for task in tasks):
        # rows of an older spec land in other partitions now: the key index would point to
        # the old ones, so it is dropped and the next run rebuilds it
        carried = {k: v for k, v in carried.items() if not k.startswith(INDEX_PROPERTY_PREFIX)}
    # One OVERWRITE snapshot (not delete + append): incremental append scans downstream
    # must not see compacted rows as new data.
    with table.transaction() as tx, tx.update_snapshot(
        snapshot_properties=carried
    ).overwrite() as rewrite:
        for task in tasks:
            rewrite.delete_data_file(task.file)
        for data_file in write_data_files(
            tx.table_metadata, table.io, rows, write_uuid=rewrite.commit_uuid
        ).files:
            rewrite.append_data_file(data_file)
    return len(tasks), len(list(table.scan().plan_files()))


def _carried_properties(table: Table) -> dict[str, str]:
    """Watermarks and totals (newest value of each), and the key index pointers of the current
    snapshot only: compaction keeps every row in its partition, so the index stays true, but
    an older pointer would not cover rows a foreign writer added since."""
    keys: set[str] = set()
    for snapshot in table.snapshots():
        if snapshot.summary is not None:
            keys |= {k for k in snapshot.summary.additional_properties
                     if k.startswith(SUMMARY_PREFIX) and not k.startswith(INDEX_PROPERTY_PREFIX)}
    keys |= {k for k in table.properties
             if is_state_key(k) and not k.startswith(INDEX_PROPERTY_PREFIX)}
    values = {k: read_state(table, k) if is_state_key(k) else read_summary_value(table, k)
              for k in keys}
    current = table.current_snapshot()
    if current is not None and current.summary is not None:
        values |= {k: v for k, v in current.summary.additional_properties.items()
                   if k.startswith(INDEX_PROPERTY_PREFIX)}
    return {k: v for k, v in values.items() if v is not None}


def expire_snapshots(table: Table, *, older_than: dt.timedelta, keep_last: int = 5) -> int:
    """Expire snapshots older than ``older_than`` except the newest ``keep_last`` and those a
    tag or branch references (a consumer's tag: ``iceberg.history``)."""
    cutoff_ms = (dt.datetime.now(dt.UTC) - older_than).timestamp() * 1000
    ordered = sorted(table.snapshots(), key=lambda s: s.timestamp_ms)
    protected = {s.snapshot_id for s in ordered[-keep_last:]}
    protected |= {ref.snapshot_id for ref in table.metadata.refs.values()}
    current = table.current_snapshot()
    if current is not None:
        protected.add(current.snapshot_id)
    expired = [
        s.snapshot_id for s in ordered
        if s.timestamp_ms < cutoff_ms and s.snapshot_id not in protected
    ]
    if expired:
        table.maintenance.expire_snapshots().by_ids(expired).commit()
    return len(expired)


def maintain_catalog(
    catalog: Catalog, namespaces: list[str], *, older_than: dt.timedelta, min_files: int = 8
) -> list[MaintenanceResult]:
    results = []
    for namespace in namespaces:
        for identifier in catalog.list_tables(namespace):
            table = catalog.load_table(identifier)
            if table.current_snapshot() is None:
                continue
            is_raw = namespace.endswith(constants.RAW_ZONE)
            # RAW is consumed by snapshot id: compacting or expiring it under a consumer's
            # watermark would hide data, so RAW only expires what every consumer has passed.
            before, after = (0, 0) if is_raw else compact_small_files(table, min_files=min_files)
            expired = 0 if is_raw else expire_snapshots(table, older_than=older_than)
            orphans = unreferenced_segments(table.refresh())
            for location in orphans:
                table.io.delete(location)
            results.append(MaintenanceResult(
                ".".join(identifier), before, after, expired, len(orphans)
            ))
    return results
