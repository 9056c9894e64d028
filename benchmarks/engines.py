"""Benchmark: the same RAW increment through the Arrow engine and the Spark engine.

One run, same data, same machine (issue 11, item 7): the 1,000,000-row RAW increment of
``benchmarks/process.py`` (phase a) into its 5,000,000-row Curated table,

1. through the Arrow engine (``standardize_topic`` + ``curate_topic``);
2. through the Spark engine (``local[2]`` by default, ``--master``; ``--driver-memory``, default
   4g: in local mode the driver's JVM does all the work), timing its ``MERGE INTO``
   on its own (``spark_engine_merge_s``: the LIFO-conditioned MERGE with the watermark in its
   snapshot);
3. Spark's own ``MERGE INTO`` of the same prepared increment (the Spark engine's LIFO winners,
   saved as a table) into a fresh fork of the same Curated table, as a Spark user would write
   it by hand (``WHEN MATCHED AND s.publish_time > t.publish_time``): ``spark_native_merge_s``.

Before anything on Spark is timed, one small MERGE warms the JVM (``warm_up``), so neither
timed MERGE pays for loading Iceberg's MERGE path. Every engine works on its own fork of the
cached inputs (``process.py``'s base tables, built once under ``--workdir``, then synced to
disk); files the runs write are removed afterwards. ``--quick`` divides every size by 10.
The last line printed is JSON:
``{"rows": N, "arrow_rows_per_s": A, "spark_rows_per_s": S, "spark_native_merge_s": M,
"spark_engine_merge_s": E, "spark_overhead_ratio": E/M, "arrow_vs_spark_native": R}``
with ``R`` = Spark's native MERGE time / the Arrow engine's Curated run time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyiceberg.exceptions import NoSuchTableError

from benchmarks._data import History
from benchmarks.process import (
    _build_bases,
    base_table,
    files_written_removed,
    open_bench_catalog,
    raw_increment_table,
    say,
)
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.schemas.loader import load_topic_dir
from leanops_dagster.settings import REPO_ROOT, Settings

PII_KEY = b"bench-pii-key"
SCHEMA = load_topic_dir(REPO_ROOT / "schemas", "events")


def _forked_topic(catalog, prefix: str, raw, curated) -> TopicTables:
    """Topic tables under ``prefix`` whose RAW and Curated are forks of the inputs."""
    tables = TopicTables("events", prefix)
    for namespace in {t[0] for t in (tables.raw, tables.standardized, tables.curated)}:
        with contextlib.suppress(Exception):
            catalog.create_namespace(namespace)
    for identifier in (tables.standardized, tables.parse_errors, tables.curated_errors,
                       tables.drift_log, tables.raw, tables.curated):
        with contextlib.suppress(NoSuchTableError):
            catalog.drop_table(identifier)  # drop, never purge: forks share the base's files
    catalog.register_table(tables.raw, raw.metadata_location)
    catalog.register_table(tables.curated, curated.metadata_location)
    return tables


def arrow_run(catalog, tables: TopicTables) -> tuple[float, float]:
    from leanops_dagster.pipeline.curate import curate_topic
    from leanops_dagster.pipeline.standardize import standardize_topic

    started = time.perf_counter()
    std = standardize_topic(catalog, tables, SCHEMA, lease_ttl_s=None)
    std_s = time.perf_counter() - started
    started = time.perf_counter()
    cur = curate_topic(catalog, tables, SCHEMA, pii_key=PII_KEY, lease_ttl_s=None)
    cur_s = time.perf_counter() - started
    if not (std.balanced and cur.balanced):
        raise SystemExit(f"arrow: accountability does not balance: {std} {cur}")
    say(f"arrow: standardized {std_s:.2f} s, curated {cur_s:.2f} s (ins {cur.inserted:,} "
        f"upd {cur.updated:,} superseded {cur.superseded:,})")
    return std_s, cur_s


def spark_run(spark, catalog, tables: TopicTables, prepared: tuple[str, str]):
    """The Spark engine's run; its MERGE timed alone and its winners kept in ``prepared``."""
    from leanops_dagster.engines.spark import curate as spark_curate
    from leanops_dagster.engines.spark.standardize import standardize_topic_spark
    from leanops_dagster.engines.spark.table_io import spark_name

    merge_seconds: list[float] = []
    engine_merge = spark_curate._merge

    def timed_merge(spark_, catalog_, tables_, winners, *args):
        with contextlib.suppress(NoSuchTableError):
            catalog.drop_table(prepared)
        winners.writeTo(spark_name(catalog, prepared)).create()  # untimed: the reference's input
        started = time.perf_counter()
        engine_merge(spark_, catalog_, tables_, winners, *args)
        merge_seconds.append(time.perf_counter() - started)

    spark_curate._merge = timed_merge
    try:
        started = time.perf_counter()
        std = standardize_topic_spark(spark, catalog, tables, SCHEMA, lease_ttl_s=None)
        std_s = time.perf_counter() - started
        started = time.perf_counter()
        cur = spark_curate.curate_topic_spark(
            spark, catalog, tables, SCHEMA, pii_key=PII_KEY, lease_ttl_s=None)
        cur_s = time.perf_counter() - started
    finally:
        spark_curate._merge = engine_merge
    if not (std.balanced and cur.balanced):
        raise SystemExit(f"spark: accountability does not balance: {std} {cur}")
    say(f"spark: standardized {std_s:.2f} s, curated {cur_s:.2f} s, of which MERGE "
        f"{sum(merge_seconds):.2f} s (ins {cur.inserted:,} upd {cur.updated:,})")
    return std_s, cur_s, sum(merge_seconds)


