"""Finding the stored rows of given keys in an Iceberg table: the lookup half of MERGE and of
the Standardized ``message_id`` dedup.

``find_stored(table, keys, key, columns)`` returns the stored rows whose ``key`` is one
of ``keys`` (``key``, ``columns`` and the data file path). With a usable key index
(``iceberg.key_index``) only the files of the partitions the index names are read, in one
pass over ``key`` + ``columns``; without one, the key column of every file is read (pass 1),
then ``columns`` of the matched files (pass 2), and the entries of every stored key are kept,
so the caller's commit can write a full index segment and the next lookup is fast again.
Files are read directly with pyarrow (Parquet projection, through the table's own FileIO
filesystem, so ``file://`` and ``s3://`` behave the same); files with delete files, or not
Parquet, go through pyiceberg's reader, which applies deletes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, In
from pyiceberg.expressions.visitors import manifest_evaluator
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.manifest import ManifestContent, ManifestFile
from pyiceberg.table import FileScanTask, Table
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.utils.concurrent import ExecutorFactory

from leanops_dagster.iceberg.datafiles import file_partition_token
from leanops_dagster.iceberg.key_index import (
    Entries,
    KeyIndex,
    candidate_partitions,
    key_hashes,
    updated_index,
)
from leanops_dagster.iceberg.reads import cast_to, read_files, split_fast_path

FILE_COLUMN = "__leanops_file"
_FILE = FILE_COLUMN
_PROBE_ROWS = 2_000_000  # stored keys buffered per membership test (hashing the value set once)


@dataclass
class StoredRows:
    """What a lookup found, and the index state the caller's commit must carry on."""

    rows: pa.Table
    column: str
    index: KeyIndex | None = None  # the usable index read, if any
    segments: list[Entries] = field(default_factory=list)  # its entries
    rebuilt: Entries | None = None  # no usable index: entries of every stored row
    tasks: list[FileScanTask] = field(default_factory=list)  # the files considered

    @property
    def files_read(self) -> int:
        return len(self.tasks)

    def index_property(self, table: Table, new: Entries) -> dict[str, str]:
        """The summary property of the index to commit with rows whose entries are ``new``
        (writes their segment); none when this lookup neither read nor rebuilt an index, so
        the next lookup scans and rebuilds rather than trust an incomplete one."""
        if self.index is not None:
            index = updated_index(table, self.column, self.index, self.segments, new)
        elif self.rebuilt is not None:
            index = updated_index(table, self.column, None, [], Entries.concat([self.rebuilt, new]))
        else:
            return {}
        return index.property()


def find_stored(
    table: Table,
    keys: pa.ChunkedArray | pa.Array,
    key: str,
    columns: tuple[str, ...] = (),
    *,
    hashes: np.ndarray | None = None,
) -> StoredRows:
    """Stored rows of the current snapshot whose ``key`` is in ``keys``: ``key``, ``columns``
    and the data file path. ``hashes``: the ``key_hashes`` of ``keys`` if the caller has them.

    With a usable index only the files of the candidate partitions are read; ``tasks`` of the
    result are the files considered, which hold every row the caller may rewrite.
    """
    columns = tuple(c for c in columns if c != key)
    out_schema = table.schema().select(key, *columns).as_arrow()
    out_schema = out_schema.append(pa.field(_FILE, pa.string()))
    result = StoredRows(out_schema.empty_table(), key)
    snapshot = table.current_snapshot()
    if snapshot is None:  # an empty table: an empty index is complete
        result.rebuilt = Entries.empty()
        return result
    index = KeyIndex.of(table, key)
    segments = index.read(table.io) if index is not None else None
    if len(keys) == 0:
        if index is not None and segments is not None:
            result.index, result.segments = index, segments
        return result
    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    value_set = pc.unique(keys)

    parts: list[pa.Table] = []
    if index is not None and segments is not None:
        result.index, result.segments = index, segments
        wanted = candidate_partitions(segments, key_hashes(keys) if hashes is None else hashes)
        candidates = _plan_partitions(table, snapshot, wanted)
        if candidates is None:  # delete files: pyiceberg's planner pairs them with data files
            scan = table.scan(snapshot_id=snapshot.snapshot_id)
            candidates = [t for t in scan.plan_files() if file_partition_token(t.file) in wanted]
        result.tasks = candidates
        parts = _read_matching(table, candidates, (key, *columns), key, value_set)
    else:
        tasks = list(table.scan(snapshot_id=snapshot.snapshot_id).plan_files())
        result.tasks = tasks
        entries: list[Entries] = []
        fast, slow = split_fast_path(table.io, tasks)
        # Pass 1: only the key column of every file. Pass 2: key + columns of matched files.
        hits = _scan_matching(table.io, fast, [key], key, value_set, collect=entries)
        if hits is not None:
            paths = set(pc.unique(hits.column(_FILE)).to_pylist())
            parts += _read_matching(
                table, [t for t in fast if t.file.file_path in paths], (key, *columns), key,
                pc.unique(hits.column(key).combine_chunks()),
            )
        parts += _read_slow(table, slow, (key, *columns), key, value_set, collect=entries)
        result.rebuilt = Entries.concat(entries)
    parts = [cast_to(p.select(out_schema.names), out_schema) for p in parts if p.num_rows]
    if parts:
        result.rows = pa.concat_tables(parts)
    return result


