"""What both Spark layer runs plug into ``pipeline.layer_run``: the read, the error rows.

- ``reader``: the skeleton's read after the older watermark, through Spark
  (``table_io.read_increment``);
- ``after``: the Spark form of ``increments.rows_after`` (rows of upstream snapshots after a
  watermark);
- ``record_errors``: step 4 for the error rows of a ``mapInArrow`` output, collected in one
  Spark job. First the rows the workers' nets quarantined (``quarantine.guard_batch``),
  recorded by the Arrow engine's own route (``quarantine.ErrorRoute.record_rows``): once, in
  their own append, before the run's other commits; then the other error rows, as
  ``increments.record_error_rows``.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog

from leanops_dagster.engines.spark import table_io
from leanops_dagster.engines.spark._pyspark_internals import collect_arrow
from leanops_dagster.iceberg.commit import retry_commit
from leanops_dagster.pipeline import increments
from leanops_dagster.pipeline.layer_run import Layer, LayerRead, Opened
from leanops_dagster.pipeline.quarantine import ErrorRoute

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

#: the batch flags of the ``mapInArrow`` functions: an error row, and one of those quarantined
IS_ERROR, QUARANTINED = "is_error", "quarantined"


def reader(
    spark: SparkSession,
    catalog: Catalog,
    layer: Layer,
    opened: Opened,
    *,
    with_positions: bool = False,
) -> Callable[[int | None, int | None], table_io.SparkIncrement]:
    """The skeleton's read of ``layer``'s upstream after a watermark, by Spark's incremental
    reads (``table_io.read_increment``)."""
    return lambda watermark, split_at: table_io.read_increment(
        spark,
        catalog,
        opened.upstream,
        layer.upstream,
        watermark,
        layer.snapshot_column,
        with_positions=with_positions,
        split_at=split_at,
    )


def after(read: LayerRead, watermark: int | None) -> Column:
    """Rows of upstream snapshots after ``watermark`` (``increments.rows_after``)."""
    from pyspark.sql import functions as F

    newer = read.unconsumed.snapshots_after(watermark)
    if newer is None:
        return F.lit(True)
    return F.col(read.layer.snapshot_column).isin(newer) if newer else F.lit(False)


def record_errors(
    read: LayerRead,
    route: ErrorRoute,
    output: DataFrame,
    error: str,
    now: dt.datetime,
) -> pa.Table:
    """Step 4 on Spark: the error rows of ``output`` (the batches of a ``mapInArrow``
    function, flagged ``IS_ERROR`` and ``QUARANTINED``, the error row in struct ``error``).
    Returns the quarantined rows' error rows.

    One Spark job collects both kinds (error rows are few next to the rows; the driver holds
    them for pyiceberg's commit anyway): the quarantined rows' whole, the rules' own error rows
    after the error table's watermark."""
    from pyspark.sql import functions as F

    errors = collect_arrow(
        output.where(F.col(IS_ERROR))
        .select(QUARANTINED, f"{error}.*")  # ``after`` reads the error row's snapshot column
        .where(F.col(QUARANTINED) | after(read, read.unconsumed.errors_watermark))
    )
    flags = errors.column(QUARANTINED)
    quarantined = errors.filter(flags).drop_columns([QUARANTINED])
    if quarantined.num_rows:
        # as the Arrow engine's net records them: the error table's rows not held yet, in one
        # append, retried on a commit conflict
        retry_commit(functools.partial(route.record_rows, quarantined))
    # ``increments.record_error_rows`` aligns them to the error table: an append carrying the
    # error table's watermark (with no rows, the watermark-only commit), through pyiceberg:
    # the shared error table's commit carries this topic's watermark as a table property too
    # (``iceberg.state``), which a Spark append cannot
    increments.record_error_rows(
        read.opened.errors, errors.filter(pc.invert(flags)).drop_columns([QUARANTINED]),
        watermark_name=read.layer.errors_watermark, to_snapshot_id=read.to_snapshot_id,
        now=now,
    )
    return quarantined


def count_errors(read: LayerRead, output: DataFrame, error: str) -> tuple[int, int]:
    """Of the error rows of ``output`` (as ``record_errors``) after the layer's watermark:
    how many are the rules' own error rows, how many quarantined rows."""
    from pyspark.sql import functions as F

    counted = {
        row[QUARANTINED]: row["count"]
        for row in output.where(F.col(IS_ERROR))
        .select(QUARANTINED, f"{error}.{read.layer.snapshot_column}")
        .where(after(read, read.unconsumed.layer_watermark))
        .groupBy(QUARANTINED)
        .count()
        .collect()
    }
    return counted.get(False, 0), counted.get(True, 0)
