"""Spark reads and writes of the project's Iceberg tables (the Spark engine's I/O).

Watermarks, snapshot histories and table creation stay with pyiceberg (``iceberg/``), so both
engines read and write them with one code path; Spark reads the increments and writes rows.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table
from pyiceberg.table.update.snapshot import ManageSnapshots

from leanops_dagster.iceberg import watermarks
from leanops_dagster.iceberg.history import plan_after
from leanops_dagster.iceberg.state import stage_state

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import StructField

#: written explicitly so Spark never writes delete files pyiceberg readers and the Arrow
#: engine's MERGE do not apply (Iceberg's Spark default for format v2 is merge-on-read)
COPY_ON_WRITE = {
    "write.delete.mode": "copy-on-write",
    "write.update.mode": "copy-on-write",
    "write.merge.mode": "copy-on-write",
}
#: the position of a row in the Arrow engine's read of an increment (``read_increment``):
#: the rank of its data file in pyiceberg's plan, then its row position in the file. The
#: engine's own column names carry a ``-``, which no Standardized or Curated column name has
#: (they match ``schemas.models.SAFE_NAME``), so a payload key can never take one
FILE_RANK_COLUMN = "__leanops-file-rank"
ROW_POSITION_COLUMN = "__leanops-row-pos"


def spark_name(catalog: Catalog, identifier: tuple[str, str]) -> str:
    """``catalog.namespace.table`` with every part quoted (names are never trusted SQL)."""
    return ".".join(f"`{part.replace('`', '``')}`" for part in (catalog.name, *identifier))


def ensure_copy_on_write(table: Table) -> Table:
    """Set the copy-on-write properties on ``table`` where they are missing (one metadata
    commit the first time, none after)."""
    missing = {k: v for k, v in COPY_ON_WRITE.items() if table.properties.get(k) != v}
    if missing:
        with table.transaction() as tx:
            tx.set_properties(missing)
        table = table.refresh()
    return table


@dataclass(frozen=True)
class SparkIncrement:
    """Rows appended to an upstream table after a watermark, tagged with their snapshot."""

    rows: DataFrame | None  # None: nothing appended
    to_snapshot_id: int | None
    snapshot_ids: tuple[int, ...]

    @property
    def is_empty(self) -> bool:
        return not self.snapshot_ids


#: a table wider than this is read row by row: Iceberg's vectorized Parquet reader allocates a
#: direct-memory vector per column and batch (4 MB for a string column), so a Standardized
#: table of thousands of payload columns exhausted the JVM's direct memory (an OutOfMemoryError
#: that killed the run, or left a mapInArrow stage waiting forever)
VECTORIZED_READ_MAX_COLUMNS = 100


def read_increment(
    spark: SparkSession,
    catalog: Catalog,
    table: Table,
    identifier: tuple[str, str],
    watermark: int | None,
    snapshot_column: str,
    *,
    with_positions: bool = False,
    split_at: int | None = None,
) -> SparkIncrement:
    """What was appended to ``table`` after ``watermark``, one incremental read per APPEND
    snapshot (``start-snapshot-id`` exclusive, ``end-snapshot-id`` inclusive; the first
    snapshot of a table by ``snapshot-id``), each row tagged with its snapshot id in
    ``snapshot_column``, as ``iceberg.watermarks.read_increment`` does.

    ``with_positions`` adds ``FILE_RANK_COLUMN`` and ``ROW_POSITION_COLUMN``: the order in
    which the Arrow engine reads these rows, for rules whose last tie-break is input order.

    Where other writers compacted and expired the snapshots after ``watermark``
    (``iceberg.history``) there is no snapshot range for Spark to read: the Arrow engine's
    read of the difference of the live files (``watermarks.read_increment``, ``split_at`` as
    there) is handed to Spark instead, in its order.
    """
    from pyspark.sql import functions as F

    current = table.current_snapshot()
    if current is None or current.snapshot_id == watermark:
        return SparkIncrement(None, watermark, ())
    plan = plan_after(table, watermark)
    if plan.rewritten:
        return _rewritten_increment(
            spark, table, watermark, snapshot_column, with_positions, split_at)
    snapshots = plan.appends
    name = spark_name(catalog, identifier)
    parts: list[DataFrame] = []
    file_ranks: dict[str, int] = {}
    vectorized = len(table.schema().fields) <= VECTORIZED_READ_MAX_COLUMNS
    for snapshot in snapshots:
        if snapshot.summary is not None and snapshot.summary.get("added-records", "0") == "0":
            continue  # a watermark-only commit: no rows
        reader = spark.read.format("iceberg")
        if not vectorized:
            reader = reader.option("vectorization-enabled", "false")
        if snapshot.parent_snapshot_id is None:
            reader = reader.option("snapshot-id", str(snapshot.snapshot_id))
        else:
            reader = reader.option("start-snapshot-id", str(snapshot.parent_snapshot_id))
            reader = reader.option("end-snapshot-id", str(snapshot.snapshot_id))
        part = reader.load(name).withColumn(snapshot_column, F.lit(snapshot.snapshot_id))
        if with_positions:
            for task in table.incremental_append_scan(
                from_snapshot_id_exclusive=snapshot.parent_snapshot_id,
                to_snapshot_id_inclusive=snapshot.snapshot_id,
            ).plan_files():
                file_ranks.setdefault(task.file.file_path, len(file_ranks))
            part = part.select("*", F.col("_file"), F.col("_pos").alias(ROW_POSITION_COLUMN))
        parts.append(part)
    rows = None
    if parts:
        rows = parts[0]
        for part in parts[1:]:
            rows = rows.unionByName(part, allowMissingColumns=True)
        if with_positions:
            ranks = spark.createDataFrame(
                list(file_ranks.items()), f"_file STRING, `{FILE_RANK_COLUMN}` BIGINT"
            )
            rows = rows.join(F.broadcast(ranks), "_file", "left").drop("_file")
    return SparkIncrement(rows, current.snapshot_id, tuple(s.snapshot_id for s in snapshots))


def _rewritten_increment(
    spark: SparkSession, table: Table, watermark: int | None, snapshot_column: str,
    with_positions: bool, split_at: int | None,
) -> SparkIncrement:
    from pyspark.sql.pandas.types import from_arrow_schema

    increment = watermarks.read_increment(table, watermark, snapshot_column, split_at=split_at)
    rows = increment.rows
    if increment.is_empty:
        return SparkIncrement(None, increment.to_snapshot_id, ())
    if with_positions:  # one "file", in the Arrow read's order
        rows = rows.append_column(FILE_RANK_COLUMN, pa.array(np.zeros(rows.num_rows, np.int64)))
        rows = rows.append_column(
            ROW_POSITION_COLUMN, pa.array(np.arange(rows.num_rows, dtype=np.int64)))
    frame = spark.createDataFrame(rows.to_pandas(), schema=from_arrow_schema(rows.schema))
    return SparkIncrement(frame, increment.to_snapshot_id, increment.snapshot_ids)


def aligned(frame: DataFrame, table: Table) -> DataFrame:
    """``frame`` as ``table``'s columns: in its order and types, a column ``frame`` lacks as
    nulls. A column already of its type is taken as it is: every cast and alias is calls to
    the JVM, and a wide table has thousands of columns."""
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    have = {field.name: field.dataType for field in frame.schema.fields}  # one call
    nulls: dict[str, Column] = {}  # one typed null per type, aliased per missing column

    def column(field: StructField) -> Column:
        if field.name not in have:
            key = field.dataType.json()
            if key not in nulls:
                nulls[key] = F.lit(None).cast(field.dataType)
            return nulls[key].alias(field.name)
        if have[field.name] == field.dataType:
            return F.col(field.name)
        return F.col(field.name).cast(field.dataType).alias(field.name)

    return frame.select(*map(column, from_arrow_schema(table.schema().as_arrow())))


def append(frame: DataFrame, target: str, properties: Mapping[str, str]) -> None:
    """Append ``frame`` to ``target`` (a table or a branch, ``publish``) in one snapshot
    carrying ``properties``."""
    from leanops_dagster.engines.spark.commits import append_with_properties

    with commit_failures_as_pyiceberg():
        append_with_properties(frame.writeTo(target), properties)


def publish(
    catalog: Catalog, identifier: tuple[str, str], started: int | None,
    properties: Mapping[str, str], write: Callable[[str], None],
) -> None:
    """One Spark write of a layer run, published with its state in ONE commit on ``main``.

    Write-audit-publish: ``write(target)`` makes its one commit (an append, a ``MERGE``) on a
    branch of this run made at ``started``, the snapshot the run read; then one pyiceberg
    commit moves ``main`` to the branch's snapshot, sets the state of ``properties`` as table
    properties (``iceberg.state``: Spark's own commit cannot) and drops the branch. That
    commit requires ``main`` to be still at ``started``: another writer's commit in between
    (e.g. a compaction) is a ``CommitFailedException`` and the run reads again, instead of
    Spark rebasing this write onto it. A table with no snapshot yet has no branch to write
    to: its first write goes to ``main``, the state in a second commit right after (until
    then ``iceberg.state`` reads it from the summary).
    """
    name = spark_name(catalog, identifier)
    table = catalog.load_table(identifier)
    if started is None:
        write(name)
        table = catalog.load_table(identifier)
        if table.current_snapshot() is None or table.current_snapshot().parent_snapshot_id:
            raise CommitFailedException(f"{name}: another writer made the first commit")
        with table.transaction() as tx:
            stage_state(tx, properties)
        return
    branch = f"leanops_run_{uuid.uuid4().hex}"
    table.manage_snapshots().create_branch(started, branch).commit()
    try:
        write(f"{name}.`branch_{branch}`")
        table = catalog.load_table(identifier)
        head = table.metadata.refs[branch].snapshot_id
        if table.metadata.current_snapshot_id != started:
            raise CommitFailedException(
                f"{name}: main moved from {started} to {table.metadata.current_snapshot_id} "
                "while this run wrote")
        with table.transaction() as tx:
            ManageSnapshots(tx).set_current_snapshot(head).remove_branch(branch).commit()
            stage_state(tx, properties)
    except BaseException:
        with contextlib.suppress(Exception):  # its snapshot is left for expiry
            catalog.load_table(identifier).manage_snapshots().remove_branch(branch).commit()
        raise


@contextlib.contextmanager
def commit_failures_as_pyiceberg() -> Iterator[None]:
    """Iceberg Java's ``CommitFailedException`` raised as pyiceberg's, so
    ``iceberg.commit.retry_commit`` reruns the whole step after a concurrent commit."""
    try:
        yield
    except Exception as error:
        if "org.apache.iceberg.exceptions.CommitFailedException" in str(error):
            raise CommitFailedException(str(error).splitlines()[0]) from error
        raise
