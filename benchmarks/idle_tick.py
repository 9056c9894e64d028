"""Benchmark: a sensor tick over N onboarded topics when nothing changed (brief rule 10).

On a fresh LEANOPS_HOME with the local SQL catalog, N topics (default 100, ``--topics``) each
get a RAW table with one commit (``--commits`` more commits each lengthen every table's history,
which must not matter) and a deployed schema. The RAW sensor and the schema gate are ticked
until they have seen every topic (their cursors then hold every table's metadata location and
every schema's stamp); then each is ticked ``--ticks`` times with nothing new, timed with
``time.perf_counter`` around Dagster's own evaluation of the sensor (the tick's body; an idle
tick submits no run). Metadata files opened during the idle ticks are counted: 0 expected.

Target: an idle tick well under 5 s at 100 topics. Usage: ``uv run python
benchmarks/idle_tick.py [--topics 100] [--commits 0] [--ticks 5]``. Progress on stderr; the
last line on stdout is JSON: ``{"topics": N, "commits_per_table": C, "raw_snapshot_sensor_s":
{"median": ..., "max": ...}, "schema_gate_sensor_s": {...}, "metadata_files_read": 0}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import dagster as dg  # noqa: E402
import pyarrow as pa  # noqa: E402
from pyiceberg.serializers import FromInputFile  # noqa: E402

from leanops_dagster.iceberg.catalog import ensure_table, open_catalog  # noqa: E402
from leanops_dagster.iceberg.tables import (  # noqa: E402
    RAW_STAGING_PARTITION_SPEC,
    RAW_STAGING_SCHEMA,
)
from leanops_dagster.pipeline.layout import TopicTables  # noqa: E402
from leanops_dagster.resources.catalog import IcebergCatalogResource  # noqa: E402
from leanops_dagster.resources.schema_registry import SchemaRegistryResource  # noqa: E402
from leanops_dagster.schemas.registry import SchemaRegistry  # noqa: E402
from leanops_dagster.sensors.raw_snapshots import raw_snapshot_sensor  # noqa: E402
from leanops_dagster.sensors.schema_gate import schema_gate_sensor  # noqa: E402
from leanops_dagster.settings import get_settings  # noqa: E402


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def raw_rows(topic: str, n: int) -> pa.Table:
    now = dt.datetime.now(dt.UTC)
    return pa.Table.from_pylist(
        [{"message_id": f"{topic}-{n}", "topic_name": topic, "json_payload": "{}",
          "publish_time": now, "ingestion_ts": now}],
        schema=RAW_STAGING_SCHEMA.as_arrow(),
    )


def tick_until_seen(sensor, instance, resources: dict, cursor: str | None) -> str | None:
    """Tick until the sensor skips (every topic seen); the cursor it ended with."""
    for _ in range(1000):
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        result = sensor(context)
        if isinstance(result, dg.SkipReason):
            return cursor
        cursor = result.cursor
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(request.partitions_def_name,
                                            list(request.partition_keys))
    raise SystemExit(f"{sensor.name} did not settle")


def idle_ticks(sensor, instance, resources: dict, cursor: str | None, n: int) -> list[float]:
    durations = []
    for _ in range(n):
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        start = time.perf_counter()
        result = sensor(context)
        durations.append(time.perf_counter() - start)
        if not isinstance(result, dg.SkipReason):
            raise SystemExit(f"{sensor.name}: an idle tick did not skip ({result})")
    return durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--topics", type=int, default=100, help="onboarded topics")
    parser.add_argument("--commits", type=int, default=0,
                        help="extra RAW commits per table (a longer history)")
    parser.add_argument("--ticks", type=int, default=5, help="idle ticks timed per sensor")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="leanops-idle-tick-"))
    schemas = home / "schemas"
    topics = [f"t{i:03d}" for i in range(args.topics)]
    settings = get_settings(home=home, schema_registry=str(schemas))
    catalog = open_catalog(settings)
    registry = SchemaRegistry.from_settings(settings)
    log(f"{len(topics)} topics, {1 + args.commits} RAW commits each, under {home}")
    for i, topic in enumerate(topics):
        shutil.copytree(REPO / "schemas" / "events", schemas / topic)
        registry.deploy(topic)
        table = ensure_table(catalog, TopicTables(topic).raw, RAW_STAGING_SCHEMA,
                             RAW_STAGING_PARTITION_SPEC)
        for n in range(1 + args.commits):
            table.append(raw_rows(topic, n))
        if (i + 1) % 25 == 0:
            log(f"  {i + 1}/{len(topics)} topics ready")

    reads: list[str] = []
    original = FromInputFile.table_metadata

    def counted(input_file, *a, **kw):
        reads.append(input_file.location)
        return original(input_file, *a, **kw)

    figures: dict[str, dict[str, float]] = {}
    with dg.instance_for_test() as instance:
        resources = {"catalog": IcebergCatalogResource.from_settings(settings),
                     "schema_registry": SchemaRegistryResource.from_settings(settings)}
        gate_cursor = tick_until_seen(schema_gate_sensor, instance, resources, None)
        raw_cursor = tick_until_seen(raw_snapshot_sensor, instance, resources, None)
        FromInputFile.table_metadata = staticmethod(counted)
        try:
            for sensor, cursor in ((raw_snapshot_sensor, raw_cursor),
                                   (schema_gate_sensor, gate_cursor)):
                durations = idle_ticks(sensor, instance, resources, cursor, args.ticks)
                figures[sensor.name] = {"median": round(statistics.median(durations), 3),
                                        "max": round(max(durations), 3)}
                log(f"{sensor.name}: idle tick median {figures[sensor.name]['median']} s, "
                    f"max {figures[sensor.name]['max']} s")
        finally:
            FromInputFile.table_metadata = original
    shutil.rmtree(home, ignore_errors=True)
    print(json.dumps({"topics": len(topics), "commits_per_table": 1 + args.commits,
                      **{f"{name}_s": value for name, value in figures.items()},
                      "metadata_files_read": len(reads)}))


if __name__ == "__main__":
    main()
