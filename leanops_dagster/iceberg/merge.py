"""Curated MERGE: a LIFO upsert on ``idempotency_key`` as a partition-scoped copy-on-write.

``merge_lifo(table, increment, ...)`` takes an increment that is already unique per key (the
pure LIFO dedup ran before) and applies it to a Curated table in ONE Iceberg commit:

1. **plan**: the current snapshot's data files (``table.scan().plan_files()``).
2. **lookup**: every data file is scanned for the increment's keys, reading only the key column
   (Parquet projection, through the table's own FileIO filesystem, so ``file://`` and ``s3://``
   behave the same); the few files that hold a match are read again for key + sequence
   columns. A key is looked up in the *whole* table, not only in the increment's partitions:
   the stored version of a key may live in an older ``day(publish_time)`` partition.
3. **decide**, per increment row: no stored row with that key → *insert*; the increment's
   sequence tuple (``publish_time``, ``ingestion_ts``, ``message_id`` by default) is greater than
   the stored one → *update*; otherwise → *stale* (the row is dropped: an older correction that
   arrives later loses, and merging the same increment twice changes nothing). Nulls order
   before every value; equal tuples are stale.
4. **rewrite**: only data files that hold a stored row being replaced are read in full; the
   replaced rows are dropped and the rest is written again. No other file is read or touched.
5. **write + commit**: inserted and updated rows plus the rewritten remainders are written as
   new files (one per partition of ``day(publish_time)``, ``bucket(16, idempotency_key)``),
   and a single snapshot removes the rewritten files and adds the new ones: ``append`` when
   nothing is removed, ``overwrite`` otherwise. ``snapshot_properties`` (the caller's
   watermark) ride on that snapshot.

Nothing to write (empty increment, or every row stale) commits nothing, even when
``snapshot_properties`` are given: the caller decides whether a watermark-only commit is needed.

Commit conflicts: pyiceberg's transaction would otherwise retry a failed commit by re-applying
the same file changes on top of the concurrent snapshot; for a MERGE that is wrong (the other
writer may have inserted the same keys, or advanced the watermark). The commit is therefore made
with pyiceberg's retries disabled and ``CommitFailedException`` reaches the caller, who re-reads
the table and its watermark and runs the merge again (``iceberg.commit.retry_commit``).

Assumptions, checked where cheap: the key and sequence columns are never renamed (the lookup
reads them by name from Parquet); files carrying delete files (we write none) are read through
pyiceberg's ``ArrowScan``, which applies positional deletes, and so stay correct, only slower.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import (
    ArrowScan,
    PyArrowFileIO,
    bin_pack_arrow_table,
    pyarrow_to_schema,
    write_file,
)
from pyiceberg.manifest import DataFile
from pyiceberg.partitioning import (
    PartitionField,
    PartitionFieldValue,
    PartitionKey,
    PartitionSpec,
)
from pyiceberg.schema import Schema
from pyiceberg.table import FileScanTask, Table, TableProperties, WriteTask
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.transforms import BucketTransform, DayTransform
from pyiceberg.utils.properties import property_as_int

KEY_COLUMN = "idempotency_key"
TIME_COLUMN = "publish_time"
SEQUENCE_COLUMNS = ("publish_time", "ingestion_ts", "message_id")
KEY_BUCKETS = 16

_FILE = "__leanops_file"
_STORED = "__stored_"


def curated_partition_spec(
    schema: Schema,
    *,
    time_column: str = TIME_COLUMN,
    key: str = KEY_COLUMN,
    buckets: int = KEY_BUCKETS,
) -> PartitionSpec:
    """``day(publish_time)``, ``bucket(16, idempotency_key)`` for a Curated table schema."""
    ts_field = schema.find_field(time_column)
    key_field = schema.find_field(key)
    return PartitionSpec(
        PartitionField(
            source_id=ts_field.field_id, field_id=1000, transform=DayTransform(),
            name=f"{time_column}_day",
        ),
        PartitionField(
            source_id=key_field.field_id, field_id=1001, transform=BucketTransform(buckets),
            name=f"{key}_bucket",
        ),
    )


@dataclass(frozen=True)
class MergeStats:
    """What one merge did. ``stale`` rows are counted as *superseded* by the caller.

    ``rewritten_files`` data files held a replaced row and were replaced by new files;
    ``rewritten_rows`` is the number of other rows those files held, read and written again
    (the copy-on-write cost). ``partitions_touched`` counts partitions that gained or lost a
    file. ``elapsed`` holds seconds per phase (plan, lookup, decide, rewrite, write, commit).
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
    key: str = KEY_COLUMN,
    sequence: Sequence[str] = SEQUENCE_COLUMNS,
    snapshot_properties: dict[str, str] | None = None,
) -> MergeStats:
    """Apply ``increment`` (unique per ``key``) to ``table`` newest-version-wins, in one commit.

    Raises ``ValueError`` when the increment does not fit the table (unknown columns, nulls in
    required columns, duplicate keys) and lets ``CommitFailedException`` reach the caller.
    On success ``table`` is refreshed to the new snapshot, which carries
    ``snapshot_properties``.
    """
    clock = _Clock()
    sequence = tuple(sequence)
    schema = table.schema()
    rows = _conform(increment, schema, key, sequence)
    if rows.num_rows == 0:
        return MergeStats(elapsed=clock.elapsed)

    snapshot = table.current_snapshot()
    tasks = list(table.scan(snapshot_id=snapshot.snapshot_id).plan_files()) if snapshot else []
    clock.lap("plan")

    stored = _lookup(table, tasks, rows.column(key), key, sequence)
    clock.lap("lookup")

    decision = _decide(rows, stored, key, sequence)
    clock.lap("decide")
    if decision.to_write.num_rows == 0:
        return MergeStats(
            stale=decision.stale, scanned_files=len(tasks), elapsed=clock.elapsed,
        )

    by_path = {task.file.file_path: task for task in tasks}
    rewrite_tasks = [by_path[path] for path in sorted(decision.files_to_rewrite)]
    remainder = _rewrite(table, rewrite_tasks, decision.updated_keys, key, decision.replaced)
    clock.lap("rewrite")

    new_rows = pa.concat_tables([decision.to_write, remainder]) if remainder.num_rows else (
        decision.to_write
    )
    commit_uuid = uuid.uuid4()
    added = write_data_files(table.metadata, table.io, new_rows, write_uuid=commit_uuid)
    clock.lap("write")

    removed = [task.file for task in rewrite_tasks]
    snapshot_id = _commit(table, removed, added, dict(snapshot_properties or {}), commit_uuid)
    clock.lap("commit")

    partitions = {repr(f.partition) for f in itertools.chain(removed, added)}
    return MergeStats(
        inserted=decision.inserted,
        updated=decision.updated,
        stale=decision.stale,
        rewritten_files=len(removed),
        rewritten_rows=remainder.num_rows,
        added_files=len(added),
        partitions_touched=len(partitions),
        scanned_files=len(tasks),
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
            columns.append(column.cast(target.type))
        elif target.nullable:
            columns.append(pa.nulls(increment.num_rows, target.type))
        else:
            raise ValueError(f"increment lacks required column {target.name!r}")
    rows = pa.Table.from_arrays(columns, schema=arrow_schema)
    keys = rows.column(key)
    if keys.null_count:
        raise ValueError(f"{keys.null_count} increment row(s) have a null {key!r}")
    if pc.count_distinct(keys).as_py() != rows.num_rows:
        raise ValueError(f"increment is not unique per {key!r}: run the LIFO dedup first")
    return rows


# --- lookup ---------------------------------------------------------------------------------
def _lookup(
    table: Table,
    tasks: list[FileScanTask],
    keys: pa.ChunkedArray,
    key: str,
    sequence: tuple[str, ...],
) -> pa.Table:
    """Stored rows whose key is in ``keys``: key, sequence columns and the data file path."""
    columns = (key, *sequence)
    target = table.schema().select(*columns).as_arrow()
    out_schema = target.append(pa.field(_FILE, pa.string()))
    if not tasks:
        return out_schema.empty_table()
    value_set = pc.unique(keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys)

    fast, slow = _split_fast_path(table.io, tasks)
    parts: list[pa.Table] = []
    if fast:
        # Pass 1: only the key column of every file; pass 2: key + sequence of matched files.
        matched = _scan_files(table.io, fast, [key], pc.field(key).isin(value_set))
        if matched:
            hits = pa.concat_tables(matched, promote_options="permissive")
            paths = set(pc.unique(hits.column(_FILE)).to_pylist())
            parts += _scan_files(
                table.io, [t for t in fast if t.file.file_path in paths], list(columns),
                pc.field(key).isin(pc.unique(hits.column(key).combine_chunks())),
            )
    for task in slow:
        part = ArrowScan(
            table.metadata, table.io, table.schema().select(*columns), AlwaysTrue()
        ).to_table([task])
        part = part.filter(pc.is_in(part.column(key), value_set=value_set))
        parts.append(part.append_column(_FILE, pa.array([task.file.file_path] * part.num_rows,
                                                        pa.string())))
    parts = [_cast_to(p.select(out_schema.names), out_schema) for p in parts if p.num_rows]
    return pa.concat_tables(parts) if parts else out_schema.empty_table()


def _split_fast_path(
    io: FileIO, tasks: list[FileScanTask]
) -> tuple[list[FileScanTask], list[FileScanTask]]:
    """Files readable directly with pyarrow (no delete files, Parquet, pyarrow FileIO)."""
    if not isinstance(io, PyArrowFileIO):
        return [], tasks
    fast, slow = [], []
    for task in tasks:
        plain = not task.delete_files and task.file.file_format.name == "PARQUET"
        (fast if plain else slow).append(task)
    return fast, slow


def _scan_files(
    io: FileIO, tasks: list[FileScanTask], columns: list[str], row_filter: pc.Expression
) -> list[pa.Table]:
    """Read ``columns`` of the tasks' Parquet files through the FileIO's pyarrow filesystem.

    Adds the data file's location (as Iceberg records it) in column ``_FILE``; batches that
    the filter empties are left out.
    """
    if not isinstance(io, PyArrowFileIO):
        raise TypeError(f"the direct Parquet path needs PyArrowFileIO, not {type(io).__name__}")
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for task in tasks:
        scheme, netloc, path = PyArrowFileIO.parse_location(task.file.file_path, io.properties)
        groups.setdefault((scheme, netloc), {})[path] = task.file.file_path
    parts = []
    for (scheme, netloc), paths in groups.items():
        filesystem = io.fs_by_scheme(scheme, netloc)
        dataset = ds.dataset(list(paths), format="parquet", filesystem=filesystem)
        scanner = dataset.scanner(columns=columns, filter=row_filter)
        for tagged in scanner.scan_batches():
            batch = tagged.record_batch
            if batch.num_rows:
                location = pa.array([paths[tagged.fragment.path]] * batch.num_rows, pa.string())
                parts.append(pa.Table.from_batches([batch]).append_column(_FILE, location))
    return parts


def _cast_to(part: pa.Table, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays(
        [part.column(f.name).cast(f.type) for f in schema], schema=schema.remove_metadata()
    )


# --- decide ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Decision:
    to_write: pa.Table
    updated_keys: pa.Array
    files_to_rewrite: frozenset[str]
    replaced: int
    inserted: int
    updated: int
    stale: int


def _decide(rows: pa.Table, stored: pa.Table, key: str, sequence: tuple[str, ...]) -> _Decision:
    keys = rows.column(key)
    if stored.num_rows == 0:
        return _Decision(rows, pa.array([], keys.type), frozenset(), 0, rows.num_rows, 0, 0)
    renamed = stored.rename_columns(
        [name if name in (key, _FILE) else f"{_STORED}{name}" for name in stored.column_names]
    )
    pairs = rows.select([key, *sequence]).join(
        renamed, keys=key, join_type="inner", use_threads=True
    )
    newer = _lexicographic_greater(
        [pairs.column(c) for c in sequence], [pairs.column(f"{_STORED}{c}") for c in sequence]
    )
    matched_keys = pc.unique(pairs.column(key))
    stale_keys = pc.unique(pairs.filter(pc.invert(newer)).column(key))
    updated_keys = pc.filter(matched_keys, pc.invert(pc.is_in(matched_keys, value_set=stale_keys)))
    replaced_pairs = pairs.filter(pc.is_in(pairs.column(key), value_set=updated_keys))

    is_stale = pc.is_in(keys, value_set=stale_keys)
    to_write = rows.filter(pc.invert(is_stale))
    stale = rows.num_rows - to_write.num_rows
    updated = len(updated_keys)
    return _Decision(
        to_write=to_write,
        updated_keys=updated_keys,
        files_to_rewrite=frozenset(pc.unique(replaced_pairs.column(_FILE)).to_pylist()),
        replaced=replaced_pairs.num_rows,
        inserted=to_write.num_rows - updated,
        updated=updated,
        stale=stale,
    )


def _lexicographic_greater(left: list[pa.ChunkedArray], right: list[pa.ChunkedArray]) -> pa.Array:
    """Element-wise ``tuple(left) > tuple(right)``; a null orders before every value."""
    greater = None
    equal_so_far = None
    for a, b in zip(left, right, strict=True):
        gt = pc.or_(
            pc.fill_null(pc.greater(a, b), False), pc.and_(pc.is_valid(a), pc.is_null(b))
        )
        eq = pc.or_(
            pc.fill_null(pc.equal(a, b), False), pc.and_(pc.is_null(a), pc.is_null(b))
        )
        if greater is None:
            greater, equal_so_far = gt, eq
        else:
            greater = pc.or_(greater, pc.and_(equal_so_far, gt))
            equal_so_far = pc.and_(equal_so_far, eq)
    return greater


# --- rewrite --------------------------------------------------------------------------------
def _rewrite(
    table: Table,
    tasks: list[FileScanTask],
    updated_keys: pa.Array,
    key: str,
    expected_removed: int,
) -> pa.Table:
    """The rows of ``tasks``' files that are not replaced (pyiceberg's reader: schema evolution
    and positional deletes are resolved to the current schema)."""
    arrow_schema = table.schema().as_arrow()
    if not tasks:
        return arrow_schema.empty_table()
    stored = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue()).to_table(tasks)
    keep = stored.filter(pc.invert(pc.is_in(stored.column(key), value_set=updated_keys)))
    removed = stored.num_rows - keep.num_rows
    if removed != expected_removed:
        raise RuntimeError(
            f"copy-on-write mismatch: lookup found {expected_removed} row(s) to replace in "
            f"{len(tasks)} file(s), the rewrite removed {removed}"
        )
    return _cast_to(keep, arrow_schema).replace_schema_metadata(None)


# --- write ----------------------------------------------------------------------------------
def write_data_files(
    table_metadata: TableMetadata,
    io: FileIO,
    df: pa.Table,
    *,
    write_uuid: uuid.UUID | None = None,
) -> list[DataFile]:
    """Write ``df`` as Parquet data files of the table's current spec; nothing is committed.

    Same files as pyiceberg's ``_dataframe_to_data_files`` but partitioned with one sort
    instead of one filter pass per partition, which matters with thousands of partitions.
    """
    if df.num_rows == 0:
        return []
    write_uuid = write_uuid or uuid.uuid4()
    counter = itertools.count(0)
    schema = table_metadata.schema()
    spec = table_metadata.spec()
    target_size = property_as_int(
        table_metadata.properties, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
    )
    task_schema = pyarrow_to_schema(
        df.schema, name_mapping=schema.name_mapping, format_version=table_metadata.format_version
    )

    def tasks() -> Iterator[WriteTask]:
        for partition_key, part in _partitions(spec, schema, df):
            for batches in bin_pack_arrow_table(part, target_size):
                yield WriteTask(
                    write_uuid=write_uuid, task_id=next(counter), record_batches=batches,
                    partition_key=partition_key, schema=task_schema,
                )

    return list(write_file(io=io, table_metadata=table_metadata, tasks=tasks()))


def _partitions(
    spec: PartitionSpec, schema: Schema, df: pa.Table
) -> Iterable[tuple[PartitionKey | None, pa.Table]]:
    if spec.is_unpartitioned():
        yield None, df
        return
    names = [f"_p{i}" for i in range(len(spec.fields))]
    values = pa.table({
        name: part_field.transform.pyarrow_transform(
            schema.find_field(part_field.source_id).field_type
        )(df.column(schema.find_column_name(part_field.source_id)))
        for name, part_field in zip(names, spec.fields, strict=True)
    })
    order = pc.sort_indices(values, sort_keys=[(n, "ascending") for n in names])
    values = values.take(order)
    df = df.take(order)
    groups = values.group_by(names, use_threads=False).aggregate([([], "count_all")])
    offsets = np.concatenate([[0], np.cumsum(groups.column("count_all").to_numpy())])
    group_values = groups.select(names).to_pylist()
    for i, partition in enumerate(group_values):
        key = PartitionKey(
            field_values=[
                PartitionFieldValue(field=part_field, value=partition[name])
                for part_field, name in zip(spec.fields, names, strict=True)
            ],
            partition_spec=spec,
            schema=schema,
        )
        yield key, df.slice(int(offsets[i]), int(offsets[i + 1] - offsets[i])).combine_chunks()


# --- commit ---------------------------------------------------------------------------------
def _commit(
    table: Table,
    removed: list[DataFile],
    added: list[DataFile],
    snapshot_properties: dict[str, str],
    commit_uuid: uuid.UUID,
) -> int | None:
    """One snapshot: remove ``removed``, add ``added``. No transparent rebase on conflict."""
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
    table.metadata = view.metadata
    table.metadata_location = view.metadata_location
    current = table.current_snapshot()
    return current.snapshot_id if current else None
