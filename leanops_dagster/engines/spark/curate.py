"""Standardized -> Curated on Spark: the same run as ``pipeline.curate``, table for table.

- the increment: incremental reads of the Standardized snapshots after the older of the
  Curated and curated ``errors`` watermarks, rows tagged with their snapshot;
- CDE validation, casts and PII masking: ``transforms.validate.validate_and_cast`` and
  ``transforms.mask.mask_pii`` themselves, batch by batch in ``mapInArrow`` (both row-wise);
- LIFO in the increment: a window over ``idempotency_key`` in the order of versions of
  ``transforms.ordering`` (``ordering.newest_first``, as ``transforms.dedup`` ranks);
- LIFO against stored rows: ``MERGE INTO`` whose update condition is the same lexicographic
  "newer than" over the same columns (``ordering.version_columns``; ``lifo_newer_sql``: null
  orders first, equal is not newer), run inside
  ``CommitMetadata.withCommitProperties`` so the watermark, this run's counts and the running
  totals are in the MERGE's own snapshot. The counts are decided first, by a join with the
  stored (key, sequence) on the snapshot the MERGE then builds on (checked after the commit);
- the drift log: ``pipeline.curate._log_new_drift`` on the rows carrying undeclared columns.

Tables are created by pyiceberg exactly as the Arrow engine creates them (schema, partition
spec ``day(publish_time)``, ``bucket(16, idempotency_key)``) and made copy-on-write explicitly,
so Arrow MERGEs and pyiceberg readers never meet a delete file. The key index is not written:
the Arrow engine's next MERGE rebuilds it after this snapshot.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import pyarrow as pa
from pyiceberg.catalog import Catalog

from leanops_dagster.constants import (
    CURATED_ZONE,
    IDEMPOTENCY_KEY,
    SCHEMA_VERSION_PROPERTY,
    STANDARDIZED_SNAPSHOT_FROM_PROPERTY,
    STANDARDIZED_SNAPSHOT_ID,
    STD_WATERMARK,
    Count,
    count_properties,
    curated_partition_spec,
    errors_watermark_name,
    watermark_key,
)
from leanops_dagster.engines.spark import io
from leanops_dagster.engines.spark.commits import with_commit_properties
from leanops_dagster.engines.spark.frames import collect_arrow, map_in_arrow
from leanops_dagster.engines.spark.standardize import _record_errors
from leanops_dagster.iceberg.catalog import ensure_table, load_layer_table, schema_from_arrow
from leanops_dagster.iceberg.commit import ensure_unchanged, retry_commit, snapshot_id_of
from leanops_dagster.iceberg.key_index import carried_property
from leanops_dagster.iceberg.lease import DEFAULT_TTL_S
from leanops_dagster.iceberg.tables import CURATED_ERRORS_PARTITION_SPEC, CURATED_ERRORS_SCHEMA
from leanops_dagster.iceberg.watermarks import (
    counter_properties,
    read_watermark,
    snapshot_position,
)
from leanops_dagster.pipeline.curate import CurateResult, _log_new_drift
from leanops_dagster.pipeline.evolve import conform_curated_table
from leanops_dagster.pipeline.exclusive import run_exclusively
from leanops_dagster.pipeline.increments import lowest_watermark
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.schemas.models import TopicSchema
from leanops_dagster.transforms import drift, mask, ordering, validate

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_IS_ERROR, _VALID, _ERROR = "is_error", "valid", "error"


def curate_topic_spark(
    spark: SparkSession,
    catalog: Catalog,
    tables: TopicTables,
    schema: TopicSchema,
    *,
    pii_key: bytes,
    now: dt.datetime | None = None,
    lease_ttl_s: float | None = DEFAULT_TTL_S,
) -> CurateResult:
    """``pipeline.curate.curate_topic`` on Spark (same tables, same result), under the same
    Curated lease of the topic. ``files_read`` is not measured here (Spark plans the MERGE's
    reads itself); files and rows rewritten come from the MERGE's snapshot summary."""
    return run_exclusively(
        catalog, tables.curated[0], tables.topic, CURATED_ZONE,
        lambda: retry_commit(
            lambda: _curate_once(spark, catalog, tables, schema, pii_key, now)
        ),
        lambda message: CurateResult(topic=tables.topic, busy=message),
        ttl_s=lease_ttl_s,
    )