def warm_up(spark, catalog) -> None:
    """One small ``MERGE INTO`` before anything is timed, so that both timed MERGEs run on a
    JVM that has already loaded and compiled Iceberg's MERGE path (the issue's reference
    figure is a warm one); otherwise whichever MERGE runs first pays for it."""
    from leanops_dagster.engines.spark.table_io import spark_name

    target, source = spark_name(catalog, ("bench", "warm_up")), "leanops_warm_up_source"
    spark.sql(f"DROP TABLE IF EXISTS {target}")
    spark.sql(f"CREATE TABLE {target} (k STRING, t TIMESTAMP) USING iceberg")
    rows = spark.range(1000).selectExpr("CAST(id AS STRING) AS k", "current_timestamp() AS t")
    rows.writeTo(target).append()
    rows.createOrReplaceTempView(source)
    spark.sql(
        f"MERGE INTO {target} t USING {source} s ON t.k = s.k "  # nosec B608: our names
        "WHEN MATCHED AND s.t > t.t THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    )
    spark.catalog.dropTempView(source)
    spark.sql(f"DROP TABLE {target} PURGE")


def native_merge(spark, catalog, target: TopicTables, prepared: tuple[str, str]) -> float:
    """A hand-written ``MERGE INTO`` of the prepared increment (newest publish_time wins)."""
    from leanops_dagster.engines.spark.table_io import spark_name

    statement = (
        f"MERGE INTO {spark_name(catalog, target.curated)} t "
        f"USING {spark_name(catalog, prepared)} s ON t.idempotency_key = s.idempotency_key "
        "WHEN MATCHED AND s.publish_time > t.publish_time THEN UPDATE SET * "
        "WHEN NOT MATCHED THEN INSERT *"
    )
    started = time.perf_counter()
    spark.sql(statement)
    seconds = time.perf_counter() - started
    say(f"spark native MERGE: {seconds:.2f} s")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(".leanops/bench"))
    parser.add_argument("--quick", action="store_true", help="every size divided by 10")
    parser.add_argument("--rows-per-day", type=int, default=100_000)
    parser.add_argument("--master", default="local[2]", help="Spark master")
    parser.add_argument("--driver-memory", default="4g",
                        help="spark.driver.memory (local mode: the JVM that does all the work)")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    history = History(5_000_000 // scale, args.rows_per_day // scale)
    raw_rows = 1_000_000 // scale
    workdir = args.workdir.resolve()

    say(f"inputs: {raw_rows:,} RAW rows, Curated of {history.rows:,}, under {workdir}")
    builder = multiprocessing.get_context("spawn").Process(
        target=_build_bases, args=(workdir, [history], (history, raw_rows)))
    builder.start()
    builder.join()
    if builder.exitcode:
        raise SystemExit("building the inputs failed")
    # the inputs' files just written must not be flushed to disk while the engines are timed
    os.sync()
    catalog = open_bench_catalog(workdir)
    raw, curated = raw_increment_table(catalog, history, raw_rows), base_table(catalog, history)

    from leanops_dagster.engines.spark.session import spark_session

    settings = Settings(
        home=workdir / "home", catalog_name=catalog.name,
        catalog_uri=f"sqlite:///{workdir / 'catalog.db'}",
        warehouse=(workdir / "warehouse").resolve().as_uri(), spark_master=args.master,
        spark_jars_dir=REPO_ROOT / ".leanops" / "spark-jars",
        spark_conf={"spark.driver.memory": args.driver_memory},
    )
    prepared = ("bench", "spark_prepared_increment")
    with files_written_removed(curated, raw):
        arrow_std, arrow_cur = arrow_run(catalog, _forked_topic(catalog, "arrow_", raw, curated))
        say(f"spark session ({args.master})")
        spark = spark_session(settings)
        spark.sparkContext.setLogLevel("ERROR")
        warm_up(spark, catalog)
        spark_std, spark_cur, engine_merge_s = spark_run(
            spark, catalog, _forked_topic(catalog, "spark_", raw, curated), prepared)
        native_s = native_merge(
            spark, catalog, _forked_topic(catalog, "native_", raw, curated), prepared)
        with contextlib.suppress(NoSuchTableError):
            catalog.purge_table(prepared)
    summary = {
        "rows": raw_rows,
        "arrow_rows_per_s": round(raw_rows / (arrow_std + arrow_cur)),
        "spark_rows_per_s": round(raw_rows / (spark_std + spark_cur)),
        "spark_native_merge_s": round(native_s, 2),
        "spark_engine_merge_s": round(engine_merge_s, 2),
        "spark_overhead_ratio": round(engine_merge_s / native_s, 2),
        "arrow_vs_spark_native": round(native_s / arrow_cur, 2),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
