"""The local ingestion stack: moto SQS/S3, event-source pollers, the real handlers, Firehose.

```
stack.send(topic, bodies) -> moto SQS queue per topic -- poller --> sqs_processor.process_event
    -> LocalFirehose (buffering hints) -> pyiceberg -> <raw ns>.<topic>_staging
  failed items x maxReceiveCount -> SQS redrive -> centralized DLQ -- poller -->
    dlq_processor.process_event -> S3 dlq-archive/... + LocalFirehose -> <raw ns>.dlq_errors
```

Everything AWS-shaped is the real thing or boto3 against moto: queue names, redrive policy
(``maxReceiveCount`` 5), the Lambda SQS event, partial batch responses. The handlers get the
``LocalFirehose`` object in place of a boto3 Firehose client (same method, same response).
Visibility timeouts are short (seconds) so that a poison message reaches the DLQ in seconds.

While running, ``<home>/local-stack.json`` names the endpoint and queue URLs so that other
processes (the Dagster daemon's DLQ replay job) can reach the same moto server.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from leanops_dagster import constants
from leanops_dagster.local import aws, ledger
from leanops_dagster.local.firehose import (
    DEFAULT_FAULT_RULES,
    BufferingHints,
    FaultRule,
    LocalFirehose,
)
from leanops_dagster.local.poller import EventSourceMapping, QueuePoller
from leanops_dagster.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_TOPICS = ("events", "sensor_readings")
TOPIC_ATTRIBUTE = "leanops_topic"  # = ingestion_lambdas.common.constants.ATTR_TOPIC
SOURCE_QUEUE_ATTRIBUTE = "leanops_source_queue"
STATE_FILE = "local-stack.json"
_LAMBDA_LOGGERS = ("sqs_processor", "dlq_processor")  # Powertools Logger service names
_QUEUE_COUNTERS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


@dataclass(frozen=True)
class StackOptions:
    """Local knobs; AWS values in comments."""

    topics: tuple[str, ...] = DEFAULT_TOPICS  # queues created at start (more on first send)
    visibility_timeout_s: int = 5  # AWS: 300 (>= 6 x the 30 s Lambda timeout)
    dlq_visibility_timeout_s: int = 5
    max_receive_count: int = constants.SQS_MAX_RECEIVE_COUNT
    mapping: EventSourceMapping = field(
        default_factory=lambda: EventSourceMapping(
            batch_size=100, batching_window_s=0.2, maximum_concurrency=2,
            function_name="lean-ops-local-sqs-processor",
        )
    )
    dlq_mapping: EventSourceMapping = field(
        default_factory=lambda: EventSourceMapping(
            batch_size=10, maximum_concurrency=1, function_name="lean-ops-local-dlq-processor",
        )
    )
    buffering: BufferingHints = field(
        default_factory=lambda: BufferingHints(size_mib=1.0, interval_s=1.0)
    )
    fault_rules: tuple[FaultRule, ...] = DEFAULT_FAULT_RULES
    moto_mode: str = "thread"  # or "process": moto in a subprocess, off this process's GIL
    firehose_retry_base_delay_s: float = 0.01  # handler backoff between Firehose attempts
    drain_on_exit_s: float = 120.0  # __exit__ waits this long for quiet before stopping
    lambda_log: str | None = "logs/lambda.log"  # handlers' JSON logs, under home; None: stdout


@dataclass
class QuietReport:
    """What ``wait_until_quiet`` observed: cumulative totals of this stack instance."""

    seconds: float
    sent: dict[str, int]
    delivered: dict[str, int]  # table name -> rows committed by this stack's Firehose
    firehose_errors: dict[str, int]
    invocations: int
    item_failures: int
    batch_failures: int
    dlq_invocations: int


class LocalStack:
    """Start with ``with LocalStack(settings) as stack:``; see the module docstring."""

    def __init__(self, settings: Settings, options: StackOptions | None = None, **overrides):
        self.options = replace(options or StackOptions(), **overrides)
        for topic in self.options.topics:
            constants.validate_topic(topic)
        self.settings = settings
        self._moto = aws.MotoEndpoint(self.options.moto_mode)
        self._lock = threading.Lock()
        self._queues: dict[str, tuple[str, str]] = {}  # topic -> (url, arn)
        self._pollers: dict[str, QueuePoller] = {}
        self._sent: dict[str, int] = {}
        self._started = False
        self.endpoint_url: str | None = None
        self.firehose: LocalFirehose | None = None
        self._dlq: tuple[str, str] | None = None
        self._log_file = None
        self._log_streams: list[tuple[logging.StreamHandler, object]] = []

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> LocalStack:
        if self._started:
            return self
        self.settings.home.mkdir(parents=True, exist_ok=True)
        self.endpoint_url = self._moto.start()
        self.sqs = self.client("sqs", max_pool_connections=50)
        self.s3 = self.client("s3")
        try:
            self.s3.create_bucket(Bucket=self.settings.archive_bucket_name)
            self._dlq = self._create_queue(
                self.settings.dlq_name, self.options.dlq_visibility_timeout_s, redrive_to=None
            )
            self.firehose = LocalFirehose(
                self.settings, buffering=self.options.buffering,
                fault_rules=self.options.fault_rules, s3=self.s3,
            )
            self._handlers = _load_handlers()
            self._redirect_lambda_logs()
            self._config = self._handler_config()
            dlq_poller = QueuePoller(
                self.sqs, self._dlq[0], self._dlq[1], self._dlq_handler,
                self.options.dlq_mapping, region=self.settings.aws_region,
                enrich=self._add_dlq_source,
                visibility_timeout_s=self.options.dlq_visibility_timeout_s,
            )
            self._pollers[self.settings.dlq_name] = dlq_poller.start()
            self._started = True
            for topic in self.options.topics:
                self.queue_url(topic)
            self._write_state()
        except BaseException:
            self.stop(drain=False)
            raise
        return self

    def stop(self, *, drain: bool = True, timeout_s: float | None = None) -> None:
        """Stop pollers, flush Firehose, stop moto. Without quiet, leftovers are ledgered."""
        if drain and self._started:
            try:
                self.wait_until_quiet(timeout_s or self.options.drain_on_exit_s)
            except TimeoutError:
                log.error("local stack stopping before quiet")
        leftovers = self._queue_depths() if self._started else {}
        for poller in self._pollers.values():
            poller.stop()
        self._pollers.clear()
        if self.firehose is not None:
            self.firehose.close()
        abandoned = {
            topic: n for topic, n in (leftovers or {}).items()
            if n and topic != self.settings.dlq_name
        }
        if abandoned:
            log.error("messages lost with the in-memory queues: %s", abandoned)
            ledger.record(self.settings, ledger.ABANDONED, abandoned)
        self._moto.stop()
        self._restore_lambda_logs()
        (self.settings.home / STATE_FILE).unlink(missing_ok=True)
        self._started = False

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, exc_type, *_: object) -> None:
        self.stop(drain=exc_type is None)

    # --- public API ----------------------------------------------------------------------
    def client(self, service: str, **config: object):
        """A boto3 client for ``service`` at the stack's moto endpoint."""
        return aws.client(service, self.endpoint_url, self.settings.aws_region, **config)

    @property
    def dlq_url(self) -> str:
        self._require_started()
        assert self._dlq is not None
        return self._dlq[0]

    def queue_url(self, topic: str) -> str:
        """The topic's queue URL; creates the queue and its poller on first use."""
        constants.validate_topic(topic)
        self._require_started()
        with self._lock:
            if topic not in self._queues:
                assert self._dlq is not None
                url, arn = self._create_queue(
                    self.settings.queue_name(topic), self.options.visibility_timeout_s,
                    redrive_to=self._dlq[1],
                )
                self._queues[topic] = (url, arn)
                self._pollers[topic] = QueuePoller(
                    self.sqs, url, arn, self._sqs_handler, self.options.mapping,
                    region=self.settings.aws_region,
                    visibility_timeout_s=self.options.visibility_timeout_s,
                ).start()
                self._write_state()
            return self._queues[topic][0]

    @property
    def topics(self) -> list[str]:
        return sorted(self._queues)

    def send(
        self,
        topic: str,
        bodies: Iterable[str],
        *,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Send each body as one SQS message (as-is), 10 per call; returns the number sent.

        Every message accepted by SQS is counted in the ingestion ledger (``sent``), with the
        ``leanops_topic`` message attribute that the DLQ path uses to name the source topic.
        ``progress(n)`` is called with the number of messages sent by each call.
        """
        url = self.queue_url(topic)
        attributes = {TOPIC_ATTRIBUTE: {"DataType": "String", "StringValue": topic}}
        sent = 0
        unledgered = 0
        last_ledger = time.monotonic()
        batch: list[str] = []

        def flush_batch() -> None:
            nonlocal sent, unledgered
            entries = [
                {"Id": str(i), "MessageBody": body, "MessageAttributes": attributes}
                for i, body in enumerate(batch)
            ]
            for attempt in range(5):
                result = self.sqs.send_message_batch(QueueUrl=url, Entries=entries)
                ok = len(result.get("Successful", []))
                sent += ok
                unledgered += ok
                if progress is not None and ok:
                    progress(ok)
                failed_ids = {f["Id"] for f in result.get("Failed", [])}
                entries = [e for e in entries if e["Id"] in failed_ids]
                if not entries:
                    break
                if any(f.get("SenderFault") for f in result.get("Failed", [])):
                    raise ValueError(f"SQS rejected messages: {result['Failed']}")
                time.sleep(0.1 * 2**attempt)
            if entries:
                raise RuntimeError(f"SQS did not accept {len(entries)} message(s) of {topic}")
            batch.clear()

        try:
            for body in bodies:
                if not isinstance(body, str):
                    raise TypeError("SQS message bodies are strings")
                batch.append(body)
                if len(batch) == 10:
                    flush_batch()
                    if time.monotonic() - last_ledger > 1.0:
                        ledger.record(self.settings, ledger.SENT, {topic: unledgered})
                        unledgered, last_ledger = 0, time.monotonic()
            if batch:
                flush_batch()
        finally:
            ledger.record(self.settings, ledger.SENT, {topic: unledgered})
            with self._lock:
                self._sent[topic] = self._sent.get(topic, 0) + sent
        return sent

    def wait_until_quiet(self, timeout_s: float = 600.0, poll_s: float = 0.2) -> QuietReport:
        """Block until every sent message is in RAW, in ``dlq_errors`` or in Firehose errors.

        Quiet means: no message visible, in flight or delayed in any queue (topic queues and
        DLQ), no poller holding a batch, and the Firehose buffer delivered.
        Raises ``TimeoutError`` naming what is still busy.
        """
        self._require_started()
        assert self.firehose is not None
        started = time.monotonic()
        deadline = started + timeout_s
        while True:
            depths = self._queue_depths()
            busy = [name for name, p in self._pollers.items() if p.busy]
            if not any(depths.values()) and not busy:
                self.firehose.flush()
                if (
                    not any(self._queue_depths().values())
                    and not any(p.busy for p in self._pollers.values())
                    and self.firehose.pending_records == 0
                ):
                    return self._report(time.monotonic() - started)
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"local stack not quiet after {timeout_s:.0f}s: queue depths "
                    f"{ {k: v for k, v in depths.items() if v} }, busy pollers {busy}"
                )
            time.sleep(poll_s)

    def report(self) -> QuietReport:
        return self._report(0.0)

    # --- internals -----------------------------------------------------------------------
    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("the local stack is not started (use `with LocalStack(...)`)")

    def _create_queue(self, name: str, visibility_s: int, redrive_to: str | None):
        attributes = {"VisibilityTimeout": str(visibility_s), "MessageRetentionPeriod": "1209600"}
        if redrive_to is not None:
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": redrive_to,
                 "maxReceiveCount": str(self.options.max_receive_count)}
            )
        url = self.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        return url, arn

    def _queue_depths(self) -> dict[str, int]:
        urls = {topic: url for topic, (url, _) in self._queues.items()}
        if self._dlq is not None:
            urls[self.settings.dlq_name] = self._dlq[0]
        depths = {}
        for name, url in urls.items():
            # "All" costs moto one pass; naming three attributes costs it six.
            attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
                "Attributes"]
            depths[name] = sum(int(attrs.get(k, 0)) for k in _QUEUE_COUNTERS)
        return depths

    def _handler_config(self):
        from ingestion_lambdas.common.config import Config

        return Config(
            firehose_stream_name=self.settings.firehose_stream_name,
            dlq_url=self._dlq[0] if self._dlq else "",
            archive_bucket=self.settings.archive_bucket_name,
            queue_name_prefix=constants.resource_name(self.settings.environment, ""),
            queue_name_suffix="-queue",
            firehose_retry_base_delay_s=self.options.firehose_retry_base_delay_s,
            firehose_retry_max_delay_s=max(0.1, self.options.firehose_retry_base_delay_s * 8),
        )

    def _sqs_handler(self, event: dict, context: object) -> dict:
        return self._handlers.sqs(
            event, firehose=self.firehose, sqs=self.sqs, config=self._config
        )

    def _dlq_handler(self, event: dict, context: object) -> dict:
        return self._handlers.dlq(
            event, firehose=self.firehose, s3=self.s3, config=self._config
        )

    def _add_dlq_source(self, record: dict) -> dict:
        """Emulate the ``DeadLetterQueueSourceArn`` attribute AWS adds on redrive (moto lacks it).

        A message redriven by SQS carries the ``leanops_topic`` attribute ``send`` set; a
        message the handler sent to the DLQ itself carries ``leanops_source_queue`` instead.
        """
        attrs = record["messageAttributes"]
        topic = (attrs.get(TOPIC_ATTRIBUTE) or {}).get("stringValue")
        if (
            "DeadLetterQueueSourceArn" not in record["attributes"]
            and SOURCE_QUEUE_ATTRIBUTE not in attrs
            and topic in self._queues
        ):
            record["attributes"]["DeadLetterQueueSourceArn"] = self._queues[topic][1]
        return record

    def _redirect_lambda_logs(self) -> None:
        """The handlers log JSON to stdout (CloudWatch in AWS); locally to a file under home."""
        if self.options.lambda_log is None:
            return
        path = self.settings.home / self.options.lambda_log
        path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = path.open("a", encoding="utf-8")
        for name in _LAMBDA_LOGGERS:
            for handler in logging.getLogger(name).handlers:
                if isinstance(handler, logging.StreamHandler) and not isinstance(
                    handler, logging.FileHandler
                ):
                    self._log_streams.append((handler, handler.setStream(self._log_file)))

    def _restore_lambda_logs(self) -> None:
        for handler, stream in self._log_streams:
            handler.setStream(stream)
        self._log_streams.clear()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _report(self, seconds: float) -> QuietReport:
        assert self.firehose is not None
        stats = self.firehose.stats.copy()
        topic_pollers = [p for name, p in self._pollers.items() if name != self.settings.dlq_name]
        dlq = self._pollers.get(self.settings.dlq_name)
        return QuietReport(
            seconds=seconds, sent=dict(self._sent), delivered=dict(stats.delivered),
            firehose_errors=dict(stats.errors),
            invocations=sum(p.stats.invocations for p in topic_pollers),
            item_failures=sum(p.stats.item_failures for p in topic_pollers),
            batch_failures=sum(p.stats.batch_failures for p in self._pollers.values()),
            dlq_invocations=dlq.stats.invocations if dlq else 0,
        )

    def _write_state(self) -> None:
        state = {
            "pid": os.getpid(), "endpoint_url": self.endpoint_url,
            "region": self.settings.aws_region,
            "dlq_url": self._dlq[0] if self._dlq else None,
            "queues": {t: u for t, (u, _) in self._queues.items()},
            "archive_bucket": self.settings.archive_bucket_name,
        }
        path = self.settings.home / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)


def running_stack(settings: Settings) -> dict | None:
    """The state file of a stack running under ``settings.home`` (endpoint, queue URLs)."""
    path: Path = settings.home / STATE_FILE
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    try:
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None  # stale: its process is gone
    return state


@dataclass(frozen=True)
class _Handlers:
    sqs: Callable[..., dict]
    dlq: Callable[..., dict]


def _load_handlers() -> _Handlers:
    from ingestion_lambdas.dlq_processor.handler import process_event as dlq_process_event
    from ingestion_lambdas.sqs_processor.handler import process_event as sqs_process_event

    return _Handlers(sqs=sqs_process_event, dlq=dlq_process_event)
