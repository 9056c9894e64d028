"""Curated MERGE: a LIFO upsert on ``idempotency_key`` as a partition-scoped copy-on-write.

``merge_lifo(table, increment, ...)`` takes an increment that is already unique per key (the
pure LIFO dedup ran before) and applies it to a Curated table in ONE Iceberg commit:

1. **lookup** (``iceberg.lookup.find_stored``): a key is looked up in the *whole* table, not
   only in the increment's partitions: the stored version of a key may live in an older
   ``day(publish_time)`` partition. The table's key index (``iceberg.key_index``, committed
   with every MERGE) names the partitions that may hold the increment's keys; only their
   manifests are planned and only their files' key + sequence columns are read (Parquet
   projection, through the table's own FileIO filesystem, so ``file://`` and ``s3://`` behave
   the same). Without a usable index (first MERGE, another writer committed since) the key
   column of every file is read and a full index is written with this MERGE.
2. **hash** the increment's keys once: the lookup probes the index with them and the write
   records them as the new rows' index entries.
3. **decide**, per increment row (``transforms.ordering.judge_stored``): no stored row with
   that key → *insert*; the increment's version (``sequence`` then the tie-breaks
   ``ingestion_ts``, ``message_id``: ``ordering.version_columns``) is newer than the stored
   one → *update*; otherwise → *stale* (the row is dropped: an older correction that arrives
   later loses, and merging the same increment twice changes nothing). Nulls order before
   every value; equal versions are stale. It is the order ``transforms.dedup.lifo_dedup``
   ranks the increment by, so a schema's ``"sequence": ["publish_time"]`` ranks a stored row
   exactly as the in-increment dedup ranked the increment.
4. **rewrite**: only data files that hold a stored row being replaced are read in full, the
   replaced rows dropped inside the scan (``iceberg.reads``); the rest is written again. No
   other file is read or touched.
5. **write + commit**: inserted and updated rows plus the rewritten remainders are written as
   new files (one per partition of ``day(publish_time)``, ``bucket(16, idempotency_key)``,
   ``iceberg.datafiles``), and a single snapshot removes the rewritten files and adds the new
   ones: ``append`` when nothing is removed, ``overwrite`` otherwise. ``snapshot_properties``
   (the caller's watermark) and the key index pointer ride on that snapshot.

Nothing to write (empty increment, or every row stale) commits nothing, even when
``snapshot_properties`` are given: the caller decides whether a watermark-only commit is needed.

Commit conflicts: pyiceberg's transaction would otherwise retry a failed commit by re-applying
the same file changes on top of the concurrent snapshot; for a MERGE that is wrong (the other
writer may have inserted the same keys, or advanced the watermark). The commit is therefore made
with pyiceberg's retries disabled and ``CommitFailedException`` reaches the caller, who re-reads
the table and its watermark and runs the merge again (``iceberg.commit.retry_commit``).

Cost model (see ``benchmarks/README.md``): the lookup reads the index (12 bytes per stored
key, in O(log N) sorted segments) and the files of the candidate partitions; the rewrite reads
and writes every file that holds a replaced row, so its cost is (distinct files holding
corrected keys) x (file size).
With ``day x bucket(16)`` partitions, corrections of recent records touch recent files only;
corrections spread uniformly over years of history would rewrite most of the table (a
merge-on-read design with delete files would avoid that; pyiceberg does not write them).

Assumptions, checked where cheap: the key and sequence columns are never renamed (the lookup
reads them by name from Parquet); files carrying delete files (we write none) are read through
pyiceberg's ``ArrowScan``, which applies positional deletes, and so stay correct, only slower.
"""

from __future__ import annotations

import contextlib
import itertools
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from pyiceberg.manifest import DataFile
from pyiceberg.schema import Schema
from pyiceberg.table import FileScanTask, Table, TableProperties, Transaction

from leanops_dagster.constants import IDEMPOTENCY_KEY
from leanops_dagster.iceberg.datafiles import cast_columns, write_data_files
from leanops_dagster.iceberg.key_index import key_hashes
from leanops_dagster.iceberg.lookup import FILE_COLUMN, find_stored
from leanops_dagster.iceberg.reads import read_files
from leanops_dagster.iceberg.state import stage_state
from leanops_dagster.transforms.ordering import judge_stored, version_columns

_FILE = FILE_COLUMN


