"""The ingestion ledger: what the local stack sent and what its Firehose could not deliver.

The pre-RAW balance ``SQS sent = RAW + DLQ errors + Firehose errors`` needs the left side and
the Firehose error count from outside the tables. In AWS they come from CloudWatch (SQS
``NumberOfMessagesSent`` per queue, the Firehose error output); locally the stack appends one
JSON line per event to ``<home>/ingestion/ledger.jsonl``. Appends are single ``write`` calls
on an ``O_APPEND`` file, so concurrent processes (an ``inject`` next to ``leanops demo``) never
interleave a line; the totals are sums over the lines.

Kinds: ``sent`` (messages accepted by SQS), ``firehose_error`` (records written to the
Firehose error output instead of a table) and ``abandoned`` (messages still in a queue when a
stack was stopped before it was quiet: moto keeps queues in memory, so they are lost, and the
ledger says so instead of letting the balance fail without a reason).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict
from pathlib import Path

from leanops_dagster.settings import Settings

SENT = "sent"
FIREHOSE_ERROR = "firehose_error"
ABANDONED = "abandoned"
KINDS = (SENT, FIREHOSE_ERROR, ABANDONED)

_lock = threading.Lock()


def _home(home: Settings | Path | str) -> Path:
    return home.home if isinstance(home, Settings) else Path(home)


def ledger_path(home: Settings | Path | str) -> Path:
    """``<home>/ingestion/ledger.jsonl``."""
    return _home(home) / "ingestion" / "ledger.jsonl"


def record(home: Settings | Path | str, kind: str, counts: dict[str, int], **extra: str) -> None:
    """Append one line adding ``counts`` (topic -> n) under ``kind``; zero counts are skipped."""
    if kind not in KINDS:
        raise ValueError(f"unknown ledger kind {kind!r}; expected one of {KINDS}")
    counts = {topic: int(n) for topic, n in counts.items() if n}
    if not counts:
        return
    path = ledger_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"ts": time.time(), "kind": kind, "counts": counts, **extra}) + "\n"
    with _lock:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def totals(home: Settings | Path | str) -> dict[str, dict[str, int]]:
    """kind -> topic -> total, over the whole ledger (a missing ledger is all zeros)."""
    result: dict[str, dict[str, int]] = {kind: defaultdict(int) for kind in KINDS}
    path = ledger_path(home)
    if path.exists():
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if not line.endswith("\n"):
                    continue  # a line still being written by another process
                entry = json.loads(line)
                bucket = result.setdefault(entry["kind"], defaultdict(int))
                for topic, n in entry["counts"].items():
                    bucket[topic] += n
    return {kind: dict(counts) for kind, counts in result.items()}


def sent_counts(home: Settings | Path | str) -> dict[str, int]:
    """Topic -> messages the local stack sent to SQS (accepted by SQS), ever, under ``home``."""
    return totals(home)[SENT]


def firehose_error_counts(home: Settings | Path | str) -> dict[str, int]:
    """Topic -> records the local Firehose wrote to its error output instead of a table."""
    return totals(home)[FIREHOSE_ERROR]


def abandoned_counts(home: Settings | Path | str) -> dict[str, int]:
    """Topic -> messages left in a queue when a stack stopped before it was quiet."""
    return totals(home)[ABANDONED]
