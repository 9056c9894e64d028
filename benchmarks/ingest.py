"""Ingestion benchmark: the real sqs_processor handler and the local Firehose sink into RAW.

Two figures (see benchmarks/README.md for where the time goes):

- ``events_per_s``: N events (default 100,000) as pre-built Lambda SQS events of
  ``--batch-size`` records, each passed to ``sqs_processor.handler.process_event`` with the
  ``LocalFirehose`` stand-in (buffering hints 5 MiB / 300 s, its flusher thread), which appends
  to ``raw.events_staging`` with pyiceberg; timed from the first invocation to the last commit.
- ``stack_events_per_s``: ``--stack-events`` (default 2,000) through the whole local stack
  (moto SQS over HTTP, the pollers, the handler, the stand-in), timed from the first send to
  quiet. Reported, not targeted: moto's SQS is the bottleneck.

Usage: ``uv run python benchmarks/ingest.py [--events N] [--stack-events M] [--profile]``.
Progress goes to stderr; the last line on stdout is JSON:
``{"events": N, "events_per_s": X, "stack_events_per_s": Y, "peak_rss_mb": Z}``.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import gc
import json
import logging
import os
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ingestion_lambdas.common.config import Config  # noqa: E402
from ingestion_lambdas.sqs_processor.handler import process_event  # noqa: E402
from leanops_dagster.iceberg.catalog import open_catalog  # noqa: E402
from leanops_dagster.local.firehose import BufferingHints, LocalFirehose  # noqa: E402
from leanops_dagster.local.injector.config import InjectorConfig, StreamConfig  # noqa: E402
from leanops_dagster.local.injector.generators import generate  # noqa: E402
from leanops_dagster.settings import Settings  # noqa: E402


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bodies(n: int, seed: int = 42) -> list[str]:
    config = InjectorConfig(name="bench", seed=seed,
                            streams=[StreamConfig(topic="events", records=n)])
    return generate(config)["events"]


def sqs_events(payloads: list[str], batch_size: int, queue_arn: str) -> list[dict]:
    """Lambda SQS events as the event source mapping would build them."""
    sent_ms = str(int(dt.datetime.now(dt.UTC).timestamp() * 1000))
    events = []
    for start in range(0, len(payloads), batch_size):
        records = [
            {
                "messageId": f"00000000-0000-4000-8000-{start + i:012d}",
                "receiptHandle": f"rh-{start + i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": sent_ms,
                               "SenderId": "AIDAEXAMPLE",
                               "ApproximateFirstReceiveTimestamp": sent_ms},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(payloads[start : start + batch_size])
        ]
        events.append({"Records": records})
    return events


def handler_and_sink(n: int, batch_size: int, profile: bool) -> float:
    home = Path(tempfile.mkdtemp(prefix="leanops-bench-"))
    settings = Settings(home=home)
    say(f"[1/2] building {n:,} events in {batch_size}-record SQS batches ...")
    events = sqs_events(bodies(n), batch_size,
                        "arn:aws:sqs:us-east-1:123456789012:lean-ops-local-events-queue")
    config = Config(firehose_stream_name=settings.firehose_stream_name,
                    queue_name_prefix="lean-ops-local-", queue_name_suffix="-queue")
    # Firehose's default hints (5 MiB / 300 s); the flusher thread delivers while the handler
    # runs, as in the local stack (Arrow's JSON parser and Parquet writer release the GIL).
    firehose = LocalFirehose(settings, record_ledger=False,
                             buffering=BufferingHints(size_mib=5, interval_s=300))
    # Warm up imports and the table (creation is a one-off, not throughput).
    process_event(sqs_events(bodies(1, seed=1), 1, events[0]["Records"][0]["eventSourceARN"])[0],
                  firehose=firehose, sqs=None, config=config)
    firehose.flush()
    # The 100,000 pre-built events (~1 M Python objects) are fixture, not workload: a Lambda
    # holds one event of <= 10,000 records. Left in the collector's young generations, every
    # full collection the handler's allocations trigger would walk all of them (10-25 % of the
    # handler's time); frozen, they are outside the collector, as they are outside a Lambda.
    gc.collect()
    gc.freeze()
    profiler = cProfile.Profile() if profile else None
    say(f"[1/2] handler + sink: {n:,} events ...")
    started = time.perf_counter()
    cpu_started = time.process_time()
    if profiler:
        profiler.enable()
    failures = 0
    step = max(1, len(events) // 10)
    for index, event in enumerate(events, start=1):
        failures += len(process_event(event, firehose=firehose, sqs=None,
                                      config=config)["batchItemFailures"])
        if index % step == 0:
            say(f"  {index * batch_size:>9,} events  {time.perf_counter() - started:6.2f}s")
    firehose.close()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    if profiler:
        profiler.disable()
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("cumulative").print_stats(25)
        stats.sort_stats("tottime").print_stats(20)
    table = open_catalog(settings).load_table((settings.raw_namespace, "events_staging"))
    rows = int(table.current_snapshot().summary["total-records"]) - 1  # minus the warm-up
    if failures or rows != n:
        raise SystemExit(f"benchmark lost data: {rows} rows for {n} events, {failures} failures")
    rate = n / elapsed
    say(f"[1/2] {n:,} events in {elapsed:.2f}s = {rate:,.0f} events/s "
        f"({firehose.stats.flushes} Iceberg commits; {cpu:.2f} CPU-s = {n / cpu:,.0f} events "
        f"per CPU-second; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return rate


def through_stack(n: int) -> float:
    from leanops_dagster.local.stack import LocalStack

    settings = Settings(home=Path(tempfile.mkdtemp(prefix="leanops-bench-stack-")))
    payloads = bodies(n, seed=7)
    say(f"[2/2] whole local stack (moto SQS/S3, pollers, handler, Firehose): {n:,} events ...")
    with LocalStack(settings, topics=("events",)) as stack:
        started = time.perf_counter()
        done = 0

        def progress(k: int) -> None:
            nonlocal done
            done += k
            if done % 500 == 0:
                say(f"  sent {done:>7,}  {time.perf_counter() - started:6.1f}s")

        stack.send("events", payloads, progress=progress)
        report = stack.wait_until_quiet(timeout_s=1800)
        elapsed = time.perf_counter() - started
    rows = report.delivered.get("events_staging", 0)
    if rows != n:
        raise SystemExit(f"stack lost data: {rows} rows for {n} events")
    rate = n / elapsed
    say(f"[2/2] {n:,} events in {elapsed:.1f}s = {rate:,.0f} events/s "
        f"({report.invocations} invocations)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500,
                        help="records per Lambda SQS event (the mapping's BatchSize)")
    parser.add_argument("--stack-events", type=int, default=2_000)
    parser.add_argument("--profile", action="store_true", help="cProfile the handler path")
    args = parser.parse_args()
    logging.getLogger("sqs_processor").setLevel(logging.WARNING)  # no per-batch INFO lines
    rate = handler_and_sink(args.events, args.batch_size, args.profile)
    stack_rate = through_stack(args.stack_events) if args.stack_events else 0.0
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"events": args.events, "events_per_s": round(rate),
                      "stack_events_per_s": round(stack_rate, 1),
                      "peak_rss_mb": round(peak_rss_mb, 1)}))


if __name__ == "__main__":
    main()
