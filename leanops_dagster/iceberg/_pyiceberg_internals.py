"""Every use of pyiceberg beyond its public, documented API, in one place.

An upgrade of pyiceberg starts here: re-check each use below against the new version, then add
it to ``CHECKED_VERSIONS`` (``tests/test_library_internals.py`` fails, naming this file, while
the installed version is not listed). No other module imports a private pyiceberg name, builds
a ``Table`` from rewritten metadata or subclasses pyiceberg's I/O (the same test reads them all).

Each use, why, and the version it was checked against (``CHECKED_VERSIONS``: 0.12.0):

- ``parquet_writer_options`` calls ``pyiceberg.io.pyarrow._get_parquet_writer_kwargs``: the
  writer options pyiceberg derives from table properties; there is no public equivalent.
- ``ParquetWriter`` mirrors ``pyiceberg.io.pyarrow.write_file`` with the per-table work done
  once instead of per file (small-file writes). pyiceberg's main branch reworks ``write_file``:
  compare the two on every upgrade.
- ``table_view`` builds a ``Table`` over ``metadata.model_copy(...)``: a read-only view as of a
  snapshot (rebuild's chunked replay) and a view with commit retries off (the MERGE); pyiceberg
  has no time-travel ``Table`` and no per-transaction retry switch.
- ``adopt`` assigns a view's committed metadata to the table, as ``Table.refresh`` does,
  without another catalog read.
- ``relocated_metadata``: ``TableMetadata.model_copy`` with another location (rebuild's dated
  copies of a replaced table).
- ``DiscardingIO`` subclasses ``FileIO`` (and ``OutputFile``) so that data files are written to
  memory and dropped (the safety net's probes).
"""

from __future__ import annotations

import io as _io
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.io import FileIO, InputFile, OutputFile, OutputStream
from pyiceberg.io.pyarrow import (
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
    schema_to_pyarrow,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.table import Table, TableProperties, WriteTask
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.typedef import Record
from pyiceberg.utils.concurrent import ExecutorFactory
from pyiceberg.utils.properties import property_as_int

#: the pyiceberg versions every use below was checked against
CHECKED_VERSIONS = ("0.12.0",)


def parquet_writer_options(properties: dict[str, str]) -> dict:
    """The ``pq.ParquetWriter`` options pyiceberg derives from the table properties
    (compression and its level, page, dictionary page and batch sizes; a warning for the
    options it does not implement).

    pyiceberg has no public equivalent. Its public ``ParquetFormatWriter`` computes the same
    options per file and writes with them, but takes no per-column dictionary choice and
    returns no metadata before it closes; ``write_file`` does the per-table work once per file,
    which ``ParquetWriter`` saves.
    """
    from pyiceberg.io.pyarrow import _get_parquet_writer_kwargs

    return _get_parquet_writer_kwargs(properties)


class ParquetWriter:
    """pyiceberg's ``write_file`` with the per-table work done once instead of per file.

    Same files and ``DataFile`` entries (field ids, writer options, metrics per the table's
    metrics config); used when the schema's names need no sanitising, which pyiceberg's own
    writer handles otherwise. Per-file Python work is what limits small-file writes here.
    """

    def __init__(
        self, table_metadata: TableMetadata, io: FileIO, no_dictionary: Sequence[str] = ()
    ) -> None:
        self.metadata = table_metadata
        self.io = io
        schema = table_metadata.schema()
        properties = table_metadata.properties
        self.arrow_schema = schema_to_pyarrow(schema, include_field_ids=True)
        self.stats_columns = compute_statistics_plan(schema, properties)
        self.column_mapping = parquet_path_to_id_mapping(schema)
        self.writer_kwargs = parquet_writer_options(properties)
        if no_dictionary:
            self.writer_kwargs["use_dictionary"] = [
                name for name in self.arrow_schema.names if name not in set(no_dictionary)
            ]
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


# --- tables over rewritten metadata -----------------------------------------------------------
def table_view(table: Table, **metadata_updates: Any) -> Table:
    """``table`` over its in-memory metadata with ``metadata_updates`` (e.g.
    ``current_snapshot_id=...`` for a read-only view as of a snapshot, or ``properties=...``):
    nothing is written to the catalog by building it."""
    return Table(
        table.name(),
        table.metadata.model_copy(update=metadata_updates),
        table.metadata_location,
        table.io,
        table.catalog,
        table.config,
    )


def adopt(table: Table, view: Table) -> None:
    """``table`` advanced to ``view``'s (committed) metadata by assignment, as
    ``Table.refresh`` would, without another catalog read."""
    table.metadata = view.metadata
    table.metadata_location = view.metadata_location


def relocated_metadata(metadata: TableMetadata, location: str) -> TableMetadata:
    """``metadata`` with another table location (its snapshots and files unchanged)."""
    return metadata.model_copy(update={"location": location})


# --- a FileIO that keeps nothing ----------------------------------------------------------------
class _DiscardedStream(_io.BytesIO):
    def __init__(self, output: _DiscardedOutput) -> None:
        super().__init__()
        self._output = output

    def close(self) -> None:
        if not self.closed:
            self._output.size = self.tell()
        super().close()


class _DiscardedOutput(OutputFile):
    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def exists(self) -> bool:
        return False

    def to_input_file(self) -> InputFile:
        raise NotImplementedError("a probe's data files are not kept")

    def create(self, overwrite: bool = False) -> OutputStream:
        return _DiscardedStream(self)


class DiscardingIO(FileIO):
    """A FileIO whose files are written to memory and dropped: a probe touches no storage."""

    def new_input(self, location: str) -> InputFile:
        raise NotImplementedError("a probe reads nothing")

    def new_output(self, location: str) -> OutputFile:
        return _DiscardedOutput(location)

    def delete(self, location: str | InputFile | OutputFile) -> None:
        return None
