"""A table's own state, kept where other writers' maintenance cannot take it.

The state of a layer or error table is its watermarks, running totals, key-index pointer and
schema version (the keys of ``constants.STATE_PROPERTY_PREFIXES``). Every commit that carries
state puts it twice into ONE Iceberg commit: in the snapshot summary of the data it describes
(the history, and what tables written before this rule hold) and as table properties.

Why table properties: other writers share the tables. Compaction (``rewrite_data_files``,
the Glue compaction optimizer, S3 Tables, Athena ``OPTIMIZE``) and ``rewrite_manifests``
commit ``replace`` snapshots without our summary keys, and snapshot expiry (Glue's retention
optimizer, S3 Tables, ``expire_snapshots``, ``VACUUM``) removes the snapshots that carry them.
Neither touches table properties: every Iceberg commit carries the base metadata's properties
forward. And a property set in the same transaction as a snapshot is as atomic as the summary:
an Iceberg commit swaps one metadata file for another, so its updates (add the snapshot, move
``main``, set the properties) land together or not at all on every catalog: the SQL catalog's
conditional UPDATE of the metadata location, Glue's ``UpdateTable`` with the expected version,
a REST catalog's one commit request with its requirements (S3 Tables' Iceberg REST endpoint
too). Snapshot references (tags) would keep the summaries alive too, but a ref cannot move in
the Spark writer's own commit; tags protect what a consumer has not read instead
(``iceberg.history``).

Reading prefers the property and falls back to the newest summary along the current snapshot's
ancestry (a table last written before this rule).
"""

from __future__ import annotations

from collections.abc import Mapping

from pyiceberg.table import Table, Transaction
from pyiceberg.table.snapshots import ancestors_of

from leanops_dagster.constants import STATE_PROPERTY_PREFIXES, STATE_SNAPSHOT_PROPERTY


def is_state_key(key: str) -> bool:
    return key.startswith(STATE_PROPERTY_PREFIXES)


def state_of(summary_properties: Mapping[str, str]) -> dict[str, str]:
    """The state keys among a commit's summary properties."""
    return {k: v for k, v in summary_properties.items() if is_state_key(k)}


def read_state(table: Table, key: str) -> str | None:
    """The table's current value of state ``key``: its property, else (a table last written
    before state moved into properties) the newest summary value along the ancestry."""
    value = table.properties.get(key)
    if value is not None:
        return value
    return read_summary_value(table, key)


def read_summary_value(table: Table, key: str) -> str | None:
    """The newest value of summary property ``key`` along the current snapshot's ancestry
    (what expiry removes; state is read with ``read_state``)."""
    for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
        if snapshot.summary is not None and key in snapshot.summary.additional_properties:
            return snapshot.summary.additional_properties[key]
    return None


def stage_state(
    tx: Transaction, summary_properties: Mapping[str, str], *, restate: bool = False
) -> None:
    """In ``tx``, after its snapshot is staged: the state keys of that snapshot's summary as
    table properties, and which snapshot they describe (``STATE_SNAPSHOT_PROPERTY``).
    ``restate``: the summary holds the table's whole state (a rebuild's swap), so state
    properties it does not name are removed."""
    state = state_of(summary_properties)
    if restate:
        stale = [k for k in tx.table_metadata.properties if is_state_key(k) and k not in state]
        if stale:
            tx.remove_properties(*stale)
    if state:
        snapshot_id = tx.table_metadata.current_snapshot_id
        tx.set_properties({**state, STATE_SNAPSHOT_PROPERTY: str(snapshot_id)})


def append_with_state(table: Table, rows, summary_properties: Mapping[str, str]) -> None:
    """``table.append(rows)`` whose snapshot carries ``summary_properties``, with their state
    keys set as table properties in the same commit (even with no rows: a watermark-only
    commit)."""
    with table.transaction() as tx:
        tx.append(rows, snapshot_properties=dict(summary_properties))
        stage_state(tx, summary_properties)