def lifo_newer_sql(columns: Sequence[str], new: str = "s", old: str = "t") -> str:
    """SQL for "row ``new`` is newer than row ``old``" over ``columns`` lexicographically, a
    null ordering before every value and equal tuples not newer: the comparison of
    ``transforms.ordering.is_newer`` that the Arrow MERGE applies."""
    def q(alias: str, column: str) -> str:
        return f"{alias}.`{column.replace('`', '``')}`"

    newer = "FALSE"
    for column in reversed(columns):
        a, b = q(new, column), q(old, column)
        greater = f"({a} IS NOT NULL AND ({b} IS NULL OR {a} > {b}))"
        newer = f"({greater} OR ({a} <=> {b} AND {newer}))"
    return newer


def _spark_order(sequence: Sequence[str], columns: pa.Schema) -> list:
    """``transforms.dedup.lifo_dedup``'s sort keys (``transforms.ordering``) as Spark
    orderings (the rule's own list, translated, so a change there changes this engine too).
    The dedup's last key, the input position, never decides here: ``message_id`` is unique
    in Standardized."""
    from pyspark.sql import functions as F

    orderings = []
    for column, direction, nulls in ordering.newest_first(
        ordering.version_columns(sequence, columns.names)
    ):
        ordered = F.col(column)
        if direction == "descending":
            ordered = ordered.desc_nulls_last() if nulls == "at_end" else ordered.desc_nulls_first()
        else:
            ordered = ordered.asc_nulls_last() if nulls == "at_end" else ordered.asc_nulls_first()
        orderings.append(ordered)
    return orderings


def _checked_batches(
    batches: Iterator[pa.RecordBatch], schema: TopicSchema, topic: str, pii_key: bytes,
    out: pa.Schema,
) -> Iterator[pa.RecordBatch]:
    """Validate, cast and mask each batch; valid rows and CDE error rows in one schema."""
    valid_type: pa.StructType = out.field(_VALID).type
    error_type: pa.StructType = out.field(_ERROR).type
    for batch in batches:
        if batch.num_rows == 0:
            continue
        valid, errors = _check(pa.Table.from_batches([batch]), schema, topic, pii_key)
        k, e = valid.num_rows, errors.num_rows
        valid_struct = pa.StructArray.from_arrays(
            [valid.column(f.name).combine_chunks().cast(f.type) for f in valid_type],
            fields=list(valid_type))
        error_struct = pa.StructArray.from_arrays(
            [errors.column(f.name).combine_chunks().cast(f.type) for f in error_type],
            fields=list(error_type))
        yield from pa.table({
            _IS_ERROR: pa.array([False] * k + [True] * e, pa.bool_()),
            _VALID: pa.concat_arrays([valid_struct, pa.nulls(e, valid_type)]),
            _ERROR: pa.concat_arrays([pa.nulls(k, error_type), error_struct]),
        }, schema=out).to_batches()


def _check(rows: pa.Table, schema: TopicSchema, topic: str, pii_key: bytes):
    checked = validate.validate_and_cast(rows, schema.curated, topic=topic)
    return mask.mask_pii(checked.valid, schema.curated, pii_key), checked.errors


def _output_schema(std_arrow: pa.Schema, schema: TopicSchema, topic: str) -> pa.Schema:
    """The batch schema of ``_checked_batches``: found by running the rules on no rows."""
    empty = std_arrow.append(pa.field(STANDARDIZED_SNAPSHOT_ID, pa.int64())).empty_table()
    valid, errors = _check(empty, schema, topic, b"schema-probe")
    return pa.schema([
        pa.field(_IS_ERROR, pa.bool_()),
        pa.field(_VALID, pa.struct(list(valid.schema))),
        pa.field(_ERROR, pa.struct(list(errors.schema))),
    ])


