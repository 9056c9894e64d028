"""What changed in a table since a sensor last looked: its data commits, not its housekeeping.

A table shared with other writers (brief rule 9) gets commits that change no data: Spark's
``rewrite_data_files`` compaction (a ``replace`` snapshot), ``rewrite_manifests`` (``replace``
too), ``expire_snapshots``, tag or property changes (a new metadata file, no new snapshot).
Only ``append``, ``overwrite`` and ``delete`` snapshots change what a downstream layer has to
read, so only they are *data commits*.
"""

from __future__ import annotations

from collections.abc import Iterator

from pyiceberg.table import Table
from pyiceberg.table.snapshots import Operation, Snapshot

DATA_OPERATIONS = frozenset({Operation.APPEND, Operation.OVERWRITE, Operation.DELETE})


def _newer_ancestors(
    table: Table, seen_snapshot_id: int | None, seen_timestamp_ms: int | None
) -> Iterator[Snapshot]:
    """The current snapshot and its ancestors, newest first, down to (not including) the
    snapshot last seen, or to the first one not newer than it when that one was expired."""
    snapshot = table.current_snapshot()
    while snapshot is not None and snapshot.snapshot_id != seen_snapshot_id:
        if seen_timestamp_ms is not None and snapshot.timestamp_ms <= seen_timestamp_ms:
            return
        yield snapshot
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None


def is_data_commit(snapshot: Snapshot) -> bool:
    return snapshot.summary is not None and snapshot.summary.operation in DATA_OPERATIONS


def newest_data_commit(
    table: Table, seen_snapshot_id: int | None, seen_timestamp_ms: int | None = None
) -> Snapshot | None:
    """The newest data commit (``DATA_OPERATIONS``) after the snapshot last seen, or None when
    every commit since is a foreign rewrite or metadata only. Reads only the snapshots newer
    than the one last seen (the table's history behind it is never walked)."""
    return next(
        (s for s in _newer_ancestors(table, seen_snapshot_id, seen_timestamp_ms)
         if is_data_commit(s)),
        None,
    )
