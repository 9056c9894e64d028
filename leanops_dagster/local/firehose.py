"""A local stand-in for the Firehose stream with the Iceberg destination.

``LocalFirehose`` answers boto3's ``put_record_batch`` / ``put_record`` (same arguments, same
response shape, same limits), buffers the records like Firehose's buffering hints (flush when
the buffer reaches ``size_mib`` or its oldest record is ``interval_s`` old) and delivers each
flush to Iceberg with pyiceberg, routing per ``docs/contracts.md``:

- ``"_leanops_table": "dlq_errors"`` -> ``<raw ns>.dlq_errors``, operation *update*: an upsert
  on ``dlq_message_id``, so handling the same DLQ message twice leaves one row;
- anything else -> ``<raw ns>.<topic_name>_staging``, operation *insert*, table created on first
  use with ``day(publish_time)`` partitioning.

A record the destination cannot take (not JSON, a missing or mistyped column, a topic name
outside ``[a-z][a-z0-9_]*``, an Iceberg write that keeps failing) is not dropped: like
Firehose's error output it is written to S3 under ``firehose-errors/<topic>/yyyy/mm/dd/HH/``
(or to ``<home>/firehose-errors`` without S3) and counted in the ingestion ledger, which is
the third term of the pre-RAW balance.

Fault injection (documented test hook, off in AWS by construction): a ``FaultRule`` makes
``put_record_batch`` reject matching staging records with a per-record ``ErrorCode``, exactly
as Firehose reports a throttled or failed record. The default rule rejects every record whose
payload contains ``POISON_MARKER``; the real handler retries, reports the message in
``batchItemFailures``, SQS redelivers it and after ``maxReceiveCount`` receives moves it to the
DLQ, whose processor records it (``dlq_errors`` records are never subject to fault rules).
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import logging
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter, methodcaller
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
from botocore.exceptions import ClientError
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table

from leanops_dagster import constants
from leanops_dagster.iceberg.catalog import ensure_table, open_catalog
from leanops_dagster.iceberg.tables import (
    DLQ_ERRORS_PARTITION_SPEC,
    DLQ_ERRORS_SCHEMA,
    RAW_STAGING_PARTITION_SPEC,
    RAW_STAGING_SCHEMA,
)
from leanops_dagster.local import ledger
from leanops_dagster.settings import Settings

log = logging.getLogger(__name__)

POISON_MARKER = "LEANOPS_FAULT_FIREHOSE_REJECT"
"""A payload containing this string is rejected by the default put rule (test hook)."""
DELIVERY_FAULT_MARKER = "LEANOPS_FAULT_ICEBERG_REJECT"
"""A payload containing this string is accepted, then fails delivery (-> error output)."""

ERROR_PREFIX = "firehose-errors"
_DLQ_TAG = b'"_leanops_table"'
_TOPIC_IN_RECORD = re.compile(rb'"topic_name"\s*:\s*"([^"\\]{1,255})"')

_STAGING_ARROW = RAW_STAGING_SCHEMA.as_arrow()
_STAGING_READ = pa.schema([f.with_nullable(True) for f in _STAGING_ARROW])
_DLQ_ARROW = DLQ_ERRORS_SCHEMA.as_arrow()
_DLQ_READ = pa.schema([f.with_nullable(True) for f in _DLQ_ARROW])
_BACKPRESSURE = 4  # a put waits for delivery once the buffer holds 4 x size_mib
_READ_OPTIONS = pj.ReadOptions(block_size=64 << 20, use_threads=True)
_DATA = itemgetter("Data")
_ENDS_WITH_NEWLINE = methodcaller("endswith", b"\n")
_RECORD_ID = "{:056d}".format


@dataclass(frozen=True)
class BufferingHints:
    """Firehose ``BufferingHints``: deliver when either threshold is reached."""

    size_mib: float = 1.0
    interval_s: float = 1.0

    @property
    def size_bytes(self) -> int:
        return int(self.size_mib * 1024 * 1024)


@dataclass(frozen=True)
class FaultRule:
    """Reject staging records containing ``marker`` (or, with ``probability``, any record).

    ``probability`` < 1 turns the rule into a transient fault (throttling) drawn from a seeded
    generator, so retries can succeed; 1.0 (default) is a permanent fault (a poison message).
    """

    marker: str | None = POISON_MARKER
    probability: float = 1.0
    error_code: str = "ServiceUnavailableException"
    error_message: str = "Slow down. (fault injected by the local Firehose stand-in)"
    stage: Literal["put", "delivery"] = "put"  # delivery: accepted, then not writable

    def matches(self, data: bytes, rng: random.Random) -> bool:
        if self.marker is not None and self.marker.encode() not in data:
            return False
        return self.probability >= 1.0 or rng.random() < self.probability


DEFAULT_FAULT_RULES: tuple[FaultRule, ...] = (
    FaultRule(),
    FaultRule(marker=DELIVERY_FAULT_MARKER, stage="delivery", error_code="Iceberg.InjectedFault",
              error_message="record rejected by the destination (fault injected)"),
)


@dataclass
class FirehoseStats:
    """What the stand-in did, per table and per topic (thread-safe snapshots via ``copy``)."""

    accepted: int = 0
    rejected: int = 0
    flushes: int = 0
    delivered: Counter = field(default_factory=Counter)  # table name -> rows committed
    errors: Counter = field(default_factory=Counter)  # topic -> records to the error output

    def copy(self) -> FirehoseStats:
        return FirehoseStats(
            self.accepted, self.rejected, self.flushes, Counter(self.delivered),
            Counter(self.errors),
        )


@dataclass(frozen=True)
class _Failed:
    data: bytes
    code: str
    message: str
    topic: str


def _client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def _topic_of(data: bytes) -> str:
    match = _TOPIC_IN_RECORD.search(data)
    if match is None:
        return constants.UNROUTABLE_TOPIC
    topic = match.group(1).decode("utf-8", "replace")
    return topic if constants.TOPIC_PATTERN.fullmatch(topic) else constants.UNROUTABLE_TOPIC


class LocalFirehose:
    """A boto3-compatible ``put_record_batch`` that buffers and writes RAW Iceberg tables."""

    def __init__(
        self,
        settings: Settings,
        *,
        stream_name: str | None = None,
        buffering: BufferingHints | None = None,
        fault_rules: Sequence[FaultRule] | None = None,
        s3=None,
        error_bucket: str | None = None,
        catalog: Catalog | None = None,
        record_ledger: bool = True,
        background: bool = True,
        seed: int = 0,
    ) -> None:
        self.settings = settings
        self.stream_name = stream_name or settings.firehose_stream_name
        self.buffering = buffering or BufferingHints()
        rules = DEFAULT_FAULT_RULES if fault_rules is None else tuple(fault_rules)
        self.fault_rules = tuple(r for r in rules if r.stage == "put")
        self.delivery_faults = tuple(r for r in rules if r.stage == "delivery")
        self._s3 = s3
        self._error_bucket = error_bucket or settings.archive_bucket_name
        self._catalog = catalog
        self._record_ledger = record_ledger
        self._rng = random.Random(seed)
        self._tables: dict[tuple[str, str], Table] = {}
        self._lock = threading.Lock()  # guards the buffers and stats
        self._flush_lock = threading.Lock()  # one delivery at a time (one writer per table)
        self._staging: list[bytes] = []
        self._dlq: list[bytes] = []
        self._size = 0
        self._oldest: float | None = None
        self._ids = 0
        self.stats = FirehoseStats()
        self._catalog_()  # open (and for the embedded default, create) it before any thread
        self._stop = threading.Event()
        self._flush_now = threading.Event()
        self._timer: threading.Thread | None = None
        if background:
            self._timer = threading.Thread(
                target=self._interval_loop, name="local-firehose-flusher", daemon=True
            )
            self._timer.start()

    # --- boto3 surface ---------------------------------------------------------------
    def put_record_batch(self, *, DeliveryStreamName: str, Records: list[dict]) -> dict:
        """Same contract as ``boto3.client("firehose").put_record_batch``."""
        datas = list(map(_DATA, Records))
        if str in set(map(type, datas)):
            datas = [d.encode() if isinstance(d, str) else d for d in datas]
        self._check_call(DeliveryStreamName, datas, "PutRecordBatch")
        blob = b"\x00".join(datas)  # one scan decides whether any record needs a closer look
        rules = [r for r in self.fault_rules if r.marker is None or r.marker.encode() in blob]
        if not rules:  # the common case: every record is accepted
            with self._lock:
                first = self._ids + 1
                self._ids += len(datas)
            responses = [{"RecordId": i} for i in map(_RECORD_ID, range(first, first + len(datas)))]
            self._enqueue(datas, maybe_dlq=_DLQ_TAG in blob)
            return {"FailedPutCount": 0, "Encrypted": False, "RequestResponses": responses}
        verdicts = [self._matching_rule(d, rules) for d in datas]
        accepted = [d for d, v in zip(datas, verdicts, strict=True) if v is None]
        failed = len(datas) - len(accepted)
        with self._lock:
            first = self._ids + 1
            self._ids += len(accepted)
            self.stats.rejected += failed
        ids = iter(range(first, first + len(accepted)))
        responses = [
            {"RecordId": _RECORD_ID(next(ids))} if v is None
            else {"ErrorCode": v.error_code, "ErrorMessage": v.error_message}
            for v in verdicts
        ]
        if accepted:
            self._enqueue(accepted, maybe_dlq=_DLQ_TAG in blob)
        return {"FailedPutCount": failed, "Encrypted": False, "RequestResponses": responses}

    def put_record(self, *, DeliveryStreamName: str, Record: dict) -> dict:
        result = self.put_record_batch(DeliveryStreamName=DeliveryStreamName, Records=[Record])
        response = result["RequestResponses"][0]
        if "ErrorCode" in response:
            raise _client_error(response["ErrorCode"], response["ErrorMessage"], "PutRecord")
        return {"RecordId": response["RecordId"], "Encrypted": False}

    # --- buffering ---------------------------------------------------------------------
    @property
    def pending_records(self) -> int:
        with self._lock:
            return len(self._staging) + len(self._dlq)

    def flush(self) -> None:
        """Deliver everything buffered now (Firehose does this at the buffering thresholds)."""
        with self._flush_lock:
            with self._lock:
                staging, dlq = self._staging, self._dlq
                self._staging, self._dlq, self._size, self._oldest = [], [], 0, None
            if not staging and not dlq:
                return
            failed: list[_Failed] = []
            if staging:
                failed += self._deliver_staging(staging)
            if dlq:
                failed += self._deliver_dlq(dlq)
            if failed:
                self._write_errors(failed)
            with self._lock:
                self.stats.flushes += 1

    def close(self) -> None:
        """Stop the interval flusher and deliver what is left."""
        self._stop.set()
        self._flush_now.set()
        if self._timer is not None:
            self._timer.join(timeout=10)
        self.flush()

    def __enter__(self) -> LocalFirehose:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ---------------------------------------------------------------------
    def _check_call(self, stream: str, records: list[bytes], operation: str) -> None:
        if stream != self.stream_name:
            raise _client_error(
                "ResourceNotFoundException",
                f"Firehose {stream} under account 000000000000 not found.", operation,
            )
        if not records or len(records) > constants.FIREHOSE_MAX_BATCH_RECORDS:
            raise _client_error(
                "ValidationException",
                f"1 validation error detected: Value at 'records' failed to satisfy constraint: "
                f"Member must have length between 1 and {constants.FIREHOSE_MAX_BATCH_RECORDS}",
                operation,
            )
        sizes = list(map(len, records))
        if max(sizes) > constants.FIREHOSE_MAX_RECORD_BYTES:
            size = next(n for n in sizes if n > constants.FIREHOSE_MAX_RECORD_BYTES)
            raise _client_error(
                "ValidationException",
                f"Record size {size} exceeds {constants.FIREHOSE_MAX_RECORD_BYTES} bytes",
                operation,
            )
        total = sum(sizes)
        if total > constants.FIREHOSE_MAX_BATCH_BYTES:
            raise _client_error(
                "InvalidArgumentException",
                f"Records size {total} exceeds {constants.FIREHOSE_MAX_BATCH_BYTES} bytes",
                operation,
            )

    def _matching_rule(self, data: bytes, rules: list[FaultRule]) -> FaultRule | None:
        if _DLQ_TAG in data:
            return None  # dlq_errors records are never subject to fault rules
        for rule in rules:
            if rule.matches(data, self._rng):
                return rule
        return None

    def _enqueue(self, records: list[bytes], maybe_dlq: bool = True) -> None:
        if not all(map(_ENDS_WITH_NEWLINE, records)):
            records = [d if d.endswith(b"\n") else d + b"\n" for d in records]
        size = sum(map(len, records))
        if maybe_dlq:
            staging, dlq = [], []
            for data in records:
                (dlq if _is_dlq_record(data) else staging).append(data)
        else:
            staging, dlq = records, []
        with self._lock:
            self._staging.extend(staging)
            self._dlq.extend(dlq)
            self._size += size
            self.stats.accepted += len(records)
            if self._oldest is None:
                self._oldest = time.monotonic()
            full = self._size >= self.buffering.size_bytes
            overfull = self._size >= _BACKPRESSURE * self.buffering.size_bytes
        if full and (self._timer is None or overfull):
            self.flush()  # no flusher thread, or it cannot keep up: the caller waits
        elif full:
            self._flush_now.set()  # like Firehose, put returns while the buffer is delivered

    def _interval_loop(self) -> None:
        tick = min(0.1, max(self.buffering.interval_s / 4, 0.01))
        while not self._stop.is_set():
            woken = self._flush_now.wait(tick)
            self._flush_now.clear()
            with self._lock:
                due = woken or (
                    self._oldest is not None
                    and time.monotonic() - self._oldest >= self.buffering.interval_s
                )
            if due:
                try:
                    self.flush()
                except Exception:  # the flusher must survive; the records went to errors
                    log.exception("local Firehose flush failed")

    def _catalog_(self) -> Catalog:
        if self._catalog is None:
            for attempt in range(3):
                try:
                    self._catalog = open_catalog(self.settings)
                    break
                except Exception:  # another process created the SQL catalog's tables first
                    if attempt == 2:
                        raise
                    time.sleep(0.2)
        assert self._catalog is not None
        return self._catalog

    def _table(self, name: str, *, reload: bool = False) -> Table:
        ident = (self.settings.raw_namespace, name)
        if reload or ident not in self._tables:
            if name == constants.DLQ_ERRORS_TABLE:
                schema, spec = DLQ_ERRORS_SCHEMA, DLQ_ERRORS_PARTITION_SPEC
            else:
                schema, spec = RAW_STAGING_SCHEMA, RAW_STAGING_PARTITION_SPEC
            self._tables[ident] = ensure_table(self._catalog_(), ident, schema, spec)
        return self._tables[ident]

    def _commit(self, name: str, write, attempts: int = 6) -> None:
        """Run ``write(table)``; on a concurrent commit reload the table and try again."""
        table = self._table(name)
        for attempt in range(1, attempts + 1):
            try:
                write(table)
                return
            except CommitFailedException:
                if attempt == attempts:
                    raise
                time.sleep(0.05 * 2 ** (attempt - 1) * (1 + self._rng.random()))
                table = self._table(name, reload=True)

    def _deliver_staging(self, lines: list[bytes]) -> list[_Failed]:
        blob = b"".join(lines)
        rows, failed = _parse_lines(lines, _STAGING_READ, blob)
        if rows.num_rows:
            valid, invalid = _split_valid_staging(rows)
            failed += invalid
            for rule in self.delivery_faults:
                if rule.marker is None or not valid.num_rows or rule.marker.encode() not in blob:
                    continue
                hit = pc.match_substring(valid["json_payload"], rule.marker)
                for r in valid.filter(hit).to_pylist():
                    failed.append(_Failed(json.dumps(r, default=str).encode(), rule.error_code,
                                          rule.error_message, _valid_topic(r)))
                valid = valid.filter(pc.invert(hit))
            if valid.num_rows:
                topics = pc.unique(valid["topic_name"]).to_pylist()
                for topic in topics:
                    part = valid if len(topics) == 1 else valid.filter(
                        pc.equal(valid["topic_name"], topic))
                    failed += self._write(constants.raw_table_name(topic),
                                          part.cast(_STAGING_ARROW), topic)
        return failed

    def _write(self, name: str, rows: pa.Table, topic: str) -> list[_Failed]:
        try:
            self._commit(name, lambda table: table.append(rows))
        except Exception as exc:  # Firehose retries, then sends the records to error output
            log.exception("Iceberg delivery to %s failed; records go to the error output", name)
            return [
                _Failed(json.dumps(r, default=str).encode(), "Iceberg.WriteFailed",
                        f"{type(exc).__name__}: {exc}"[:1000], topic)
                for r in rows.to_pylist()
            ]
        with self._lock:
            self.stats.delivered[name] += rows.num_rows
        return []

    def _deliver_dlq(self, lines: list[bytes]) -> list[_Failed]:
        rows, failed = _parse_lines(lines, _DLQ_READ)
        if not rows.num_rows:
            return failed
        ok = pa.array([True] * rows.num_rows)
        for f in _DLQ_ARROW:
            if not f.nullable:
                ok = pc.and_(ok, pc.is_valid(rows[f.name]))
        for r in rows.filter(pc.invert(ok)).to_pylist():
            failed.append(_Failed(json.dumps(r, default=str).encode(), "Iceberg.MissingColumn",
                                  "a required dlq_errors column is missing", _valid_topic(r)))
        rows = rows.filter(ok)
        if not rows.num_rows:
            return failed
        # Firehose "update" with unique key dlq_message_id: the last version in a batch wins.
        keys = rows["dlq_message_id"].to_pylist()
        last = {k: i for i, k in enumerate(keys)}
        rows = rows.take(sorted(last.values())).cast(_DLQ_ARROW)

        def upsert(table: Table) -> None:
            table.upsert(rows, join_cols=["dlq_message_id"])

        try:
            self._commit(constants.DLQ_ERRORS_TABLE, upsert)
        except Exception as exc:
            log.exception("Iceberg delivery to dlq_errors failed; records go to error output")
            return failed + [
                _Failed(json.dumps(r, default=str).encode(), "Iceberg.WriteFailed",
                        f"{type(exc).__name__}: {exc}"[:1000], _valid_topic(r))
                for r in rows.to_pylist()
            ]
        with self._lock:
            self.stats.delivered[constants.DLQ_ERRORS_TABLE] += rows.num_rows
        return failed

    def _write_errors(self, failed: list[_Failed]) -> None:
        now = dt.datetime.now(dt.UTC)
        arrival = int(now.timestamp() * 1000)
        by_topic: dict[str, list[_Failed]] = {}
        for f in failed:
            by_topic.setdefault(f.topic, []).append(f)
        for topic, items in by_topic.items():
            body = "".join(
                json.dumps({
                    "attemptsMade": 1, "arrivalTimestamp": arrival, "errorCode": f.code,
                    "errorMessage": f.message, "topicName": topic,
                    "rawData": base64.b64encode(f.data.rstrip(b"\n")).decode(),
                }) + "\n"
                for f in items
            ).encode()
            key = (f"{ERROR_PREFIX}/{topic}/{now:%Y/%m/%d/%H}/"
                   f"{self.stream_name}-{now:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}.jsonl")
            if self._s3 is not None:
                self._s3.put_object(Bucket=self._error_bucket, Key=key, Body=body)
            else:
                path = self.settings.home / key
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(body)
        counts = {topic: len(items) for topic, items in by_topic.items()}
        with self._lock:
            self.stats.errors.update(counts)
        if self._record_ledger:
            ledger.record(self.settings, ledger.FIREHOSE_ERROR, counts)
        log.warning("local Firehose: %d record(s) to %s/: %s", len(failed), ERROR_PREFIX, counts)


def _is_dlq_record(data: bytes) -> bool:
    """Routing rule of docs/contracts.md; the byte test keeps the common path cheap."""
    if _DLQ_TAG not in data:
        return False
    try:
        parsed = json.loads(data)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("_leanops_table") == constants.DLQ_ERRORS_TABLE


def _valid_topic(row: dict) -> str:
    topic = row.get("topic_name") or ""
    return topic if constants.TOPIC_PATTERN.fullmatch(topic) else constants.UNROUTABLE_TOPIC


def _parse_lines(
    lines: list[bytes], schema: pa.Schema, blob: bytes | None = None
) -> tuple[pa.Table, list[_Failed]]:
    """JSON lines -> Arrow (vectorised); on a bad block, isolate the bad lines one by one."""
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    try:
        table = pj.read_json(io.BytesIO(blob or b"".join(lines)), read_options=_READ_OPTIONS,
                             parse_options=options)
        if table.num_rows == len(lines):
            return table.select(schema.names), []
    except pa.ArrowInvalid:
        pass
    good: list[pa.Table] = []
    failed: list[_Failed] = []
    for line in lines:
        try:
            if not isinstance(json.loads(line), dict):
                raise ValueError("not a JSON object")
            part = pj.read_json(io.BytesIO(line), parse_options=options)
            if part.num_rows != 1:
                raise ValueError("not exactly one JSON object")
            good.append(part.select(schema.names))
        except (ValueError, pa.ArrowInvalid) as exc:
            failed.append(_Failed(line, "Iceberg.InvalidRecord", str(exc)[:1000], _topic_of(line)))
    table = pa.concat_tables(good) if good else schema.empty_table()
    return table, failed


def _split_valid_staging(rows: pa.Table) -> tuple[pa.Table, list[_Failed]]:
    if all(col.null_count == 0 for col in rows.columns) and all(
        constants.TOPIC_PATTERN.fullmatch(t) for t in pc.unique(rows["topic_name"]).to_pylist()
    ):
        return rows, []  # the common case, decided from metadata and the distinct topics
    ok = pc.is_valid(rows["message_id"])
    for name in ("topic_name", "json_payload", "publish_time", "ingestion_ts"):
        ok = pc.and_(ok, pc.is_valid(rows[name]))
    routable = pc.match_substring_regex(
        pc.fill_null(rows["topic_name"], ""), constants.TOPIC_PATTERN.pattern
    )
    ok = pc.and_(ok, routable)
    if pc.all(ok).as_py():
        return rows, []
    failed = []
    for r in rows.filter(pc.invert(ok)).to_pylist():
        topic = _valid_topic(r)
        missing = [k for k, v in r.items() if v is None]
        code, message = (
            ("Iceberg.MissingColumn", f"missing required column(s): {', '.join(missing)}")
            if missing else ("Iceberg.Unroutable", f"no table for topic_name {r['topic_name']!r}")
        )
        failed.append(_Failed(json.dumps(r, default=str).encode(), code, message, topic))
    return rows.filter(ok), failed


def read_error_records(settings: Settings, s3=None, bucket: str | None = None) -> list[dict]:
    """Every record in the Firehose error output (S3 when given, else ``<home>``)."""
    records: list[dict] = []
    if s3 is not None:
        bucket = bucket or settings.archive_bucket_name
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=f"{ERROR_PREFIX}/"):
            for obj in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                records += [json.loads(x) for x in body.splitlines() if x]
        return records
    root = settings.home / ERROR_PREFIX
    for path in sorted(Path(root).rglob("*.jsonl")) if root.exists() else []:
        records += [json.loads(x) for x in path.read_bytes().splitlines() if x]
    return records


def iter_records(data: Iterable[str | bytes]) -> list[dict]:
    """Wrap bodies as Firehose ``Records`` entries (helper for tests and benchmarks)."""
    return [{"Data": d.encode() if isinstance(d, str) else d} for d in data]
