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
   before every value; equal tuples are stale. ``ingestion_ts`` then ``message_id`` are always
   appended as tie-breakers when ``sequence`` lacks them (the order of
   ``transforms.dedup.lifo_dedup``, so a schema's ``"sequence": ["publish_time"]`` ranks a
   stored row exactly as the in-increment dedup ranked the increment).
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

Cost model (see ``benchmarks/process.py``): the lookup reads the key column of every data file
(linear in table size, but one narrow column); the rewrite reads and writes every file that
holds a replaced row, so its cost is (distinct files holding corrected keys) x (file size).
With ``day x bucket(16)`` partitions, corrections of recent records touch recent files only;
corrections spread uniformly over years of history would rewrite most of the table (a
merge-on-read design with delete files would avoid that; pyiceberg does not write them).

Assumptions, checked where cheap: the key and sequence columns are never renamed (the lookup
reads them by name from Parquet); files carrying delete files (we write none) are read through
pyiceberg's ``ArrowScan``, which applies positional deletes, and so stay correct, only slower.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import (
    ArrowScan,
    PyArrowFileIO,
    _get_parquet_writer_kwargs,
    bin_pack_arrow_table,
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
    pyarrow_to_schema,
    schema_to_pyarrow,
    write_file,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.partitioning import (
    PartitionField,
    PartitionFieldValue,
    PartitionKey,
    PartitionSpec,
)
from pyiceberg.schema import Schema, sanitize_column_names
from pyiceberg.table import FileScanTask, Table, TableProperties, WriteTask
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.transforms import BucketTransform, DayTransform
from pyiceberg.typedef import Record
from pyiceberg.utils.concurrent import ExecutorFactory
from pyiceberg.utils.properties import property_as_int

KEY_COLUMN = "idempotency_key"
TIME_COLUMN = "publish_time"
SEQUENCE_COLUMNS = ("publish_time", "ingestion_ts", "message_id")
TIEBREAK_COLUMNS = ("ingestion_ts", "message_id")  # as in transforms.dedup.lifo_dedup
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
    sequence = tuple(sequence) + tuple(
        c for c in TIEBREAK_COLUMNS if c not in sequence and c in schema.column_names
    )
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
    if decision.written == 0:
        return MergeStats(
            stale=decision.stale, scanned_files=len(tasks), elapsed=clock.elapsed,
        )

    by_path = {task.file.file_path: task for task in tasks}
    rewrite_tasks = [by_path[path] for path in sorted(decision.files_to_rewrite)]
    remainders = _remainders(table, rewrite_tasks, decision.updated_keys, key, decision.replaced)
    clock.lap("rewrite")

    commit_uuid = uuid.uuid4()
    del rows, stored  # only the rows to write stay in memory
    added = write_data_files(
        table.metadata, table.io, decision.rows, selection=decision.selection,
        remainders=remainders, write_uuid=commit_uuid,
    )
    rewritten_rows = sum(part.num_rows for _, part in remainders)
    del remainders
    clock.lap("write")

    removed = [task.file for task in rewrite_tasks]
    counts = MergeStats(
        inserted=decision.inserted, updated=decision.updated, stale=decision.stale
    )
    properties = (
        snapshot_properties(counts) if callable(snapshot_properties)
        else snapshot_properties or {}
    )
    snapshot_id = _commit(table, removed, added, dict(properties), commit_uuid)
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
_PROBE_ROWS = 2_000_000  # stored keys buffered per membership test (hashing the value set once)


