"""RAW -> Standardized on Spark: the same run as ``pipeline.standardize``, table for table.

- the increment: one incremental read per RAW snapshot after the older of the Standardized and
  ``parse_errors`` watermarks (``io.read_increment``), rows tagged with their snapshot;
- flattening, sanitising and parse errors: ``transforms.flatten.flatten_raw`` itself, batch by
  batch in ``mapInArrow`` (its result does not depend on how rows are split, see
  ``flatten.concat_results``); payload columns travel as a map and become columns once the
  whole increment's set of columns is known (sorted, as the Arrow engine orders them);
- FIFO: a window over ``message_id`` ordered as ``transforms.dedup.fifo_dedup`` orders
  (earliest ``ingestion_ts``, then RAW snapshot, then the Arrow engine's read position), plus an
  anti-join with the stored ``message_id``s;
- additive evolution and table creation: ``pipeline.schema_evolution.evolve_and_align``
  (pyiceberg), then Spark appends the rows with the watermark and running totals as
  ``snapshot-property.*`` options: one snapshot, as on Arrow.

The commits keep the Arrow engine's order (``parse_errors`` first, with its own watermark).
Standardized's key index is not written: the Arrow engine rebuilds it after this snapshot.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog

from leanops_dagster.constants import (
    RAW_SNAPSHOT_FROM_PROPERTY,
    RAW_SNAPSHOT_ID,
    RAW_WATERMARK,
    STANDARDIZED_ZONE,
    Count,
    count_properties,
    parse_errors_watermark_name,
    watermark_key,
)
from leanops_dagster.engines.spark import io
from leanops_dagster.engines.spark.frames import map_in_arrow
from leanops_dagster.iceberg.catalog import ensure_table, load_layer_table
from leanops_dagster.iceberg.commit import ensure_unchanged, retry_commit, snapshot_id_of
from leanops_dagster.iceberg.lease import DEFAULT_TTL_S
from leanops_dagster.iceberg.tables import PARSE_ERRORS_PARTITION_SPEC, PARSE_ERRORS_SCHEMA
from leanops_dagster.iceberg.watermarks import (
    counter_properties,
    read_watermark,
    snapshot_position,
)
from leanops_dagster.pipeline.evolve import refuse_superseded
from leanops_dagster.pipeline.exclusive import run_exclusively
from leanops_dagster.pipeline.increments import lowest_watermark, record_error_rows
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.schema_evolution import evolve_and_align
from leanops_dagster.pipeline.standardize import StandardizeResult
from leanops_dagster.schemas.models import StandardizedSchema, TopicSchema
from leanops_dagster.transforms import flatten

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_ROW = "__leanops_row"  # an input row's index in its batch, carried through flatten_raw
_IS_ERROR = "is_error"
_ROW_STRUCT, _PAYLOAD, _ERROR_STRUCT = "row", "payload", "error"


def standardize_topic_spark(
    spark: SparkSession,
    catalog: Catalog,
    tables: TopicTables,
    schema: TopicSchema,
    *,
    now: dt.datetime | None = None,
    lease_ttl_s: float | None = DEFAULT_TTL_S,
) -> StandardizeResult:
    """``pipeline.standardize.standardize_topic`` on Spark (same tables, same result), under
    the same Standardized lease of the topic (``lease_ttl_s``: as there)."""
    return run_exclusively(
        catalog, tables.standardized[0], tables.topic, STANDARDIZED_ZONE,
        lambda: retry_commit(lambda: _standardize_once(spark, catalog, tables, schema, now)),
        lambda message: StandardizeResult(topic=tables.topic, busy=message),
        ttl_s=lease_ttl_s,
    )


def _meta_schema(standardized: StandardizedSchema) -> pa.Schema:
    """The metadata columns of flattened rows, in ``flatten_raw``'s order (payload excluded)."""
    empty = _raw_input_schema().empty_table()
    return flatten.flatten_raw(empty, standardized, snapshot_column=_ROW).rows.schema


