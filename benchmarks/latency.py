"""Event-to-Curated latency: the local stack and the Dagster daemon, events one by one.

Starts the local stack (moto SQS/S3, the real Lambda handlers behind the poller, the Firehose
stand-in) and the Dagster daemon on a fresh LEANOPS_HOME, deploys the ``events`` schema, waits
for the first (empty) topic run, then sends one event at a time at ``--rate`` per second for
``--duration`` seconds. Per event it records:

- ``send``: just before ``SendMessage``;
- ``raw``: the commit time of the RAW snapshot that holds its ``message_id``;
- ``curated``: the commit time of the first Curated snapshot that holds its
  ``idempotency_key`` (the row is readable from then on).

Snapshots are watched every 0.2 s; a new snapshot's commit time comes from its metadata, so
the watcher's polling does not add to the figures. Latency = ``curated - send``. The split of
``raw -> curated`` per run (sensor tick, queue and launch, process start, the steps) comes
from the Dagster run records.

Usage: ``uv run python benchmarks/latency.py [--rate 1] [--duration 180]``. Progress on
stderr; the last line on stdout is JSON: ``{"events": N, "p50_s": X, "p95_s": Y, "max_s": Z}``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import dagster as dg  # noqa: E402

from leanops_dagster.iceberg.catalog import open_catalog  # noqa: E402
from leanops_dagster.instance import get_instance  # noqa: E402
from leanops_dagster.local.daemon import start_daemon  # noqa: E402
from leanops_dagster.local.stack import LocalStack  # noqa: E402
from leanops_dagster.partitions import topic_partitions  # noqa: E402
from leanops_dagster.pipeline.layout import TopicTables  # noqa: E402
from leanops_dagster.schemas.registry import SchemaRegistry  # noqa: E402
from leanops_dagster.settings import get_settings  # noqa: E402

TOPIC = "events"


def log(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def body(key: str) -> str:
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    return json.dumps(
        {
            "event": {
                "userId": "user-000001",
                "eventType": "click",
                "verb": "clicked",
                "timestamp": now,
                "metadata": {
                    "ipAddress": "10.0.0.1",
                    "deviceId": "d-1",
                    "userAgent": "latency-bench",
                },
            },
            "sessionId": "s-latency",
            "_metadata": {"idempotencyKeyResource": key, "messageId": key, "publishTime": now},
        }
    )


class SnapshotWatcher(threading.Thread):
    """Records, for each value of ``column``, the commit time of the first snapshot holding it."""

    def __init__(self, settings, identifier, column: str) -> None:
        super().__init__(daemon=True)
        self.catalog = open_catalog(settings)
        self.identifier, self.column = identifier, column
        self.first_seen: dict[str, float] = {}
        self.stop = threading.Event()
        self._last: int | None = None

    def run(self) -> None:
        while not self.stop.wait(0.2):
            if not self.catalog.table_exists(self.identifier):
                continue
            table = self.catalog.load_table(self.identifier)
            snapshot = table.current_snapshot()
            if snapshot is None or snapshot.snapshot_id == self._last:
                continue
            self._last = snapshot.snapshot_id
            values = table.scan(
                selected_fields=(self.column,), snapshot_id=snapshot.snapshot_id
            ).to_arrow()
            committed = snapshot.timestamp_ms / 1000
            for value in values.column(self.column).to_pylist():
                self.first_seen.setdefault(value, committed)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


STRETCHES = ("sensor", "queued", "launch", "setup", "steps")


def _run_times(instance) -> list[dict[str, float]]:
    """Per successful topic run: created, dequeued, started (the run process's RUN_START),
    first step, end; from the run records and the run's own events (epoch seconds)."""
    # RUN_STARTING: the coordinator dequeued the run and the launcher is starting its process
    wanted = {
        dg.DagsterEventType.RUN_STARTING: "dequeued",
        dg.DagsterEventType.RUN_START: "started",
        dg.DagsterEventType.STEP_START: "first_step",
    }
    runs = []
    for record in instance.get_run_records(
        dg.RunsFilter(job_name="topic_pipeline", statuses=[dg.DagsterRunStatus.SUCCESS])
    ):
        times = {"created": record.create_timestamp.timestamp(), "end": record.end_time or 0.0}
        for event in instance.get_records_for_run(record.dagster_run.run_id).records:
            kind = event.event_log_entry.dagster_event_type
            if kind in wanted and wanted[kind] not in times:
                times[wanted[kind]] = event.timestamp
        if {"dequeued", "started", "first_step"} <= set(times):
            runs.append(times)
    return runs


def run_breakdown(instance, events: dict[str, dict[str, float]]) -> dict[str, float]:
    """Median seconds of each stretch from an event's RAW commit to its Curated commit, in the
    run that committed it: ``sensor`` (RAW commit -> run requested; 0 when a queued run takes
    it), ``queued`` (waiting for the topic's running run and the dequeue tick), ``launch``
    (dequeued -> the run process started: the launcher's fork of its warm worker, the instance
    opened), ``setup`` (-> first step), ``steps`` (-> Curated commit). They add up to
    ``curated - raw``."""
    runs = _run_times(instance)
    parts: dict[str, list[float]] = {name: [] for name in STRETCHES}
    for times in events.values():
        owner = [r for r in runs if r["started"] <= times["curated"] <= r["end"] + 0.5]
        if not owner or "raw" not in times:
            continue
        run, clock = owner[0], times["raw"]
        for name, mark in zip(
            STRETCHES, ("created", "dequeued", "started", "first_step"), strict=False
        ):
            parts[name].append(max(0.0, run[mark] - clock))
            clock = max(clock, run[mark])
        parts["steps"].append(times["curated"] - clock)
    return {k: round(statistics.median(v), 2) for k, v in parts.items() if v}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=1.0, help="events per second")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of sending")
    parser.add_argument(
        "--drain",
        type=float,
        default=120.0,
        help="seconds to wait for the last events to reach Curated",
    )
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="leanops-latency-"))
    settings = get_settings(home=home)
    log(f"LEANOPS_HOME={home}")
    daemon = start_daemon(settings)
    instance = get_instance(settings)
    tables = TopicTables(TOPIC, settings.namespace_prefix)
    sent: dict[str, float] = {}
    try:
        with LocalStack(settings) as stack:
            SchemaRegistry.from_settings(settings).deploy(TOPIC)
            deadline = time.monotonic() + 180
            while not instance.has_dynamic_partition(topic_partitions.name, TOPIC):
                if time.monotonic() > deadline or daemon.poll() is not None:
                    raise SystemExit("the schema gate did not add the topic (see daemon.log)")
                time.sleep(0.5)
            stack.send(TOPIC, [body("warm-up")])  # the first run: tables created, warm caches
            raw = SnapshotWatcher(settings, tables.raw, "message_id")
            curated = SnapshotWatcher(settings, tables.curated, "idempotency_key")
            raw.start()
            curated.start()
            while "warm-up" not in curated.first_seen:
                if time.monotonic() > deadline + 120:
                    raise SystemExit("the warm-up event never reached Curated")
                time.sleep(0.5)
            log(f"warm; sending {args.rate}/s for {args.duration:.0f} s")
            interval = 1 / args.rate
            start = time.monotonic()
            n = 0
            while time.monotonic() - start < args.duration:
                key = f"lat-{uuid.uuid4().hex[:12]}"
                sent[key] = time.time()
                stack.send(TOPIC, [body(key)])
                n += 1
                time.sleep(max(0.0, start + n * interval - time.monotonic()))
            log(f"sent {len(sent)}; waiting for Curated")
            end = time.monotonic() + args.drain
            while time.monotonic() < end and not set(sent) <= set(curated.first_seen):
                time.sleep(0.5)
            raw.stop.set()
            curated.stop.set()
    finally:
        daemon.stop()

    events = {
        key: {
            "send": t,
            "curated": curated.first_seen[key],
            **({"raw": raw.first_seen[key]} if key in raw.first_seen else {}),
        }
        for key, t in sent.items()
        if key in curated.first_seen
    }
    missing = len(sent) - len(events)
    latencies = [e["curated"] - e["send"] for e in events.values()]
    ingest = [e["raw"] - e["send"] for e in events.values() if "raw" in e]
    if not latencies:
        raise SystemExit("no event reached Curated")
    log(f"{len(events)} events reached Curated ({missing} did not within the drain)")
    log(f"send -> RAW commit: median {statistics.median(ingest):.2f} s")
    log(
        f"RAW commit -> Curated commit, per stretch (median s): "
        f"{json.dumps(run_breakdown(get_instance(settings), events))}"
    )
    print(
        json.dumps(
            {
                "events": len(events),
                "p50_s": round(statistics.median(latencies), 2),
                "p95_s": round(percentile(latencies, 0.95), 2),
                "max_s": round(max(latencies), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
