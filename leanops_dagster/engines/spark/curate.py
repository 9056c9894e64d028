"""Standardized -> Curated on Spark: the same run as ``pipeline.curate``, table for table.

- the increment: incremental reads of the Standardized snapshots after the older of the
  Curated and curated ``errors`` watermarks, rows tagged with their snapshot;
- CDE validation, casts and PII masking: the Curated rules themselves
  (``transforms.rules.curate_rules`` without its LIFO), batch by batch in ``mapInArrow``;
- LIFO in the increment: a window over ``idempotency_key`` in the order of versions of
  ``transforms.ordering`` (``ordering.newest_first``, as ``transforms.dedup`` ranks);
- LIFO against stored rows: ``MERGE INTO`` whose update condition is the same lexicographic
  "newer than" (``lifo_newer_sql``: null orders first, equal is not newer), run inside
  ``CommitMetadata.withCommitProperties`` so the watermark, this run's counts and the running
  totals are in the MERGE's own snapshot. The counts are decided first, by a join with the
  stored (key, sequence) on the snapshot the MERGE then builds on (checked after the commit);
- the drift log: ``pipeline.curate.log_new_drift`` on the rows carrying undeclared columns;
- the safety net: each batch runs the rules under ``quarantine.guard_batch``; a Standardized
  row they raise on becomes a curated ``errors`` row with the Arrow engine's
  ``internal:<Exception>`` rule, recorded as the Arrow net records it, and takes no part in
  LIFO or drift.

The run is ``pipeline.layer_run``'s skeleton with this engine's body (``_SparkCurate``).

Tables are created by pyiceberg exactly as the Arrow engine creates them (schema, partition
spec ``day(publish_time)``, ``bucket(16, idempotency_key)``) and made copy-on-write explicitly,
so Arrow MERGEs and pyiceberg readers never meet a delete file. The key index is not written:
the Arrow engine's next MERGE rebuilds it after this snapshot.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
from pyiceberg.catalog import Catalog

from leanops_dagster.constants import IDEMPOTENCY_KEY, MESSAGE_ID, STANDARDIZED_SNAPSHOT_ID
from leanops_dagster.engines.spark import layer as spark_layer
from leanops_dagster.engines.spark import table_io
from leanops_dagster.engines.spark._pyspark_internals import collect_arrow
from leanops_dagster.engines.spark.commits import with_commit_properties
from leanops_dagster.engines.spark.layer import IS_ERROR, QUARANTINED
from leanops_dagster.iceberg.commit import ensure_unchanged
from leanops_dagster.iceberg.lease import DEFAULT_TTL_S
from leanops_dagster.pipeline import quarantine
from leanops_dagster.pipeline.curate import (
    CurateResult,
    commit_watermark_only,
    create_curated_table,
    curated_extra,
    curated_figures,
    curated_layer,
    log_new_drift,
)
from leanops_dagster.pipeline.layer_run import LayerRead, Opened, run_layer
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.schemas.models import RESERVED_COLUMNS, TopicSchema
from leanops_dagster.transforms import drift, mask, ordering, rules, validate

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_VALID, _ERROR = "valid", "error"
#: the LIFO rank: a name no Curated column can take (a ``-``: see ``table_io.FILE_RANK_COLUMN``)
_RANK = "__leanops-rank"


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
    """``pipeline.curate.curate_topic`` on Spark (same tables, same result), in the same
    layer-run skeleton (``pipeline.layer_run``: the topic's Curated lease). Standardized rows
    that make the rules raise are quarantined to curated ``errors`` as on Arrow
    (``quarantine.guard_batch`` in each batch). ``files_read`` is not measured here (Spark
    plans the MERGE's reads itself); files and rows rewritten come from the MERGE's snapshot
    summary."""
    now = now or dt.datetime.now(dt.UTC)
    return run_layer(
        catalog, curated_layer(catalog, tables, schema),
        _SparkCurate(spark, catalog, tables, schema, pii_key, now),
        lease_ttl_s=lease_ttl_s, errors_table=table_io.ensure_copy_on_write,
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


@dataclass(frozen=True)
class _Rules:
    """The row-wise Curated rules of one batch: ``transforms.rules.curate_rules`` without the
    LIFO (this engine's window applies it over all batches), with the rule functions the
    driver resolved: they travel to the workers with the batch function, so the workers run
    exactly the driver's rules."""

    schema: TopicSchema
    topic: str
    pii_key: bytes
    validate_and_cast: Callable = field(default_factory=lambda: validate.validate_and_cast)
    mask_pii: Callable = field(default_factory=lambda: mask.mask_pii)

    def __call__(self, rows: pa.Table) -> tuple[pa.Table, pa.Table]:
        """The masked valid rows and the CDE error rows of ``rows``."""
        ruled = rules.curate_rules(
            rows, self.schema.curated, topic=self.topic, pii_key=self.pii_key, lifo=False,
            validate_and_cast=self.validate_and_cast, mask_pii=self.mask_pii,
        )
        return ruled.rows, ruled.errors


def _checked_batches(
    batches: Iterator[pa.RecordBatch], rules: _Rules, out: pa.Schema,
) -> Iterator[pa.RecordBatch]:
    """``rules`` over each batch under the batch's safety net (``quarantine.guard_batch``);
    valid rows, CDE error rows and quarantined rows (as their curated ``errors`` rows) in one
    schema."""
    valid_type: pa.StructType = out.field(_VALID).type
    error_type: pa.StructType = out.field(_ERROR).type
    for batch in batches:
        if batch.num_rows == 0:
            continue
        (valid, errors), quarantined = quarantine.guard_batch(
            pa.Table.from_batches([batch]), rules)
        error_parts = [errors]
        if quarantined is not None:
            error_parts.append(quarantine.curated_error_rows(
                quarantined, topic=rules.topic, snapshot_column=STANDARDIZED_SNAPSHOT_ID))
        k, e = valid.num_rows, errors.num_rows
        valid_struct = pa.StructArray.from_arrays(
            [valid.column(f.name).combine_chunks().cast(f.type) for f in valid_type],
            fields=list(valid_type))
        error_struct = pa.StructArray.from_arrays(
            [pa.concat_arrays([
                (part.column(f.name).combine_chunks() if f.name in part.column_names
                 else pa.nulls(part.num_rows)).cast(f.type) for part in error_parts
            ]) for f in error_type],
            fields=list(error_type))
        q = len(error_struct) - e
        yield from pa.table({
            IS_ERROR: pa.array([False] * k + [True] * (e + q), pa.bool_()),
            QUARANTINED: pa.array([False] * (k + e) + [True] * q, pa.bool_()),
            _VALID: pa.concat_arrays([valid_struct, pa.nulls(e + q, valid_type)]),
            _ERROR: pa.concat_arrays([pa.nulls(k, error_type), error_struct]),
        }, schema=out).to_batches()


def _output_schema(std_arrow: pa.Schema, rules: _Rules) -> pa.Schema:
    """The batch schema of ``_checked_batches``: found by running the rules on no rows."""
    empty = std_arrow.append(pa.field(STANDARDIZED_SNAPSHOT_ID, pa.int64())).empty_table()
    valid, errors = rules(empty)
    return pa.schema([
        pa.field(IS_ERROR, pa.bool_()),
        pa.field(QUARANTINED, pa.bool_()),
        pa.field(_VALID, pa.struct(list(valid.schema))),
        pa.field(_ERROR, pa.struct(list(errors.schema))),
    ])


@dataclass
class _Checked:
    """A Curated increment in Spark: its rows, and the rules' output (held until the MERGE)."""

    incoming: DataFrame
    checked: DataFrame
    #: the error rows of the quarantined rows (set when recorded)
    quarantined: pa.Table | None = None
    drift_columns: list[str] = field(default_factory=list)

    def clean(self) -> DataFrame:
        """The increment without its quarantined rows (what the Arrow engine's rules see)."""
        if self.quarantined is None or self.quarantined.num_rows == 0:
            return self.incoming
        spark = self.incoming.sparkSession
        keys = spark.createDataFrame(
            self.quarantined.select([MESSAGE_ID, STANDARDIZED_SNAPSHOT_ID]).to_pylist(),
            f"{MESSAGE_ID} STRING, {STANDARDIZED_SNAPSHOT_ID} BIGINT",
        )
        return self.incoming.join(keys, [MESSAGE_ID, STANDARDIZED_SNAPSHOT_ID], "left_anti")


@dataclass(frozen=True)
class _SparkCurate:
    """The Spark engine's body of a Curated run (``layer_run.LayerBody``)."""

    spark: SparkSession
    catalog: Catalog
    tables: TopicTables
    schema: TopicSchema
    pii_key: bytes
    now: dt.datetime

    def reader(self, opened: Opened) -> Callable[[int | None, int | None], table_io.SparkIncrement]:
        return spark_layer.reader(
            self.spark, self.catalog, curated_layer(self.catalog, self.tables, self.schema), opened,
        )

    @contextlib.contextmanager
    def transform(self, read: LayerRead) -> Iterator[_Checked]:
        """Validation, casts and masking in ``mapInArrow``, held (persisted) until the MERGE."""
        from pyspark import StorageLevel
        from pyspark.sql.pandas.types import from_arrow_schema

        # the rules as the driver resolved them: they travel to the workers
        rules = _Rules(self.schema, self.tables.topic, self.pii_key)
        std_arrow = read.opened.upstream.schema().as_arrow()
        # the workers get only the columns the rules read (metadata, lineage, the curated
        # schema's sources): a Standardized table of thousands of payload columns stays a
        # narrow Arrow batch, and the rules' output is the same (validate_and_cast carries no
        # other column)
        read_by_rules = RESERVED_COLUMNS | self.schema.curated.source_columns
        out = _output_schema(pa.schema([f for f in std_arrow if f.name in read_by_rules]), rules)
        increment = read.unconsumed.increment
        if increment.rows is None:
            checked = self.spark.createDataFrame([], from_arrow_schema(out))
            incoming = self.spark.createDataFrame([], from_arrow_schema(
                std_arrow.append(pa.field(STANDARDIZED_SNAPSHOT_ID, pa.int64()))))
        else:
            incoming = increment.rows
            checked = incoming.select(
                *(c for c in incoming.columns if c in read_by_rules)
            ).mapInArrow(
                functools.partial(_checked_batches, rules=rules, out=out),
                from_arrow_schema(out),
            )
        checked = checked.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            yield _Checked(incoming, checked)
        finally:
            checked.unpersist()

    def record_errors(self, read: LayerRead, work: _Checked) -> None:
        from pyspark.sql import functions as F

        work.quarantined = spark_layer.record_errors(
            read,
            quarantine.curated_errors_route(
                self.catalog, self.tables, STANDARDIZED_SNAPSHOT_ID, self.now),
            work.checked, _ERROR, self.now,
        )
        # drift: undeclared Standardized columns with a value anywhere in the increment
        # (its rows the rules ran on, as on Arrow)
        clean = work.clean()
        candidates = drift.drift_keys(read.opened.upstream.schema().as_arrow().names,
                                      self.schema.curated)
        drift_columns: list[str] = []
        if candidates:
            seen = clean.agg(*(F.count(F.col(c)).alias(c) for c in candidates)).first()
            drift_columns = [c for c in candidates if seen[c] > 0]
        if drift_columns:
            carrying = clean.where(
                F.greatest(*(F.col(c).isNotNull() for c in drift_columns))
                if len(drift_columns) > 1 else F.col(drift_columns[0]).isNotNull()
            ).select("publish_time", *drift_columns)
            log_new_drift(self.catalog, self.tables, self.schema, collect_arrow(carrying),
                          read.to_snapshot_id, self.now)
        work.drift_columns = drift_columns

    def commit(self, read: LayerRead, work: _Checked, result: CurateResult) -> None:
        """MERGE the valid rows of snapshots after the Curated watermark."""
        from pyspark import StorageLevel
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        catalog, tables, schema, spark = self.catalog, self.tables, self.schema, self.spark
        newer = spark_layer.after(read, read.unconsumed.layer_watermark)
        result.drift_columns = work.drift_columns
        cde_errors, quarantined = spark_layer.count_errors(read, work.checked, _ERROR)
        valid = work.checked.where(~F.col(IS_ERROR)).select(f"{_VALID}.*").where(
            newer).drop(STANDARDIZED_SNAPSHOT_ID)
        valid_rows = valid.count()
        result.count_read(rows_read=work.incoming.where(newer).count(), quarantined=quarantined,
                          cde_errors=cde_errors, valid=valid_rows)

        curated = read.opened.table
        if curated is None:
            curated = create_curated_table(catalog, tables, schema)
        curated = table_io.ensure_copy_on_write(curated)
        # a lost creation race loads the winner's table
        ensure_unchanged(curated, read.opened.started)
        target_arrow = curated.schema().as_arrow()

        rank = Window.partitionBy(IDEMPOTENCY_KEY).orderBy(
            *_spark_order(schema.curated.sequence, target_arrow))
        winners = valid.withColumn(_RANK, F.row_number().over(rank)).where(
            F.col(_RANK) == 1).drop(_RANK)
        winners = table_io.aligned(winners, curated).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            winner_rows = winners.count()
            # the rules' output lives on in `winners`: free its memory before the MERGE
            work.checked.unpersist()
            superseded_in_increment = valid_rows - winner_rows

            # decide inserts / updates / stale against the stored rows of the snapshot
            # MERGEd on
            sequence = ordering.version_columns(schema.curated.sequence, target_arrow.names)
            base = curated.current_snapshot()
            inserted = updated = stale = 0
            if base is not None and winner_rows:
                stored = (spark.read.format("iceberg")
                          .option("snapshot-id", str(base.snapshot_id))
                          .load(table_io.spark_name(catalog, tables.curated))
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
            result.count_merged(inserted=inserted, updated=updated,
                                superseded=superseded_in_increment, stale=stale)
            properties = read.commit_properties(
                curated, curated_figures(result), curated_extra(schema))
            if inserted + updated == 0:  # nothing to write: the watermark and counts alone
                commit_watermark_only(curated, properties)
            else:
                _merge(spark, catalog, tables, winners, sequence, properties, base)
        finally:
            winners.unpersist()
        curated = catalog.load_table(tables.curated)
        snapshot = curated.current_snapshot()
        result.snapshot_id = snapshot.snapshot_id  # type: ignore[union-attr]
        summary = snapshot.summary if snapshot is not None else None
        if summary is not None and summary.operation.value == "overwrite":
            result.files_rewritten = int(summary.get("deleted-data-files", "0"))
            result.rows_rewritten = int(summary.get("deleted-records", "0")) - updated


def _merge(
    spark: SparkSession, catalog: Catalog, tables: TopicTables, winners: DataFrame,
    sequence: Sequence[str], properties: dict[str, str], base,
) -> None:
    """``MERGE INTO`` newest-version-wins, in one snapshot carrying ``properties``, published
    on the snapshot the decision was made on (``table_io.publish``: another writer's commit in
    between makes the run read again)."""
    view = f"leanops_increment_{uuid.uuid4().hex}"
    winners.createOrReplaceTempView(view)
    key = f"`{IDEMPOTENCY_KEY}`"

    def merge_into(target: str) -> None:
        # Identifiers only, each ours: the catalog's table or branch name, a generated view
        # name, a constant key and backquoted sequence columns (lifo_newer_sql escapes
        # backquotes); no values.
        statement = (
            f"MERGE INTO {target} t USING {view} s ON t.{key} = s.{key} "  # nosec B608
            f"WHEN MATCHED AND {lifo_newer_sql(sequence)} THEN UPDATE SET * "
            "WHEN NOT MATCHED THEN INSERT *"
        )
        with table_io.commit_failures_as_pyiceberg():
            with_commit_properties(spark, properties, lambda: spark.sql(statement))

    try:
        table_io.publish(catalog, tables.curated, base.snapshot_id if base is not None else None,
                   properties, merge_into)
    finally:
        spark.catalog.dropTempView(view)