def _raw_input_schema() -> pa.Schema:
    from leanops_dagster.iceberg.tables import RAW_STAGING_SCHEMA

    return RAW_STAGING_SCHEMA.as_arrow().append(pa.field(_ROW, pa.int64()))


def _output_schema(standardized: StandardizedSchema) -> pa.Schema:
    meta = _meta_schema(standardized)
    row_fields = [f for f in meta if f.name != _ROW] + [
        pa.field(RAW_SNAPSHOT_ID, pa.int64()),
        pa.field(io.FILE_RANK_COLUMN, pa.int64()),
        pa.field(io.ROW_POSITION_COLUMN, pa.int64()),
    ]
    error_fields = [pa.field(n, PARSE_ERRORS_SCHEMA.as_arrow().field(n).type)
                    for n in flatten.PARSE_ERROR_COLUMNS]
    return pa.schema([
        pa.field(_IS_ERROR, pa.bool_()),
        pa.field(_ROW_STRUCT, pa.struct(row_fields)),
        pa.field(_PAYLOAD, pa.map_(pa.string(), pa.string())),
        pa.field(_ERROR_STRUCT, pa.struct(error_fields)),
    ])


def _payload_map(rows: pa.Table, names: list[str]) -> pa.MapArray:
    """Per row, the payload columns that have a value (absent = null), in column order."""
    n = rows.num_rows
    row_at, key_at, values = [], [], []
    for j, name in enumerate(names):
        column = rows.column(name).combine_chunks()
        present = pc.indices_nonzero(pc.is_valid(column))
        row_at.append(present.to_numpy(zero_copy_only=False).astype(np.int64))
        key_at.append(np.full(len(present), j, np.int64))
        values.append(column.take(present).cast(pa.string()))
    if not names:
        return pa.MapArray.from_arrays(
            pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.string()),
            pa.array([], pa.string()))
    rows_of = np.concatenate(row_at)
    order = np.argsort(rows_of, kind="stable")
    offsets = np.zeros(n + 1, np.int32)
    offsets[1:] = np.cumsum(np.bincount(rows_of, minlength=n))
    keys = pa.array(np.array(names, dtype=object)[np.concatenate(key_at)[order]], pa.string())
    return pa.MapArray.from_arrays(
        pa.array(offsets), keys, pa.concat_arrays(values).take(pa.array(order))
    )