@dataclass(frozen=True)
class MergeStats:
    """What one merge did. ``stale`` rows are counted as *superseded* by the caller.

    ``rewritten_files`` data files held a replaced row and were replaced by new files;
    ``rewritten_rows`` is the number of other rows those files held, read and written again
    (the copy-on-write cost). ``partitions_touched`` counts partitions that gained or lost a
    file. ``elapsed`` holds seconds per phase (lookup, decide, rewrite, write, commit).
    """

    inserted: int = 0
    updated: int = 0
    stale: int = 0
    rewritten_files: int = 0
    rewritten_rows: int = 0
    added_files: int = 0
    partitions_touched: int = 0
    scanned_files: int = 0
    snapshot_id: int | None = None
    elapsed: dict[str, float] = field(default_factory=dict)

    @property
    def rows_in(self) -> int:
        return self.inserted + self.updated + self.stale

    @property
    def seconds(self) -> float:
        return sum(self.elapsed.values())


class _Clock:
    def __init__(self) -> None:
        self.elapsed: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.elapsed[phase] = self.elapsed.get(phase, 0.0) + now - self._last
        self._last = now


def merge_lifo(
    table: Table,
    increment: pa.Table,
    *,
    key: str = IDEMPOTENCY_KEY,
    sequence: Sequence[str] = version_columns(),
    snapshot_properties: Mapping[str, str]
    | Callable[[MergeStats], Mapping[str, str]]
    | None = None,
) -> MergeStats:
    """Apply ``increment`` (unique per ``key``) to ``table`` newest-version-wins, in one commit.

    Raises ``ValueError`` when the increment does not fit the table (unknown columns, nulls in
    required columns, duplicate keys) and lets ``CommitFailedException`` reach the caller.
    On success ``table`` is refreshed to the new snapshot, which carries
    ``snapshot_properties``; pass a function of the counts (inserted, updated, stale) to put
    figures only the merge knows into the same snapshot as the data.
    """
    clock = _Clock()
    schema = table.schema()
    sequence = version_columns(sequence, schema.column_names)
    rows = _conform(increment, schema, key, sequence)
    if rows.num_rows == 0:
        return MergeStats(elapsed=clock.elapsed)

    hashes = key_hashes(rows.column(key))
    lookup = find_stored(table, rows.column(key), key, sequence, hashes=hashes)
    stored = lookup.rows
    clock.lap("lookup")

    decision = _decide(rows, stored, key, sequence)
    clock.lap("decide")
    if decision.written == 0:
        return MergeStats(
            stale=decision.stale, scanned_files=lookup.files_read, elapsed=clock.elapsed,
        )

    by_path = {task.file.file_path: task for task in lookup.tasks}
    rewrite_tasks = [by_path[path] for path in sorted(decision.files_to_rewrite)]
    remainders = _remainders(table, rewrite_tasks, decision.updated_keys, key, decision.replaced)
    clock.lap("rewrite")

    commit_uuid = uuid.uuid4()
    del rows, stored  # only the rows to write stay in memory
    written = write_data_files(
        table.metadata, table.io, decision.rows, selection=decision.selection,
        remainders=remainders, write_uuid=commit_uuid, index_column=key, hashes=hashes,
    )
    added = written.files
    rewritten_rows = sum(part.num_rows for _, part in remainders)
    del remainders
    index_property = lookup.index_property(table, written.entries)
    clock.lap("write")

    removed = [task.file for task in rewrite_tasks]
    counts = MergeStats(
        inserted=decision.inserted, updated=decision.updated, stale=decision.stale
    )
    properties = (
        snapshot_properties(counts) if callable(snapshot_properties)
        else snapshot_properties or {}
    )
    properties = {**properties, **index_property}
    snapshot_id = _commit(table, removed, added, properties, commit_uuid)
    clock.lap("commit")

    partitions = {repr(f.partition) for f in itertools.chain(removed, added)}
    return MergeStats(
        inserted=decision.inserted,
        updated=decision.updated,
        stale=decision.stale,
        rewritten_files=len(removed),
        rewritten_rows=rewritten_rows,
        added_files=len(added),
        partitions_touched=len(partitions),
        scanned_files=lookup.files_read,
        snapshot_id=snapshot_id,
        elapsed=clock.elapsed,
    )


# --- increment ------------------------------------------------------------------------------
def _conform(increment: pa.Table, schema: Schema, key: str, sequence: tuple[str, ...]) -> pa.Table:
    """The increment in the table's column order and Arrow types; strict about its columns."""
    arrow_schema = schema.as_arrow()
    unknown = sorted(set(increment.column_names) - set(arrow_schema.names))
    if unknown:
        raise ValueError(f"increment has columns the table does not have: {unknown}")
    for name in (key, *sequence):
        if name not in arrow_schema.names:
            raise ValueError(f"table has no column {name!r} (merge key / sequence)")
    columns = []
    for target in arrow_schema:
        if target.name in increment.column_names:
            column = increment.column(target.name)
            if not target.nullable and column.null_count:
                raise ValueError(
                    f"column {target.name!r} is required but has {column.null_count} null(s)"
                )
            columns.append(column)
        elif target.nullable:
            columns.append(pa.nulls(increment.num_rows, target.type))
        else:
            raise ValueError(f"increment lacks required column {target.name!r}")
    columns = cast_columns(columns, arrow_schema.types)
    rows = pa.Table.from_arrays(columns, schema=arrow_schema)
    keys = rows.column(key)
    if keys.null_count:
        raise ValueError(f"{keys.null_count} increment row(s) have a null {key!r}")
    if pc.count_distinct(keys).as_py() != rows.num_rows:
        raise ValueError(f"increment is not unique per {key!r}: run the LIFO dedup first")
    return rows