def _plan_partitions(
    table: Table, snapshot: Snapshot, tokens: set[str]
) -> list[FileScanTask] | None:
    """The data files of the partitions ``tokens``, reading only the manifests whose partition
    summaries can hold them (a table's history spans many manifests; a MERGE touches a few
    days). None when the snapshot has delete files. A row filter on ``plan_files`` would
    prune the same manifests but evaluates every file's column metrics, which cost more than
    reading all manifests did (measured at 10M rows)."""
    manifests = snapshot.manifests(table.io)
    if any(m.content != ManifestContent.DATA for m in manifests):
        return None
    values_by_spec: dict[int, list[list]] = {}
    for token in tokens:
        spec_id, *values = json.loads(token)
        values_by_spec.setdefault(spec_id, []).append(values)
    schema, specs = table.schema(), table.specs()
    evaluators = {}
    for spec_id, tuples in values_by_spec.items():
        if spec_id not in specs:
            continue
        spec = specs[spec_id]
        terms: list[BooleanExpression] = []
        for i, part_field in enumerate(spec.fields):
            wanted = {values[i] for values in tuples}
            if None not in wanted:
                terms.append(In(part_field.name, wanted))
        where = AlwaysTrue() if not terms else terms[0] if len(terms) == 1 else And(*terms)
        evaluators[spec_id] = manifest_evaluator(spec, schema, where)
    chosen = [
        m for m in manifests
        if m.partition_spec_id in evaluators and evaluators[m.partition_spec_id](m)
    ]

    def files_of(manifest: ManifestFile) -> list[FileScanTask]:
        return [
            FileScanTask(entry.data_file)
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
            if file_partition_token(entry.data_file) in tokens
        ]

    executor = ExecutorFactory.get_or_create()
    return [task for tasks in executor.map(files_of, chosen) for task in tasks]


def _read_matching(
    table: Table,
    tasks: list[FileScanTask],
    columns: tuple[str, ...],
    key: str,
    value_set: pa.Array,
) -> list[pa.Table]:
    fast, slow = split_fast_path(table.io, tasks)
    found = _scan_matching(table.io, fast, list(columns), key, value_set) if fast else None
    return ([found] if found is not None else []) + _read_slow(
        table, slow, columns, key, value_set
    )


def _read_slow(
    table: Table,
    tasks: list[FileScanTask],
    columns: tuple[str, ...],
    key: str,
    value_set: pa.Array,
    *,
    collect: list[Entries] | None = None,
) -> list[pa.Table]:
    """Files pyarrow cannot read alone (delete files, other formats), via pyiceberg."""
    parts = []
    for read in read_files(table, tasks, table.schema().select(*columns)):
        part = read.rows
        if collect is not None and part.num_rows:
            collect.append(Entries(
                key_hashes(part.column(key)), np.zeros(part.num_rows, np.int32),
                (file_partition_token(read.file),),
            ))
        part = part.filter(pc.is_in(part.column(key), value_set=value_set))
        parts.append(part.append_column(
            _FILE, pa.array([read.file.file_path] * part.num_rows, pa.string())
        ))
    return parts


def _scan_matching(
    io: FileIO,
    tasks: list[FileScanTask],
    columns: list[str],
    key: str,
    value_set: pa.Array,
    *,
    collect: list[Entries] | None = None,
) -> pa.Table | None:
    """``columns`` of the rows of ``tasks``' files whose ``key`` is in ``value_set``.

    Reads the Parquet files directly (projection: only ``columns`` are decoded) through the
    FileIO's pyarrow filesystem, so local and S3 tables take the same path. Adds the data
    file's location as Iceberg records it in ``_FILE``; None if no row matches. The
    membership test runs on large buffers of rows: each ``is_in`` call hashes ``value_set``.
    """
    if not isinstance(io, PyArrowFileIO):
        raise TypeError(f"the direct Parquet path needs PyArrowFileIO, not {type(io).__name__}")
    if not tasks:
        return None
    locations: list[str] = []
    groups: dict[tuple[str, str], dict[str, int]] = {}
    for task in tasks:
        scheme, netloc, path = PyArrowFileIO.parse_location(task.file.file_path, io.properties)
        groups.setdefault((scheme, netloc), {})[path] = len(locations)
        locations.append(task.file.file_path)

    tokens = tuple(dict.fromkeys(file_partition_token(t.file) for t in tasks))
    position = {token: i for i, token in enumerate(tokens)}
    token_ids = np.array([position[file_partition_token(t.file)] for t in tasks], np.int32)
    found: list[pa.Table] = []
    buffer: list[pa.RecordBatch] = []
    ordinals: list[np.ndarray] = []

    def probe() -> None:
        if not buffer:
            return
        files = np.concatenate(ordinals)
        rows = pa.Table.from_batches(buffer).append_column(_FILE, pa.array(files, pa.int32()))
        if collect is not None:  # every stored key, for a full index segment
            collect.append(Entries(key_hashes(rows.column(key)), token_ids[files], tokens))
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


