"""The history a rebuild stages from: a *replay* of an upstream table's current data files,
appended again one snapshot per original append, sharing the files (``pipeline.rebuild``
step 1)."""

from __future__ import annotations

from pyiceberg.catalog import Catalog
from pyiceberg.manifest import DataFile, ManifestContent
from pyiceberg.table import Table

from leanops_dagster.constants import (
    REPLAY_OF_PROPERTY,
)
from leanops_dagster.iceberg.catalog import ensure_table
from leanops_dagster.pipeline.layout import Identifier
from leanops_dagster.pipeline.rebuild.staging import RebuildError


def replay(catalog: Catalog, source_id: Identifier, replay_id: Identifier) -> int | None:
    """A table holding exactly ``source_id``'s current data files, appended again one snapshot
    per original data sequence number (oldest first), sharing the files: no data is copied.
    Returns the source snapshot replayed (None: no source data); built once, reused on resume.

    Why not the source's own snapshots: table maintenance expires snapshots older than its
    retention, so a table's append history stops being complete after a week, while its data
    files (compacted or not) still hold every row. The replay restores a complete, ordered
    history for the staging runs to read in chunks."""
    if not catalog.table_exists(source_id):
        return None
    source = catalog.load_table(source_id)
    if catalog.table_exists(replay_id):
        replay = catalog.load_table(replay_id)
        at = int(replay.properties[REPLAY_OF_PROPERTY])
    else:
        current = source.current_snapshot()
        if current is None:
            return None
        at = current.snapshot_id
        ensure_table(catalog, replay_id, source.schema(), source.spec(),
                     properties={REPLAY_OF_PROPERTY: str(at)})
        replay = catalog.load_table(replay_id)
        if int(replay.properties[REPLAY_OF_PROPERTY]) != at:  # lost a creation race
            at = int(replay.properties[REPLAY_OF_PROPERTY])
    if replay.current_snapshot() is not None:
        return at

    def ids(table: Table) -> list[tuple[int, str, str]]:
        return [(f.field_id, f.name, str(f.field_type)) for f in table.schema().fields]

    if ids(replay) != ids(source):
        raise RebuildError(
            f"cannot replay {'.'.join(source_id)}: its field ids are not in column order"
        )
    groups: dict[int, list[DataFile]] = {}
    for manifest in source.snapshot_by_id(at).manifests(source.io):  # type: ignore[union-attr]
        if manifest.content != ManifestContent.DATA:
            raise RebuildError(f"cannot replay {'.'.join(source_id)}: it has delete files")
        for entry in manifest.fetch_manifest_entry(source.io, discard_deleted=True):
            if entry.data_file.spec_id != replay.spec().spec_id:
                raise RebuildError(
                    f"cannot replay {'.'.join(source_id)}: a file of partition spec "
                    f"{entry.data_file.spec_id}"
                )
            groups.setdefault(entry.sequence_number or 0, []).append(entry.data_file)
    with replay.transaction() as tx:  # one commit: the replay exists whole or not at all
        for sequence in sorted(groups):
            with tx.update_snapshot().fast_append() as append:
                for data_file in sorted(groups[sequence], key=lambda f: f.file_path):
                    append.append_data_file(data_file)
    return at



def replayed(catalog: Catalog, replay_id: Identifier) -> int | None:
    if not catalog.table_exists(replay_id):
        return None
    value = catalog.load_table(replay_id).properties.get(REPLAY_OF_PROPERTY)
    return int(value) if value else None
