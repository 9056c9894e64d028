"""What a rebuild leaves and removes (``pipeline.rebuild`` step 5): the dated copies of the
replaced tables (registered, then dropped after the snapshot retention) and the staging
tables of a finished rebuild."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import uuid

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError, TableAlreadyExistsError
from pyiceberg.serializers import FromInputFile, ToOutputFile
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from leanops_dagster.constants import (
    IDEMPOTENCY_KEY,
    MESSAGE_ID,
    REPLACED_METADATA_PROPERTY,
)
from leanops_dagster.iceberg._pyiceberg_internals import relocated_metadata
from leanops_dagster.iceberg.key_index import KeyIndex, unreferenced_segments
from leanops_dagster.pipeline.layout import Identifier
from leanops_dagster.pipeline.rebuild.staging import (
    FROM_RAW_SUFFIX,
    REPLACED_MARK,
    STAMP,
    StagingTables,
    list_table_names,
)


def register_replaced_copy(
    catalog: Catalog, live: Table, swap: Snapshot, copy: Identifier
) -> str | None:
    """Register ``copy`` on the pre-swap metadata of ``live``, rewritten with a location of
    its own: the copy reads the old snapshots and data files, while table maintenance of the
    copy (orphan key index segments are found by listing ``<location>/metadata``) can never
    delete the live table's files."""
    location = (swap.summary.additional_properties.get(REPLACED_METADATA_PROPERTY)
                if swap.summary else None)
    if not location or catalog.table_exists(copy):
        return ".".join(copy) if location else None
    old = FromInputFile.table_metadata(live.io.new_input(location))
    own = f"{live.location().rstrip('/')}{REPLACED_MARK}{copy[-1].rsplit(REPLACED_MARK, 1)[1]}"
    path = f"{own}/metadata/00000-{uuid.uuid4()}.metadata.json"
    ToOutputFile.table_metadata(relocated_metadata(old, own), live.io.new_output(path))
    with contextlib.suppress(TableAlreadyExistsError):  # a concurrent rerun was first
        catalog.register_table(copy, path)
    return ".".join(copy)



def drop_replaced_copies(
    catalog: Catalog, namespace: str, *, older_than: dt.timedelta,
    now: dt.datetime | None = None,
) -> list[str]:
    """Drop the dated pre-rebuild copies older than ``older_than`` (catalog entries only: their
    files belong to the live table's history, which snapshot expiry manages)."""
    cutoff = (now or dt.datetime.now(dt.UTC)) - older_than
    pattern = re.compile(
        rf"^[a-z0-9_]+?{REPLACED_MARK}[0-9a-f]+_(\d{{14}}){FROM_RAW_SUFFIX}?$"
    )
    dropped = []
    for name in list_table_names(catalog, namespace):
        match = pattern.match(name)
        if match and dt.datetime.strptime(match[1], STAMP).replace(tzinfo=dt.UTC) < cutoff:
            with contextlib.suppress(NoSuchTableError):
                catalog.drop_table((namespace, name))
                dropped.append(f"{namespace}.{name}")
    return dropped



def drop_staging(catalog: Catalog, staging: StagingTables) -> None:
    """Remove a finished rebuild's staging tables and their files (the live tables hold
    copies of their rows), key index segments included."""
    for identifier in staging.all():
        if not catalog.table_exists(identifier):
            continue
        table = catalog.load_table(identifier)
        segments = [s for column in (IDEMPOTENCY_KEY, MESSAGE_ID)
                    if (index := KeyIndex.of(table, column)) for s in index.segments]
        for location in [*segments, *unreferenced_segments(table)]:
            with contextlib.suppress(OSError):
                table.io.delete(location)
        catalog.purge_table(identifier)
    for identifier in staging.replays():  # their files are the live upstream's: never purge
        with contextlib.suppress(NoSuchTableError):
            catalog.drop_table(identifier)