def _curate_once(
    spark: SparkSession,
    catalog: Catalog,
    tables: TopicTables,
    schema: TopicSchema,
    pii_key: bytes,
    now: dt.datetime | None,
) -> CurateResult:
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql.pandas.types import from_arrow_schema

    now = now or dt.datetime.now(dt.UTC)
    result = CurateResult(topic=tables.topic)
    if not catalog.table_exists(tables.standardized):
        return result
    std = catalog.load_table(tables.standardized)
    errors_table = io.ensure_copy_on_write(ensure_table(
        catalog, tables.curated_errors, CURATED_ERRORS_SCHEMA, CURATED_ERRORS_PARTITION_SPEC
    ))
    curated = load_layer_table(catalog, tables.curated)
    curated = conform_curated_table(catalog, tables, schema, curated)
    cur_started = snapshot_id_of(curated)  # the read point the MERGE asserts

    err_watermark_name = errors_watermark_name(tables.topic)
    cur_watermark = read_watermark(curated, STD_WATERMARK) if curated is not None else None
    err_watermark = read_watermark(errors_table, err_watermark_name)
    positions = snapshot_position(std)
    increment = io.read_increment(
        spark, catalog, std, tables.standardized,
        lowest_watermark(cur_watermark, err_watermark, positions), STANDARDIZED_SNAPSHOT_ID,
    )
    result.watermark_from = cur_watermark
    if not increment.snapshot_ids or increment.to_snapshot_id == cur_watermark:
        result.watermark_to = cur_watermark
        return result
    result.watermark_to = to_snapshot_id = increment.to_snapshot_id

    def after(watermark: int | None):
        if watermark is None:
            return F.lit(True)
        newer = [sid for sid, pos in positions.items() if pos > positions[watermark]]
        return F.col(STANDARDIZED_SNAPSHOT_ID).isin(newer) if newer else F.lit(False)

    std_arrow = std.schema().as_arrow()
    out = _output_schema(std_arrow, schema, tables.topic)
    if increment.rows is None:
        checked = spark.createDataFrame([], from_arrow_schema(out))
        incoming = spark.createDataFrame(
            [], from_arrow_schema(std_arrow.append(pa.field(STANDARDIZED_SNAPSHOT_ID, pa.int64()))))
    else:
        incoming = increment.rows
        checked = map_in_arrow(incoming, functools.partial(
            _checked_batches, schema=schema, topic=tables.topic, pii_key=pii_key, out=out,
        ), from_arrow_schema(out))
    checked = checked.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        errors = checked.where(F.col(_IS_ERROR)).select(f"{_ERROR}.*")
        valid = checked.where(~F.col(_IS_ERROR)).select(f"{_VALID}.*")

        # drift: undeclared Standardized columns with a value anywhere in the increment
        candidates = drift.drift_keys(std_arrow.names, schema.curated)
        if candidates:
            seen = incoming.agg(*(F.count(F.col(c)).alias(c) for c in candidates)).first()
            result.drift_columns = [c for c in candidates if seen[c] > 0]

        # 1. CDE error rows not yet recorded for this topic
        _record_errors(
            catalog, tables.curated_errors, errors_table,
            errors.where(after(err_watermark)).withColumn(
                "recorded_ts", F.lit(now).cast("timestamp")),
            err_watermark_name, to_snapshot_id, now,
        )
        if result.drift_columns:
            carrying = incoming.where(
                F.greatest(*(F.col(c).isNotNull() for c in result.drift_columns))
                if len(result.drift_columns) > 1 else F.col(result.drift_columns[0]).isNotNull()
            ).select("publish_time", *result.drift_columns)
            _log_new_drift(catalog, tables, schema, collect_arrow(carrying), to_snapshot_id, now)

        # 2. MERGE the valid rows of snapshots after the Curated watermark
        result.cde_errors = errors.where(after(cur_watermark)).count()
        result.rows_read = incoming.where(after(cur_watermark)).count()
        valid = valid.where(after(cur_watermark)).drop(STANDARDIZED_SNAPSHOT_ID)
        valid_rows = valid.count()
        result.cde_error_rows = result.rows_read - valid_rows

        if curated is None:
            iceberg_schema = schema_from_arrow(schema.curated.arrow_schema())
            curated = ensure_table(
                catalog, tables.curated, iceberg_schema, curated_partition_spec(iceberg_schema)
            )
        curated = io.ensure_copy_on_write(curated)
        ensure_unchanged(curated, cur_started)  # a lost creation race loads the winner's table
        target_arrow = curated.schema().as_arrow()

        rank = Window.partitionBy(IDEMPOTENCY_KEY).orderBy(
            *_spark_order(schema.curated.sequence, target_arrow))
        winners = valid.withColumn("__rank", F.row_number().over(rank)).where(
            F.col("__rank") == 1).drop("__rank")
        winners = winners.select(*(
            (F.col(f.name) if f.name in winners.columns else F.lit(None))
            .cast(f.dataType).alias(f.name) for f in from_arrow_schema(target_arrow)
        )).persist(StorageLevel.MEMORY_AND_DISK)
        winner_rows = winners.count()
        superseded_in_increment = valid_rows - winner_rows

        # decide inserts / updates / stale against the stored rows of the snapshot MERGEd on
        sequence = ordering.version_columns(schema.curated.sequence, target_arrow.names)
        base = curated.current_snapshot()
        inserted = updated = stale = 0
        if base is not None and winner_rows:
            stored = (spark.read.format("iceberg").option("snapshot-id", str(base.snapshot_id))
                      .load(io.spark_name(catalog, tables.curated))
                      .select(IDEMPOTENCY_KEY, *sequence))
            judged = winners.alias("s").join(
                stored.alias("t"), F.col(f"s.{IDEMPOTENCY_KEY}") == F.col(
                    f"t.{IDEMPOTENCY_KEY}"), "left"
            ).select(
                F.col(f"t.{IDEMPOTENCY_KEY}").isNotNull().alias("matched"),
                F.expr(lifo_newer_sql(sequence)).alias("newer"),
            ).groupBy("matched", "newer").count().collect()
            for row in judged:
                if not row["matched"]:
                    inserted += row["count"]
                elif row["newer"]:
                    updated += row["count"]
                else:
                    stale += row["count"]
        else:
            inserted = winner_rows
        superseded = superseded_in_increment + stale
        properties = {
            watermark_key(STD_WATERMARK): str(to_snapshot_id),
            SCHEMA_VERSION_PROPERTY: str(schema.version),
            STANDARDIZED_SNAPSHOT_FROM_PROPERTY: str(cur_watermark or ""),
            **count_properties({
                Count.ROWS_READ: result.rows_read,
                Count.INSERTED: inserted,
                Count.UPDATED: updated,
                Count.SUPERSEDED: superseded,
                Count.CDE_ERROR_ROWS: result.cde_error_rows,
                # no safety net on Spark (a raising row fails the run): the figure is kept, at 0
                Count.QUARANTINED: result.quarantined,
            }),
            **counter_properties(curated, {
                Count.ROWS_READ: result.rows_read,
                Count.UPDATED: updated,
                Count.SUPERSEDED: superseded,
                Count.CDE_ERROR_ROWS: result.cde_error_rows,
                Count.QUARANTINED: result.quarantined,
            }),
        }
        if inserted + updated == 0:  # nothing to write: the watermark and counts alone
            curated.append(target_arrow.empty_table(), snapshot_properties={
                **properties, **carried_property(curated, IDEMPOTENCY_KEY)})
        else:
            _merge(spark, catalog, tables, winners, sequence, properties, base)
        winners.unpersist()
    finally:
        checked.unpersist()
    result.inserted, result.updated, result.superseded = inserted, updated, superseded
    curated = catalog.load_table(tables.curated)
    snapshot = curated.current_snapshot()
    result.snapshot_id = snapshot.snapshot_id  # type: ignore[union-attr]
    summary = snapshot.summary if snapshot is not None else None
    if summary is not None and summary.operation.value == "overwrite":
        result.files_rewritten = int(summary.get("deleted-data-files", "0"))
        result.rows_rewritten = int(summary.get("deleted-records", "0")) - updated
    return result