# --- decide ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Decision:
    rows: pa.Table
    selection: pa.Array | None  # indices of ``rows`` to write (None: all of them)
    written: int
    updated_keys: pa.Array
    files_to_rewrite: frozenset[str]
    replaced: int
    inserted: int
    updated: int
    stale: int


def _decide(rows: pa.Table, stored: pa.Table, key: str, sequence: tuple[str, ...]) -> _Decision:
    verdict = judge_stored(rows, stored, key, sequence)
    return _Decision(
        rows=rows,
        selection=verdict.selection,
        written=verdict.written,
        updated_keys=verdict.updated_keys,
        files_to_rewrite=frozenset(pc.unique(verdict.replaced.column(_FILE)).to_pylist()),
        replaced=verdict.replaced.num_rows,
        inserted=verdict.inserted,
        updated=verdict.updated,
        stale=verdict.stale,
    )


# --- rewrite --------------------------------------------------------------------------------
def _remainders(
    table: Table,
    tasks: list[FileScanTask],
    updated_keys: pa.Array,
    key: str,
    expected_removed: int,
) -> list[tuple[DataFile, pa.Table]]:
    """Per file of ``tasks``: the rows that stay (all but those of ``updated_keys``), the
    filter applied inside the scan (``reads.read_files``)."""
    if not tasks:
        return []
    read = read_files(table, tasks, table.schema(),
                      row_filter=~ds.field(key).isin(updated_keys))
    removed = sum(f.scanned - f.rows.num_rows for f in read)
    if removed != expected_removed:
        raise RuntimeError(
            f"copy-on-write mismatch: lookup found {expected_removed} row(s) to replace in "
            f"{len(tasks)} file(s), the rewrite removed {removed}"
        )
    return [(f.file, f.rows) for f in read]


# --- commit ---------------------------------------------------------------------------------
def _commit(
    table: Table,
    removed: list[DataFile],
    added: list[DataFile],
    snapshot_properties: dict[str, str],
    commit_uuid: uuid.UUID,
) -> int | None:
    """One snapshot: remove ``removed``, add ``added``. No transparent rebase on conflict.

    pyiceberg's public snapshot API (``Transaction.update_snapshot``): an ``overwrite`` that
    deletes and appends the given data files, or a ``fast_append`` when nothing is removed."""
    with _transaction_without_retries(table) as tx:
        update = tx.update_snapshot(snapshot_properties=snapshot_properties)
        if removed:
            with update.overwrite(commit_uuid=commit_uuid) as overwrite:
                for data_file in removed:
                    overwrite.delete_data_file(data_file)
                for data_file in added:
                    overwrite.append_data_file(data_file)
        else:
            with update.fast_append() as append:
                for data_file in added:
                    append.append_data_file(data_file)
        stage_state(tx, snapshot_properties)  # the same commit (``iceberg.state``)
    current = table.current_snapshot()
    return current.snapshot_id if current else None


@contextlib.contextmanager
def _transaction_without_retries(table: Table) -> Iterator[Transaction]:
    """A transaction on ``table`` that never retries a failed commit; ``table`` is advanced
    to the committed metadata afterwards.

    The one place this module reaches past pyiceberg's public API (checked against pyiceberg
    0.12.0): the transaction reads its retry count from the table's properties when it
    commits (``Transaction.commit_transaction``) and offers no per-transaction switch, so it
    runs on a view of ``table`` whose in-memory metadata says ``commit.retry.num-retries=0``
    (no metadata commit of its own); then ``table`` takes the view's new metadata by
    assignment, as ``Table.refresh`` would, without another catalog read.
    """
    view = Table(
        table.name(),
        table.metadata.model_copy(update={
            "properties": {**table.metadata.properties, TableProperties.COMMIT_NUM_RETRIES: "0"}
        }),
        table.metadata_location,
        table.io,
        table.catalog,
        table.config,
    )
    with view.transaction() as tx:
        yield tx
    table.metadata = view.metadata
    table.metadata_location = view.metadata_location
