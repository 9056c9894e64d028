"""Many topics at once: catch-up, event-to-Curated latency and tick durations for N topics.

Runs the real daemon path on a fresh LEANOPS_HOME: the local stack (moto SQS/S3, the Lambda
handlers behind the poller, the Firehose stand-in), the Dagster daemon with the local instance
(queue, warm-fork launcher, sensors, schedules). Steps:

1. N topics (default 50, ``--topics``) are onboarded: a copy of the ``events`` schema deployed
   per topic (``t00``, ``t01``, ...); the schema gate adds their partitions;
2. warm-up: one event per topic, until every topic has a Curated table (tables created, the
   launcher's worker warm), then until no run is queued or running;
3. the housekeeping a schedule would launch is queued first (one ``accountability_checks`` run
   over all topics, one ``table_maintenance_job`` run), so the topic runs compete with it;
4. ``--events`` events per topic (default 20) are sent for every topic together (one thread
   per topic, up to 8 at once), and the benchmark waits until every topic's Curated table has
   them all.

Figures:

- ``catch_up_s``: from the last measured event landing in RAW (its RAW snapshot's commit time)
  to the last topic's last Curated row (the commit time of the Curated snapshot that first
  holds it);
- ``p95_event_to_curated_s``: per event, ``SendMessage`` to the Curated commit holding it;
- ``slowest_tick_s``: per sensor or schedule, its longest tick from the first measured send to
  the catch-up, as Dagster recorded it (``sensors.tick_metrics.tick_durations``): the ticks of
  N busy topics; ``slowest_tick_onboarding_s``, the same from the daemon's start to the first
  send (the daemon and code server starting, the schema gate adding N partitions, the
  warm-up);
- ``housekeeping_runs_per_hour``: the most runs the schedules request in any clock hour of a
  day, each tick evaluated against this instance with its N onboarded topics (a benchmark of a
  few minutes would see 0 or 1 scheduled tick).

Commit times come from the snapshots' metadata, read after the run, so watching adds nothing
to the figures. Usage: ``uv run python benchmarks/topics.py [--topics 50] [--events 20]``.
Progress on stderr; the last line on stdout is JSON: ``{"topics": N, "catch_up_s": ...,
"p95_event_to_curated_s": ..., "slowest_tick_s": {sensor: s}, "housekeeping_runs_per_hour":
...}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import dagster as dg  # noqa: E402

from leanops_dagster import constants  # noqa: E402
from leanops_dagster.iceberg.catalog import metadata_locations, open_catalog  # noqa: E402
from leanops_dagster.instance import get_instance  # noqa: E402
from leanops_dagster.lanes import is_housekeeping  # noqa: E402
from leanops_dagster.local.daemon import LocalDaemon, start_daemon  # noqa: E402
from leanops_dagster.local.stack import LocalStack  # noqa: E402
from leanops_dagster.partitions import topic_partitions  # noqa: E402
from leanops_dagster.pipeline.layout import TopicTables  # noqa: E402
from leanops_dagster.schemas.registry import SchemaRegistry  # noqa: E402
from leanops_dagster.sensors.tick_metrics import tick_durations  # noqa: E402
from leanops_dagster.settings import get_settings  # noqa: E402

ACTIVE = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
          dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def body(key: str) -> str:
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    return json.dumps({
        "event": {"userId": "user-000001", "eventType": "click", "verb": "clicked",
                  "timestamp": now,
                  "metadata": {"ipAddress": "10.0.0.1", "deviceId": "d-1",
                               "userAgent": "topics-bench"}},
        "sessionId": "s-topics",
        "_metadata": {"idempotencyKeyResource": key, "messageId": key, "publishTime": now},
    })


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class CuratedRows:
    """Curated row counts of every topic, reloading only the tables whose metadata location
    changed (one catalog query per poll, as the sensors do)."""

    def __init__(self, settings, topics: list[str]) -> None:
        self.catalog = open_catalog(settings)
        self.namespace = constants.namespace(constants.CURATED_ZONE, settings.namespace_prefix)
        self.topics = topics
        self.seen: dict[str, str] = {}
        self.rows: dict[str, int] = dict.fromkeys(topics, 0)

    def poll(self) -> dict[str, int]:
        locations = metadata_locations(self.catalog, self.namespace) or {}
        for topic in self.topics:
            location = locations.get(topic)
            if location is None or self.seen.get(topic) == location:
                continue
            table = self.catalog.load_table((self.namespace, topic))
            snapshot = table.current_snapshot()
            self.rows[topic] = int(snapshot.summary.get("total-records", "0")) if snapshot else 0
            self.seen[topic] = location
        return self.rows


def wait_for(condition, what: str, timeout_s: float, daemon: LocalDaemon) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if daemon.poll() is not None:
            raise SystemExit(f"the Dagster daemon exited while waiting for {what}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(1)


def first_seen(table, column: str) -> dict[str, float]:
    """Value of ``column`` -> commit time (s) of the first snapshot holding it."""
    seen: dict[str, float] = {}
    for snapshot in sorted(table.snapshots(), key=lambda s: s.timestamp_ms):
        values = table.scan(selected_fields=(column,),
                            snapshot_id=snapshot.snapshot_id).to_arrow().column(column)
        for value in values.to_pylist():
            seen.setdefault(value, snapshot.timestamp_ms / 1000)
    return seen


def queue_housekeeping(settings, instance) -> list[str]:
    """Queue what the schedules launch (the all-time checks, table maintenance) through the
    instance's queue, as the scheduler daemon would: the runs carry the jobs' run tags."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget

    from leanops_dagster.local.definitions import build_local_definitions

    definitions = build_local_definitions(settings)
    target = InProcessWorkspaceLoadTarget(InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="leanops_dagster.local.definitions",
                             working_directory=str(REPO)),
        location_name="leanops",  # the daemon's workspace.yaml location
    ))
    run_ids = []
    with WorkspaceProcessContext(instance, target) as workspace:
        context = workspace.create_request_context()
        location = context.get_code_location("leanops")
        repository = next(iter(location.get_repositories().values()))
        for name in ("accountability_checks", "table_maintenance_job"):
            remote = repository.get_full_job(name)
            run = instance.create_run_for_job(
                job_def=definitions.resolve_job_def(name), tags=dict(remote.run_tags),
                remote_job_origin=remote.get_remote_origin(),
                job_code_origin=remote.get_python_origin(),
            )
            instance.submit_run(run.run_id, context)
            run_ids.append(run.run_id)
    return run_ids