def _lookup(
    table: Table,
    tasks: list[FileScanTask],
    keys: pa.ChunkedArray,
    key: str,
    sequence: tuple[str, ...],
) -> pa.Table:
    """Stored rows whose key is in ``keys``: key, sequence columns and the data file path."""
    columns = (key, *sequence)
    out_schema = table.schema().select(*columns).as_arrow().append(pa.field(_FILE, pa.string()))
    if not tasks:
        return out_schema.empty_table()
    value_set = pc.unique(keys.combine_chunks())

    fast, slow = _split_fast_path(table.io, tasks)
    parts: list[pa.Table] = []
    if fast:
        # Pass 1: only the key column of every file. Pass 2: key + sequence of matched files.
        hits = _scan_matching(table.io, fast, [key], key, value_set)
        if hits is not None:
            paths = set(pc.unique(hits.column(_FILE)).to_pylist())
            stored = _scan_matching(
                table.io, [t for t in fast if t.file.file_path in paths], list(columns), key,
                pc.unique(hits.column(key).combine_chunks()),
            )
            if stored is not None:
                parts.append(stored)
    for task in slow:
        part = ArrowScan(
            table.metadata, table.io, table.schema().select(*columns), AlwaysTrue()
        ).to_table([task])
        part = part.filter(pc.is_in(part.column(key), value_set=value_set))
        parts.append(part.append_column(
            _FILE, pa.array([task.file.file_path] * part.num_rows, pa.string())
        ))
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


def _scan_matching(
    io: FileIO,
    tasks: list[FileScanTask],
    columns: list[str],
    key: str,
    value_set: pa.Array,
) -> pa.Table | None:
    """``columns`` of the rows of ``tasks``' files whose ``key`` is in ``value_set``.

    Reads the Parquet files directly (projection: only ``columns`` are decoded) through the
    FileIO's pyarrow filesystem, so local and S3 tables take the same path. Adds the data
    file's location as Iceberg records it in ``_FILE``; None if no row matches. The
    membership test runs on large buffers of rows: each ``is_in`` call hashes ``value_set``.
    """
    if not isinstance(io, PyArrowFileIO):
        raise TypeError(f"the direct Parquet path needs PyArrowFileIO, not {type(io).__name__}")
    locations: list[str] = []
    groups: dict[tuple[str, str], dict[str, int]] = {}
    for task in tasks:
        scheme, netloc, path = PyArrowFileIO.parse_location(task.file.file_path, io.properties)
        groups.setdefault((scheme, netloc), {})[path] = len(locations)
        locations.append(task.file.file_path)

    found: list[pa.Table] = []
    buffer: list[pa.RecordBatch] = []
    ordinals: list[np.ndarray] = []

    def probe() -> None:
        if not buffer:
            return
        rows = pa.Table.from_batches(buffer).append_column(
            _FILE, pa.array(np.concatenate(ordinals), pa.int32())
        )
        rows = rows.filter(pc.is_in(rows.column(key), value_set=value_set))
        if rows.num_rows:
            found.append(rows)
        buffer.clear()
        ordinals.clear()

    buffered = 0
    for (scheme, netloc), paths in groups.items():
        filesystem = io.fs_by_scheme(scheme, netloc)
        dataset = ds.dataset(list(paths), format="parquet", filesystem=filesystem)
        for tagged in dataset.scanner(columns=columns).scan_batches():
            batch = tagged.record_batch
            if batch.num_rows:
                buffer.append(batch)
                ordinals.append(np.full(batch.num_rows, paths[tagged.fragment.path], np.int32))
                buffered += batch.num_rows
                if buffered >= _PROBE_ROWS:
                    probe()
                    buffered = 0
    probe()
    if not found:
        return None
    rows = pa.concat_tables(found, promote_options="permissive")
    names = pa.array(locations, pa.string())
    return rows.set_column(
        rows.schema.get_field_index(_FILE), _FILE, names.take(rows.column(_FILE))
    )