def _flatten_batches(
    batches: Iterator[pa.RecordBatch], standardized: StandardizedSchema, out: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """``flatten_raw`` over each batch; rows and parse errors in one fixed schema."""
    row_type: pa.StructType = out.field(_ROW_STRUCT).type
    error_type: pa.StructType = out.field(_ERROR_STRUCT).type
    raw_names = _raw_input_schema().names[:-1]
    for batch in batches:
        raw = pa.Table.from_batches([batch])
        n = raw.num_rows
        if n == 0:
            continue
        tagged = raw.select(raw_names).append_column(_ROW, pa.array(np.arange(n, dtype=np.int64)))
        result = flatten.flatten_raw(tagged, standardized, snapshot_column=_ROW)
        rows, errors = result.rows, result.errors
        at = rows.column(_ROW)
        carried = {name: raw.column(name).take(at)
                   for name in (RAW_SNAPSHOT_ID, io.FILE_RANK_COLUMN, io.ROW_POSITION_COLUMN)}
        row_struct = pa.StructArray.from_arrays(
            [carried[f.name].combine_chunks() if f.name in carried
             else rows.column(f.name).combine_chunks().cast(f.type) for f in row_type],
            fields=list(row_type),
        )
        error_at = errors.column("raw_snapshot_id")  # flatten_raw put the row index there
        error_columns = {
            name: errors.column(name).combine_chunks() for name in errors.column_names
        }
        error_columns["raw_snapshot_id"] = raw.column(RAW_SNAPSHOT_ID).take(
            error_at).combine_chunks()
        error_struct = pa.StructArray.from_arrays(
            [error_columns[f.name].cast(f.type) for f in error_type], fields=list(error_type)
        )
        k, e = rows.num_rows, errors.num_rows
        table = pa.table({
            _IS_ERROR: pa.array([False] * k + [True] * e, pa.bool_()),
            _ROW_STRUCT: pa.concat_arrays([row_struct, pa.nulls(e, row_type)]),
            _PAYLOAD: pa.concat_arrays([
                _payload_map(rows, result.columns),
                pa.nulls(e, out.field(_PAYLOAD).type),
            ]),
            _ERROR_STRUCT: pa.concat_arrays([pa.nulls(k, error_type), error_struct]),
        }, schema=out)
        yield from table.to_batches()


def _standardize_once(
    spark: SparkSession,
    catalog: Catalog,
    tables: TopicTables,
    schema: TopicSchema,
    now: dt.datetime | None,
) -> StandardizeResult:
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    now = now or dt.datetime.now(dt.UTC)
    result = StandardizeResult(topic=tables.topic)
    if not catalog.table_exists(tables.raw):
        return result
    raw = catalog.load_table(tables.raw)
    parse_errors_table = io.ensure_copy_on_write(ensure_table(
        catalog, tables.parse_errors, PARSE_ERRORS_SCHEMA, PARSE_ERRORS_PARTITION_SPEC
    ))
    std = load_layer_table(catalog, tables.standardized)
    refuse_superseded(std, schema)  # a run on the version a rebuild from RAW replaced
    std_started = snapshot_id_of(std)  # the read point the Standardized commit asserts

    pe_watermark_name = parse_errors_watermark_name(tables.topic)
    std_watermark = read_watermark(std, RAW_WATERMARK) if std is not None else None
    pe_watermark = read_watermark(parse_errors_table, pe_watermark_name)
    positions = snapshot_position(raw)
    increment = io.read_increment(
        spark, catalog, raw, tables.raw, lowest_watermark(std_watermark, pe_watermark, positions),
        RAW_SNAPSHOT_ID, with_positions=True,
    )
    result.watermark_from = std_watermark
    if not increment.snapshot_ids or increment.to_snapshot_id == std_watermark:
        result.watermark_to = std_watermark
        return result
    result.watermark_to = increment.to_snapshot_id

    def after(watermark: int | None):
        """Rows of RAW snapshots after ``watermark`` (``increments.rows_after``)."""
        if watermark is None:
            return F.lit(True)
        newer = [sid for sid, pos in positions.items() if pos > positions[watermark]]
        return F.col(RAW_SNAPSHOT_ID).isin(newer) if newer else F.lit(False)

    out = _output_schema(schema.standardized)
    if increment.rows is None:
        flattened = spark.createDataFrame([], from_arrow_schema(out))
    else:
        flattened = map_in_arrow(
            increment.rows,
            functools.partial(_flatten_batches, standardized=schema.standardized, out=out),
            from_arrow_schema(out),
        )
    flattened = flattened.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        errors = flattened.where(F.col(_IS_ERROR)).select(f"{_ERROR_STRUCT}.*")
        rows = flattened.where(~F.col(_IS_ERROR))

        # 1. parse errors of the RAW snapshots parse_errors has not recorded yet
        new_errors = errors.where(after(pe_watermark)).withColumn(
            "recorded_ts", F.lit(now).cast("timestamp"))
        _record_errors(catalog, tables.parse_errors, parse_errors_table, new_errors,
                       pe_watermark_name, increment.to_snapshot_id, now)

        # 2. Standardized rows of the snapshots after the Standardized watermark
        payload_names = sorted(
            r[0] for r in rows.select(F.explode(F.map_keys(_PAYLOAD))).distinct().collect()
        )
        meta_fields = [f for f in out.field(_ROW_STRUCT).type
                       if f.name not in (io.FILE_RANK_COLUMN, io.ROW_POSITION_COLUMN)]
        wide = rows.select(
            *(F.col(f"{_ROW_STRUCT}.{f.name}").alias(f.name) for f in out.field(_ROW_STRUCT).type),
            *(F.col(_PAYLOAD).getItem(name).alias(name) for name in payload_names),
        ).where(after(std_watermark))
        parse_errors = errors.where(after(std_watermark)).count()

        fifo_order = Window.partitionBy("message_id").orderBy(
            F.col("ingestion_ts").asc_nulls_last(), F.col(io.FILE_RANK_COLUMN).asc_nulls_last(),
            F.col(io.ROW_POSITION_COLUMN).asc_nulls_last(),
        )
        first = wide.withColumn("__first", F.row_number().over(fifo_order))
        kept = first.where((F.col("__first") == 1) | F.col("message_id").isNull()).drop("__first")
        if std is not None and std.current_snapshot() is not None:
            stored = spark.table(io.spark_name(catalog, tables.standardized)).select("message_id")
            kept = kept.join(stored, "message_id", "left_anti")
        kept = kept.persist(StorageLevel.MEMORY_AND_DISK)
        written = kept.count()
        candidates = wide.count()
        rows_read = candidates + parse_errors  # flatten_raw puts each RAW row in one of them

        incoming = pa.schema(
            [f for f in meta_fields if f.name != RAW_SNAPSHOT_ID]
            + [pa.field(name, pa.string()) for name in payload_names]
        )
        std, _, new_columns = evolve_and_align(
            catalog, tables.standardized, std, incoming.empty_table()
        )
        std = io.ensure_copy_on_write(std)
        ensure_unchanged(std, std_started)  # created or evolved since the read: still there?
        result.rows_read = rows_read
        result.parse_errors = parse_errors
        result.duplicates = candidates - written
        result.rows_written = written
        result.new_columns = new_columns
        counts = {
            Count.ROWS_READ: result.rows_read,
            Count.PARSE_ERRORS: result.parse_errors,
            Count.DUPLICATES: result.duplicates,
            # no safety net on Spark (a raising row fails the run): the figure is kept, at 0
            Count.QUARANTINED: result.quarantined,
        }
        properties = {
            watermark_key(RAW_WATERMARK): str(increment.to_snapshot_id),
            RAW_SNAPSHOT_FROM_PROPERTY: str(std_watermark or ""),
            **count_properties(counts),
            **counter_properties(std, counts),
        }
        if written == 0:  # the watermark is committed all the same (as on Arrow)
            std.append(std.schema().as_arrow().empty_table(), snapshot_properties=properties)
        else:
            target = from_arrow_schema(std.schema().as_arrow())
            aligned = kept.select(*(
                (F.col(f.name) if f.name in kept.columns else F.lit(None))
                .cast(f.dataType).alias(f.name) for f in target
            ))
            io.append(aligned, catalog, tables.standardized, properties)
            io.ensure_built_on(catalog, tables.standardized, std_started)
        kept.unpersist()
    finally:
        flattened.unpersist()
    std = catalog.load_table(tables.standardized)
    result.snapshot_id = std.current_snapshot().snapshot_id  # type: ignore[union-attr]
    return result


def _record_errors(
    catalog: Catalog,
    identifier: tuple[str, str],
    table,
    rows: DataFrame,
    watermark_name: str,
    to_snapshot_id: int | None,
    now: dt.datetime,
) -> None:
    """``increments.record_error_rows`` for rows in Spark: an append with the error table's
    watermark; with no rows, the Arrow engine's own watermark-only commit."""
    from pyspark.sql.pandas.types import from_arrow_schema

    if rows.isEmpty():
        arrow = table.schema().as_arrow()
        record_error_rows(table, arrow.empty_table(), watermark_name=watermark_name,
                          to_snapshot_id=to_snapshot_id, now=now)
        return
    target = from_arrow_schema(table.schema().as_arrow())
    aligned = rows.select(*(rows[f.name].cast(f.dataType).alias(f.name) for f in target))
    io.append(aligned, catalog, identifier, {watermark_key(watermark_name): str(to_snapshot_id)})
