"""Reading Iceberg data files directly with pyarrow where that is safe, pyiceberg otherwise.

pyiceberg's ``ArrowScan`` resolves schema evolution, name mapping and delete files file by
file in Python. Files without delete files whose Parquet columns carry the current schema's
names and field ids need none of that: they are read as one pyarrow dataset (multi-threaded,
filters applied batch by batch inside the scan). Everything else goes through ``ArrowScan``.
"""

from __future__ import annotations

from typing import NamedTuple

import pyarrow as pa
import pyarrow.dataset as ds
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import ArrowScan, PyArrowFileIO
from pyiceberg.manifest import DataFile
from pyiceberg.schema import Schema
from pyiceberg.table import FileScanTask, Table

from leanops_dagster.iceberg.datafiles import cast_columns


def split_fast_path(
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


def cast_to(part: pa.Table, schema: pa.Schema) -> pa.Table:
    """``part``'s columns of ``schema``, in its order and types, without field metadata."""
    columns = cast_columns([part.column(f.name) for f in schema], schema.types)
    return pa.Table.from_arrays(columns, schema=schema.remove_metadata())


class FileRows(NamedTuple):
    """One data file's rows as read; ``scanned``: rows before the filter (deletes applied)."""

    file: DataFile
    rows: pa.Table
    scanned: int


def read_files(
    table: Table,
    tasks: list[FileScanTask],
    schema: Schema,
    *,
    row_filter: ds.Expression | None = None,
) -> list[FileRows]:
    """Each file of ``tasks`` as a table of ``schema``'s columns (``row_filter`` applied),
    in the order of ``tasks``."""
    arrow_schema = schema.as_arrow()
    target = pa.schema([f.remove_metadata() for f in arrow_schema])
    fast, slow = split_fast_path(table.io, tasks)
    read: dict[str, FileRows] = {}
    if fast:
        direct, mismatched = read_current_schema(table.io, fast, arrow_schema, row_filter)
        # no delete files on this path: the file holds exactly its record count
        read.update((f.file_path, FileRows(f, rows, f.record_count)) for f, rows in direct)
        slow = slow + mismatched
    for task in slow:
        rows = ArrowScan(table.metadata, table.io, schema, AlwaysTrue()).to_table([task])
        scanned = rows.num_rows
        if row_filter is not None and rows.num_rows:
            rows = ds.dataset(rows).to_table(filter=row_filter)
        read[task.file.file_path] = FileRows(task.file, cast_to(rows, target), scanned)
    return [read[task.file.file_path] for task in tasks]


def read_current_schema(
    io: FileIO,
    tasks: list[FileScanTask],
    arrow_schema: pa.Schema,
    row_filter: ds.Expression | None = None,
) -> tuple[list[tuple[DataFile, pa.Table]], list[FileScanTask]]:
    """Files whose Parquet columns are ``arrow_schema``'s columns (same names and field ids,
    a projection of them is fine when every projected column is present), read directly;
    the other files, for pyiceberg's reader."""
    if not isinstance(io, PyArrowFileIO):
        raise TypeError(f"the direct Parquet path needs PyArrowFileIO, not {type(io).__name__}")
    expected = {f.name: f.metadata[b"PARQUET:field_id"] for f in arrow_schema}
    target = pa.schema([f.remove_metadata() for f in arrow_schema])
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
            ids = {f.name: (f.metadata or {}).get(b"PARQUET:field_id")
                   for f in fragment.physical_schema}
            if all(ids.get(name) == field_id for name, field_id in expected.items()):
                fragments.append(fragment)
            else:
                mismatched.append(by_path[fragment.path])
        if not fragments:
            continue
        dataset = ds.FileSystemDataset(fragments, target, ds.ParquetFileFormat(), filesystem)
        batches: dict[str, list[pa.RecordBatch]] = {}
        for tagged in dataset.scanner(filter=row_filter).scan_batches():
            batches.setdefault(tagged.fragment.path, []).append(tagged.record_batch)
        for fragment in fragments:
            rows = pa.Table.from_batches(batches.get(fragment.path, []), schema=target)
            read.append((by_path[fragment.path].file, rows))
    return read, mismatched