def _cast_to(part: pa.Table, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_arrays(
        [part.column(f.name).cast(f.type) for f in schema], schema=schema.remove_metadata()
    )


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
    keys = rows.column(key)
    if stored.num_rows == 0:
        return _Decision(rows, None, rows.num_rows, pa.array([], keys.type), frozenset(), 0,
                         rows.num_rows, 0, 0)
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

    # indices, not a filtered copy: the write gathers the rows once, in partition order
    selection = pc.indices_nonzero(pc.invert(pc.is_in(keys, value_set=stale_keys)))
    stale = rows.num_rows - len(selection)
    updated = len(updated_keys)
    return _Decision(
        rows=rows,
        selection=selection,
        written=len(selection),
        updated_keys=updated_keys,
        files_to_rewrite=frozenset(pc.unique(replaced_pairs.column(_FILE)).to_pylist()),
        replaced=replaced_pairs.num_rows,
        inserted=len(selection) - updated,
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
def _remainders(
    table: Table,
    tasks: list[FileScanTask],
    updated_keys: pa.Array,
    key: str,
    expected_removed: int,
) -> list[tuple[DataFile, pa.Table]]:
    """Per file of ``tasks``: the rows that stay (all but those of ``updated_keys``).

    Files written with the current schema (checked by Parquet field id) are read directly;
    others go through pyiceberg's reader, which resolves schema evolution and deletes.
    """
    if not tasks:
        return []
    schema = table.schema()
    arrow_schema = schema.as_arrow()
    fast, slow = _split_fast_path(table.io, tasks)
    tables: list[tuple[DataFile, pa.Table]] = []
    if fast:
        read, mismatched = _read_current_schema(table.io, fast, arrow_schema)
        tables += read
        slow += mismatched
    for task in slow:
        rows = ArrowScan(table.metadata, table.io, schema, AlwaysTrue()).to_table([task])
        tables.append((task.file, _cast_to(rows, arrow_schema)))

    # One membership test over all keys (each is_in call hashes ``updated_keys``), then each
    # file is filtered on its own and its unfiltered copy released: at most one extra file.
    sizes = np.array([t.num_rows for _, t in tables], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    keys = pa.chunked_array([t.column(key) for _, t in tables], type=arrow_schema.field(key).type)
    keep = pc.invert(pc.is_in(keys, value_set=updated_keys))
    removed = int(offsets[-1]) - int(pc.sum(keep).as_py() or 0)
    if removed != expected_removed:
        raise RuntimeError(
            f"copy-on-write mismatch: lookup found {expected_removed} row(s) to replace in "
            f"{len(tables)} file(s), the rewrite removed {removed}"
        )
    for i, (data_file, rows) in enumerate(tables):
        tables[i] = (data_file, rows.filter(keep.slice(int(offsets[i]), int(sizes[i]))))
    return tables


def _read_current_schema(
    io: FileIO, tasks: list[FileScanTask], arrow_schema: pa.Schema
) -> tuple[list[tuple[DataFile, pa.Table]], list[FileScanTask]]:
    """Whole files whose Parquet columns carry the current names and field ids; the rest."""
    if not isinstance(io, PyArrowFileIO):
        raise TypeError(f"the direct Parquet path needs PyArrowFileIO, not {type(io).__name__}")
    expected = {f.name: f.metadata[b"PARQUET:field_id"] for f in arrow_schema}
    target = arrow_schema.remove_metadata()
    target = pa.schema([f.remove_metadata() for f in target])
    read: list[tuple[DataFile, pa.Table]] = []
    mismatched: list[FileScanTask] = []
    groups: dict[tuple[str, str], dict[str, FileScanTask]] = {}
    for task in tasks:
        scheme, netloc, path = PyArrowFileIO.parse_location(task.file.file_path, io.properties)
        groups.setdefault((scheme, netloc), {})[path] = task
    for (scheme, netloc), by_path in groups.items():
        filesystem = io.fs_by_scheme(scheme, netloc)
        fragments = []
        for fragment in ds.dataset(list(by_path), format="parquet", filesystem=filesystem
                                   ).get_fragments():
            physical = fragment.physical_schema
            ids = {f.name: (f.metadata or {}).get(b"PARQUET:field_id") for f in physical}
            if all(expected.get(name) == field_id for name, field_id in ids.items()):
                fragments.append(fragment)
            else:
                mismatched.append(by_path[fragment.path])
        if not fragments:
            continue
        dataset = ds.FileSystemDataset(fragments, target, ds.ParquetFileFormat(), filesystem)
        batches: dict[str, list[pa.RecordBatch]] = {}
        for tagged in dataset.scanner().scan_batches():
            batches.setdefault(tagged.fragment.path, []).append(tagged.record_batch)
        for fragment in fragments:
            rows = pa.Table.from_batches(batches.get(fragment.path, []), schema=target)
            read.append((by_path[fragment.path].file, rows))
    return read, mismatched


# --- write ----------------------------------------------------------------------------------
def write_data_files(
    table_metadata: TableMetadata,
    io: FileIO,
    df: pa.Table,
    *,
    selection: pa.Array | None = None,
    remainders: Sequence[tuple[DataFile, pa.Table]] = (),
    write_uuid: uuid.UUID | None = None,
) -> list[DataFile]:
    """Write ``df`` (its ``selection`` rows if given) and ``remainders`` of rewritten files as
    data files; commit nothing.

    The files pyiceberg's ``_dataframe_to_data_files`` would write, partitioned with one
    grouping pass instead of one filter pass per partition (thousands of partitions are
    normal here). A remainder keeps its file's partition without recomputing it, and shares
    a new file with ``df``'s rows of the same partition.
    """
    write_uuid = write_uuid or uuid.uuid4()
    counter = itertools.count(0)
    schema = table_metadata.schema()
    spec = table_metadata.spec()
    target_size = property_as_int(
        table_metadata.properties, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
    )
    arrow_schema = schema.as_arrow()
    plain = pa.schema([f.remove_metadata() for f in arrow_schema])
    task_schema = pyarrow_to_schema(
        plain, name_mapping=schema.name_mapping, format_version=table_metadata.format_version
    )

    parts: dict[tuple, tuple[PartitionKey | None, list[pa.Table]]] = {}
    loose: list[pa.Table] = []
    for data_file, rows in remainders:
        if not rows.num_rows:
            continue
        rows = _conform_plain(rows, plain)
        if data_file.spec_id != spec.spec_id:
            loose.append(rows)  # written under an older spec: partition again
            continue
        partition_key = _file_partition_key(spec, schema, data_file)
        parts.setdefault(_partition_id(partition_key), (partition_key, []))[1].append(rows)
    fresh = [(_conform_plain(df, plain), selection)] if df.num_rows else []
    fresh += [(rows, None) for rows in loose]
    row_bytes = max((t.nbytes / t.num_rows for t, _ in fresh), default=0.0)

    def tasks() -> Iterator[WriteTask]:
        pending = dict(parts)
        for rows, chosen in fresh:
            for partition_key, group in _partitions(spec, schema, rows, chosen):
                _, tables = pending.pop(_partition_id(partition_key), (partition_key, []))
                yield from packed(partition_key, [group, *tables])
        for partition_key, tables in pending.values():
            yield from packed(partition_key, tables)

    def packed(partition_key: PartitionKey | None, tables: list[pa.Table]) -> Iterator[WriteTask]:
        rows = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
        if rows.num_rows * max(row_bytes, 1.0) < target_size / 2:
            groups: Iterable[list[pa.RecordBatch]] = [rows.to_batches()]  # one file: no packing
        else:
            groups = bin_pack_arrow_table(rows, target_size)
        for batches in groups:
            yield WriteTask(
                write_uuid=write_uuid, task_id=next(counter), record_batches=batches,
                partition_key=partition_key, schema=task_schema,
            )

    if sanitize_column_names(schema) != schema:
        return list(write_file(io=io, table_metadata=table_metadata, tasks=tasks()))
    return _ParquetWriter(table_metadata, io).write(tasks())


def _conform_plain(rows: pa.Table, plain: pa.Schema) -> pa.Table:
    if rows.schema.equals(plain, check_metadata=False) and not rows.schema.metadata:
        return rows
    return pa.Table.from_arrays([rows.column(f.name).cast(f.type) for f in plain], schema=plain)


def _partition_id(partition_key: PartitionKey | None) -> tuple:
    if partition_key is None:
        return ()
    record = partition_key.partition
    return tuple(record[i] for i in range(len(record)))


def _file_partition_key(spec: PartitionSpec, schema: Schema, data_file: DataFile) -> PartitionKey:
    record = data_file.partition
    return PartitionKey(
        field_values=[
            PartitionFieldValue(field=part_field, value=record[i])
            for i, part_field in enumerate(spec.fields)
        ],
        partition_spec=spec,
        schema=schema,
    )


def _partitions(
    spec: PartitionSpec, schema: Schema, df: pa.Table, selection: pa.Array | None = None
) -> Iterable[tuple[PartitionKey | None, pa.Table]]:
    """``df`` (its ``selection`` rows) split by partition: one sort, one gather, zero-copy
    slices."""
    if spec.is_unpartitioned():
        yield None, df if selection is None else df.take(selection)
        return
    names = [f"_p{i}" for i in range(len(spec.fields))]

    def source(part_field: PartitionField) -> pa.ChunkedArray:
        column = df.column(schema.find_column_name(part_field.source_id))
        return column if selection is None else column.take(selection)

    values = pa.table({
        name: part_field.transform.pyarrow_transform(
            schema.find_field(part_field.source_id).field_type
        )(source(part_field))
        for name, part_field in zip(names, spec.fields, strict=True)
    })
    order = pc.sort_indices(values, sort_keys=[(name, "ascending", "at_end") for name in names])
    values = values.take(order)
    df = df.take(order if selection is None else selection.take(order))
    # sorted input + use_threads=False: the groups come out in sorted order
    groups = values.group_by(names, use_threads=False).aggregate([([], "count_all")])
    offsets = np.concatenate([[0], np.cumsum(groups.column("count_all").to_numpy())])
    for i, partition in enumerate(groups.select(names).to_pylist()):
        key = PartitionKey(
            field_values=[
                PartitionFieldValue(field=part_field, value=partition[name])
                for part_field, name in zip(spec.fields, names, strict=True)
            ],
            partition_spec=spec,
            schema=schema,
        )
        yield key, df.slice(int(offsets[i]), int(offsets[i + 1] - offsets[i]))


class _ParquetWriter:
    """pyiceberg's ``write_file`` with the per-table work done once instead of per file.

    Same files and ``DataFile`` entries (field ids, writer options, metrics per the table's
    metrics config); used when the schema's names need no sanitising, which pyiceberg's own
    writer handles otherwise. Per-file Python work is what limits small-file writes here.
    """

    def __init__(self, table_metadata: TableMetadata, io: FileIO) -> None:
        self.metadata = table_metadata
        self.io = io
        schema = table_metadata.schema()
        properties = table_metadata.properties
        self.arrow_schema = schema_to_pyarrow(schema, include_field_ids=True)
        self.stats_columns = compute_statistics_plan(schema, properties)
        self.column_mapping = parquet_path_to_id_mapping(schema)
        self.writer_kwargs = _get_parquet_writer_kwargs(properties)
        self.row_group_size = property_as_int(
            properties, TableProperties.PARQUET_ROW_GROUP_LIMIT,
            TableProperties.PARQUET_ROW_GROUP_LIMIT_DEFAULT,
        )
        self.locations = load_location_provider(table_metadata.location, properties)

    def write(self, tasks: Iterable[WriteTask]) -> list[DataFile]:
        return list(ExecutorFactory.get_or_create().map(self._write_one, tasks))

    def _write_one(self, task: WriteTask) -> DataFile:
        table = pa.Table.from_batches(task.record_batches)
        table = pa.Table.from_arrays(
            [table.column(i) for i in range(table.num_columns)], schema=self.arrow_schema
        )
        path = self.locations.new_data_location(
            data_file_name=task.generate_data_file_filename("parquet"),
            partition_key=task.partition_key,
        )
        output = self.io.new_output(path)
        with output.create(overwrite=True) as stream, pq.ParquetWriter(
            stream, schema=self.arrow_schema, store_decimal_as_integer=True,
            **self.writer_kwargs,
        ) as writer:
            writer.write(table, row_group_size=self.row_group_size)
        statistics = data_file_statistics_from_parquet_metadata(
            parquet_metadata=writer.writer.metadata,
            stats_columns=self.stats_columns,
            parquet_column_mapping=self.column_mapping,
        )
        return DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=path,
            file_format=FileFormat.PARQUET,
            partition=task.partition_key.partition if task.partition_key else Record(),
            file_size_in_bytes=len(output),
            sort_order_id=None,
            spec_id=self.metadata.default_spec_id,
            equality_ids=None,
            key_metadata=None,
            **statistics.to_serialized_dict(),
        )


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