def _merge(
    spark: SparkSession, catalog: Catalog, tables: TopicTables, winners: DataFrame,
    sequence: Sequence[str], properties: dict[str, str], base,
) -> None:
    """``MERGE INTO`` newest-version-wins, in one snapshot carrying ``properties``; fails
    loudly when another writer committed between the decision and the MERGE."""
    view = f"leanops_increment_{uuid.uuid4().hex}"
    winners.createOrReplaceTempView(view)
    target = io.spark_name(catalog, tables.curated)
    key = f"`{IDEMPOTENCY_KEY}`"
    # Identifiers only, each ours: the catalog's table name, a generated view name, a constant
    # key and backquoted sequence columns (lifo_newer_sql escapes backquotes); no values.
    statement = (
        f"MERGE INTO {target} t USING {view} s ON t.{key} = s.{key} "  # nosec B608
        f"WHEN MATCHED AND {lifo_newer_sql(sequence)} THEN UPDATE SET * "
        "WHEN NOT MATCHED THEN INSERT *"
    )
    try:
        with io.commit_failures_as_pyiceberg():
            with_commit_properties(spark, properties, lambda: spark.sql(statement))
    finally:
        spark.catalog.dropTempView(view)
    io.ensure_built_on(catalog, tables.curated, base.snapshot_id if base is not None else None)