def housekeeping_runs_per_hour(settings, instance) -> int:
    """The most runs the schedules request in any clock hour of one day, each tick evaluated
    against ``instance`` (its onboarded topics)."""
    from dagster._utils.schedules import cron_string_iterator

    from leanops_dagster.local.definitions import build_local_definitions

    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    per_hour: dict[int, int] = {}
    for schedule in build_local_definitions(settings).schedules:
        for tick in cron_string_iterator(start.timestamp(), schedule.cron_schedule, "UTC"):
            if tick >= start + dt.timedelta(days=1):
                break
            context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
            requests = schedule.evaluate_tick(context).run_requests or []
            per_hour[tick.hour] = per_hour.get(tick.hour, 0) + len(requests)
    return max(per_hour.values(), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--topics", type=int, default=50, help="number of topics")
    parser.add_argument("--events", type=int, default=20, help="events per topic")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds to wait for each phase")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="leanops-topics-"))
    schemas = home / "schemas"
    topics = [f"t{i:02d}" for i in range(args.topics)]
    for topic in topics:
        shutil.copytree(REPO / "schemas" / "events", schemas / topic)
    os.environ["LEANOPS_SCHEMA_REGISTRY"] = str(schemas)  # the daemon's settings too
    settings = get_settings(home=home, schema_registry=str(schemas))
    log(f"LEANOPS_HOME={home}; {len(topics)} topics, {args.events} events each")
    began = time.time()
    daemon = start_daemon(settings)
    instance = get_instance(settings)
    registry = SchemaRegistry.from_settings(settings)
    curated = CuratedRows(settings, topics)
    sent_at: dict[str, float] = {}
    housekeeping: list[str] = []
    caught_up = 0.0
    try:
        with LocalStack(settings, topics=tuple(topics)) as stack:
            for topic in topics:
                registry.deploy(topic)
            wait_for(lambda: set(topics) <= set(instance.get_dynamic_partitions(
                topic_partitions.name)), "the schema gate", args.timeout, daemon)
            log("onboarded; warm-up: one event per topic")
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda t: stack.send(t, [body(f"{t}-warm")]), topics))
            wait_for(lambda: min(curated.poll().values()) >= 1, "the warm-up in Curated",
                     args.timeout, daemon)
            wait_for(lambda: not instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE)),
                     "an idle queue", args.timeout, daemon)
            housekeeping = queue_housekeeping(settings, instance)
            log(f"warm; {len(housekeeping)} housekeeping runs queued; sending "
                f"{args.events} events to each of {len(topics)} topics together")

            def send(topic: str) -> None:
                sent_at[topic] = time.time()
                stack.send(topic, [body(f"{topic}-{i}") for i in range(args.events)])

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(send, topics))
            log("sent; waiting for Curated")
            wait_for(lambda: min(curated.poll().values()) >= 1 + args.events,
                     "every event in Curated", args.timeout, daemon)
            caught_up = time.time()
            log("caught up")
            stack.wait_until_quiet()
    finally:
        daemon.stop()

    catalog = open_catalog(settings)
    latencies: list[float] = []
    last_raw = 0.0
    last_curated = 0.0
    for topic in topics:
        tables = TopicTables(topic, settings.namespace_prefix)
        raw = first_seen(catalog.load_table(tables.raw), "message_id")
        rows = first_seen(catalog.load_table(tables.curated), "idempotency_key")
        for i in range(args.events):
            key = f"{topic}-{i}"
            last_raw = max(last_raw, raw[key])
            last_curated = max(last_curated, rows[key])
            latencies.append(rows[key] - sent_at[topic])
    measured = min(sent_at.values())
    ticks = tick_durations(instance, measured, caught_up)
    onboarding = tick_durations(instance, began, measured)
    runs = instance.get_runs(filters=dg.RunsFilter(created_after=dt.datetime.fromtimestamp(
        began, dt.UTC)))
    topic_runs = [r for r in runs if r.job_name == "topic_pipeline"]
    observed_housekeeping = [r for r in runs if is_housekeeping(r.tags)]
    records = {r.dagster_run.run_id: r for r in instance.get_run_records(
        dg.RunsFilter(run_ids=housekeeping))}
    log(f"runs: {len(topic_runs)} topic runs, {len(observed_housekeeping)} housekeeping runs "
        f"({', '.join(sorted({r.job_name for r in observed_housekeeping}))})")
    for run_id in housekeeping:
        record = records.get(run_id)
        if record is not None and record.start_time:
            later = sum(1 for r in instance.get_run_records(dg.RunsFilter(
                job_name="topic_pipeline")) if r.start_time and r.start_time > record.start_time
                and r.create_timestamp.timestamp() < record.start_time)
            log(f"housekeeping {record.dagster_run.job_name} started "
                f"{record.start_time - sent_at[topics[0]]:.1f} s after the first send; "
                f"{later} topic runs queued before its start started after it")
    log(f"event -> Curated: p50 {statistics.median(latencies):.1f} s, "
        f"max {max(latencies):.1f} s; load average {os.getloadavg()}")
    print(json.dumps({
        "topics": len(topics),
        "events_per_topic": args.events,
        "catch_up_s": round(last_curated - last_raw, 1),
        "p95_event_to_curated_s": round(percentile(latencies, 0.95), 1),
        "slowest_tick_s": {name: round(max(values), 2) for name, values in sorted(ticks.items())},
        "slowest_tick_onboarding_s": {
            name: round(max(values), 2) for name, values in sorted(onboarding.items())},
        "housekeeping_runs_per_hour": housekeeping_runs_per_hour(settings, instance),
    }))


if __name__ == "__main__":
    main()
