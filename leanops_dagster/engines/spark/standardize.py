"""RAW -> Standardized on Spark: the same run as ``pipeline.standardize``, table for table.

- the increment: one incremental read per RAW snapshot after the older of the Standardized and
  ``parse_errors`` watermarks (``table_io.read_increment``), rows tagged with their snapshot;
- flattening, sanitising and parse errors: the Standardized rules themselves
  (``transforms.rules.standardize_rules`` without its FIFO), batch by batch in
  ``mapInArrow`` (their result does not depend on how rows are split, see
  ``process_tuning.flatten_increment(workers=...)``); payload columns travel as a map and become
  columns once the whole increment's set of columns is known (sorted, as the Arrow engine
  orders them);
- FIFO: a window over ``message_id`` ordered as ``transforms.dedup.fifo_dedup`` orders
  (earliest ``ingestion_ts``, then RAW snapshot, then the Arrow engine's read position), plus an
  anti-join with the stored ``message_id``s;
- additive evolution and table creation: ``pipeline.standardized_evolution.evolve_and_align``
  (pyiceberg), then Spark appends the rows with the watermark and running totals as
  ``snapshot-property.*`` options: one snapshot, as on Arrow.

The run is ``pipeline.layer_run``'s skeleton with this engine's body (``_SparkStandardize``):
the same lease, read, order of commits (``parse_errors`` first, with its own watermark) and
summary (``LayerRead.commit_properties``). The safety net: each batch runs the rules
under ``quarantine.guard_batch``; a RAW row it raises on becomes a ``parse_errors`` row with
the Arrow engine's ``internal:<Exception>`` reason, recorded as the Arrow net records it.
Standardized's key index is not written: the Arrow engine rebuilds it after this snapshot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog

from leanops_dagster.constants import MESSAGE_ID, RAW_SNAPSHOT_ID
from leanops_dagster.engines.spark import layer as spark_layer
from leanops_dagster.engines.spark import table_io
from leanops_dagster.engines.spark.layer import IS_ERROR, QUARANTINED
from leanops_dagster.iceberg.commit import ensure_unchanged
from leanops_dagster.iceberg.lease import DEFAULT_TTL_S
from leanops_dagster.iceberg.state import append_with_state
from leanops_dagster.iceberg.tables import PARSE_ERRORS_SCHEMA
from leanops_dagster.pipeline import quarantine
from leanops_dagster.pipeline.layer_run import LayerRead, Opened, run_layer
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.standardize import (
    StandardizeResult,
    standardized_figures,
    standardized_layer,
)
from leanops_dagster.pipeline.standardized_evolution import evolve_and_align
from leanops_dagster.schemas.models import StandardizedSchema, TopicSchema
from leanops_dagster.transforms import flatten
from leanops_dagster.transforms.rules import StandardizedRows, standardize_rules

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: an input row's index in its batch, carried through flatten_raw; the FIFO rank. Names no
#: payload column can take (a ``-``: see ``table_io.FILE_RANK_COLUMN``)
_ROW, _FIRST = "__leanops-row", "__leanops-first"
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
    """``pipeline.standardize.standardize_topic`` on Spark (same tables, same result), in
    the same layer-run skeleton (``pipeline.layer_run``: the topic's Standardized lease,
    ``lease_ttl_s`` as there). RAW rows that make the rules raise are quarantined to
    ``parse_errors`` as on Arrow (``quarantine.guard_batch`` in each batch)."""
    now = now or dt.datetime.now(dt.UTC)
    return run_layer(
        catalog, standardized_layer(tables, schema),
        _SparkStandardize(spark, catalog, tables, schema, now),
        lease_ttl_s=lease_ttl_s, errors_table=table_io.ensure_copy_on_write,
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
        pa.field(table_io.FILE_RANK_COLUMN, pa.int64()),
        pa.field(table_io.ROW_POSITION_COLUMN, pa.int64()),
    ]
    error_fields = [pa.field(n, PARSE_ERRORS_SCHEMA.as_arrow().field(n).type)
                    for n in flatten.PARSE_ERROR_COLUMNS]
    return pa.schema([
        pa.field(IS_ERROR, pa.bool_()),
        pa.field(QUARANTINED, pa.bool_()),
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
    batches: Iterator[pa.RecordBatch], rules: Callable[[pa.Table], StandardizedRows],
    topic: str, out: pa.Schema,
) -> Iterator[pa.RecordBatch]:
    """``rules`` (``transforms.rules.standardize_rules`` without FIFO) over each batch under
    the batch's safety net (``quarantine.guard_batch``); rows, parse errors and quarantined
    rows (as their ``parse_errors`` rows) in one fixed schema."""
    row_type: pa.StructType = out.field(_ROW_STRUCT).type
    error_type: pa.StructType = out.field(_ERROR_STRUCT).type
    raw_names = _raw_input_schema().names[:-1]
    for batch in batches:
        raw = pa.Table.from_batches([batch])
        n = raw.num_rows
        if n == 0:
            continue
        tagged = raw.select(raw_names).append_column(_ROW, pa.array(np.arange(n, dtype=np.int64)))
        ruled, quarantined = quarantine.guard_batch(tagged, rules)
        result = ruled.flattened
        rows, errors = result.rows, result.errors
        at = rows.column(_ROW)
        carried = {name: raw.column(name).take(at) for name in (
            RAW_SNAPSHOT_ID, table_io.FILE_RANK_COLUMN, table_io.ROW_POSITION_COLUMN)}
        row_struct = pa.StructArray.from_arrays(
            [carried[f.name].combine_chunks() if f.name in carried
             else rows.column(f.name).combine_chunks().cast(f.type) for f in row_type],
            fields=list(row_type),
        )
        error_at = errors.column("raw_snapshot_id")  # flatten_raw put the row index there
        error_columns = {
            name: errors.column(name).combine_chunks() for name in errors.column_names
        }
        error_columns[RAW_SNAPSHOT_ID] = raw.column(RAW_SNAPSHOT_ID).take(
            error_at).combine_chunks()
        error_parts = [pa.table(error_columns)]
        if quarantined is not None:  # as the Arrow net's parse_errors rows, snapshot included
            taken = dataclasses.replace(quarantined, rows=raw.take(quarantined.rows[_ROW]))
            error_parts.append(quarantine.parse_error_rows(
                taken, topic=topic, snapshot_column=RAW_SNAPSHOT_ID))
        error_struct = pa.StructArray.from_arrays(
            [pa.concat_arrays([part.column(f.name).combine_chunks().cast(f.type)
                               for part in error_parts]) for f in error_type],
            fields=list(error_type),
        )
        k, e = rows.num_rows, errors.num_rows
        q = len(error_struct) - e
        table = pa.table({
            IS_ERROR: pa.array([False] * k + [True] * (e + q), pa.bool_()),
            QUARANTINED: pa.array([False] * (k + e) + [True] * q, pa.bool_()),
            _ROW_STRUCT: pa.concat_arrays([row_struct, pa.nulls(e + q, row_type)]),
            _PAYLOAD: pa.concat_arrays([
                _payload_map(rows, result.columns),
                pa.nulls(e + q, out.field(_PAYLOAD).type),
            ]),
            _ERROR_STRUCT: pa.concat_arrays([pa.nulls(k, error_type), error_struct]),
        }, schema=out)
        yield from table.to_batches()


@dataclass(frozen=True)
class _SparkStandardize:
    """The Spark engine's body of a Standardized run (``layer_run.LayerBody``)."""

    spark: SparkSession
    catalog: Catalog
    tables: TopicTables
    schema: TopicSchema
    now: dt.datetime

    def reader(self, opened: Opened) -> Callable[[int | None, int | None], table_io.SparkIncrement]:
        return spark_layer.reader(
            self.spark, self.catalog, standardized_layer(self.tables, self.schema), opened,
            with_positions=True,
        )

    @contextlib.contextmanager
    def transform(self, read: LayerRead) -> Iterator[DataFrame]:
        """``flatten_raw`` in ``mapInArrow``, held (persisted) until the commit."""
        from pyspark import StorageLevel
        from pyspark.sql.pandas.types import from_arrow_schema

        out = _output_schema(self.schema.standardized)
        increment = read.unconsumed.increment
        if increment.rows is None:
            flattened = self.spark.createDataFrame([], from_arrow_schema(out))
        else:
            # the rules as the driver resolved them: the function travels to the workers
            rules = functools.partial(standardize_rules, schema=self.schema.standardized,
                                      snapshot_column=_ROW, fifo=False,
                                      flatten_rows=flatten.flatten_raw)
            flattened = increment.rows.mapInArrow(
                functools.partial(_flatten_batches, rules=rules, topic=self.tables.topic,
                                  out=out),
                from_arrow_schema(out),
            )
        flattened = flattened.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            yield flattened
        finally:
            flattened.unpersist()

    def record_errors(self, read: LayerRead, flattened: DataFrame) -> None:
        spark_layer.record_errors(
            read,
            quarantine.parse_errors_route(self.catalog, self.tables, RAW_SNAPSHOT_ID, self.now),
            flattened, _ERROR_STRUCT, self.now,
        )

    def commit(self, read: LayerRead, flattened: DataFrame, result: StandardizeResult) -> None:
        """Standardized rows of the snapshots after the Standardized watermark."""
        from pyspark import StorageLevel
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        catalog, tables = self.catalog, self.tables
        std, std_started = read.opened.table, read.opened.started
        newer = spark_layer.after(read, read.unconsumed.layer_watermark)
        out = _output_schema(self.schema.standardized)
        rows = flattened.where(~F.col(IS_ERROR))
        payload_names = sorted(
            r[0] for r in rows.select(F.explode(F.map_keys(_PAYLOAD))).distinct().collect()
        )
        meta_fields = [f for f in out.field(_ROW_STRUCT).type
                       if f.name not in (table_io.FILE_RANK_COLUMN, table_io.ROW_POSITION_COLUMN)]
        payload = F.col(_PAYLOAD)  # one column object: each is a call to the JVM
        wide = rows.select(
            *(F.col(f"{_ROW_STRUCT}.{f.name}").alias(f.name) for f in out.field(_ROW_STRUCT).type),
            *(payload.getItem(name).alias(name) for name in payload_names),
        ).where(newer)
        parse_errors, quarantined = spark_layer.count_errors(read, flattened, _ERROR_STRUCT)

        fifo_order = Window.partitionBy(MESSAGE_ID).orderBy(
            F.col("ingestion_ts").asc_nulls_last(),
            F.col(table_io.FILE_RANK_COLUMN).asc_nulls_last(),
            F.col(table_io.ROW_POSITION_COLUMN).asc_nulls_last(),
        )
        first = wide.withColumn(_FIRST, F.row_number().over(fifo_order))
        kept = first.where((F.col(_FIRST) == 1) | F.col(MESSAGE_ID).isNull()).drop(_FIRST)
        if std is not None and std.current_snapshot() is not None:
            stored = self.spark.table(table_io.spark_name(catalog, tables.standardized)).select(
                "message_id")
            kept = kept.join(stored, MESSAGE_ID, "left_anti")
        kept = kept.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            written = kept.count()
            candidates = wide.count()
            incoming = pa.schema(
                [f for f in meta_fields if f.name != RAW_SNAPSHOT_ID]
                + [pa.field(name, pa.string()) for name in payload_names]
            )
            std, _, new_columns = evolve_and_align(
                catalog, tables.standardized, std, incoming.empty_table()
            )
            std = table_io.ensure_copy_on_write(std)
            ensure_unchanged(std, std_started)  # created or evolved since the read: still there?
            # flatten_raw puts each RAW row in one of the three; the net takes out the fourth
            result.rows_read = candidates + parse_errors + quarantined
            result.parse_errors = parse_errors
            result.quarantined = quarantined
            result.duplicates = candidates - written
            result.rows_written = written
            result.new_columns = new_columns
            properties = read.commit_properties(std, standardized_figures(result))
            if written == 0:  # the watermark is committed all the same (as on Arrow)
                append_with_state(std, std.schema().as_arrow().empty_table(), properties)
            else:
                aligned = table_io.aligned(kept, std)
                table_io.publish(catalog, tables.standardized, std_started, properties,
                           lambda target: table_io.append(aligned, target, properties))
        finally:
            kept.unpersist()
        std = catalog.load_table(tables.standardized)
        result.snapshot_id = std.current_snapshot().snapshot_id  # type: ignore[union-attr]
