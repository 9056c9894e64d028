"""A local SQS event-source mapping: polls a queue and invokes a handler like Lambda does.

Behaviour copied from the Lambda SQS event source mapping with ``ReportBatchItemFailures``:

- a batch holds up to ``batch_size`` messages, gathered for at most ``batching_window_s``
  (without a window, one poll's worth, up to ten messages);
- the handler gets the Lambda SQS event (``Records`` with ``messageId``, ``receiptHandle``,
  ``body``, ``attributes`` incl. ``ApproximateReceiveCount`` and ``SentTimestamp``,
  ``messageAttributes``, ``md5OfBody``, ``eventSource``, ``eventSourceARN``, ``awsRegion``);
- messages the handler did not list in ``batchItemFailures`` are deleted; listed ones are left
  alone, so they reappear after the queue's visibility timeout and, after ``maxReceiveCount``
  receives, SQS itself moves them to the dead-letter queue;
- a handler exception, or a ``batchItemFailures`` entry naming no message of the batch, fails
  the whole batch (nothing is deleted), as Lambda does;
- ``maximum_concurrency`` pollers share a queue (the mapping's ``MaximumConcurrency``).

One deliberate addition: in AWS a message cannot reappear while its invocation still runs,
because the function's timeout (30 s) is far below the visibility timeout (300 s). Locally the
visibility timeout is a few seconds (so poison messages reach the DLQ quickly) and a handler
cannot be killed at a timeout, so while an invocation runs the poller extends the visibility of
its messages (``ChangeMessageVisibility``) every half timeout. Settled messages behave exactly
as in AWS: failed items become visible again one visibility timeout after they were received.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError

log = logging.getLogger(__name__)

Handler = Callable[[dict, object], dict | None]


@dataclass(frozen=True)
class EventSourceMapping:
    """The knobs of ``aws_lambda_event_source_mapping`` that change local behaviour."""

    batch_size: int = 10
    batching_window_s: float = 0.0
    maximum_concurrency: int = 2
    function_name: str = "lean-ops-local-sqs-processor"
    timeout_s: float = 30.0  # the Lambda timeout (visibility timeout should be >= 6x in AWS)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError("batch_size must be within 1..10000")
        if self.batch_size > 10 and self.batching_window_s <= 0:
            raise ValueError("batch_size above 10 needs a batching window (as in AWS)")
        if self.maximum_concurrency < 1:
            raise ValueError("maximum_concurrency must be at least 1")


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str
    timeout_s: float
    region: str = "us-east-1"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.invoked_function_arn = (
            f"arn:aws:lambda:{self.region}:123456789012:function:{self.function_name}"
        )
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def to_lambda_record(message: dict, queue_arn: str, region: str) -> dict:
    """One boto3 ``receive_message`` message -> one record of the Lambda SQS event."""
    attributes = {k: str(v) for k, v in (message.get("Attributes") or {}).items()}
    message_attributes = {}
    for name, value in (message.get("MessageAttributes") or {}).items():
        entry: dict[str, object] = {
            "dataType": value.get("DataType", "String"),
            "stringListValues": [], "binaryListValues": [],
        }
        if "StringValue" in value:
            entry["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            entry["binaryValue"] = value["BinaryValue"]
        message_attributes[name] = entry
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


@dataclass
class PollerStats:
    invocations: int = 0
    received: int = 0
    deleted: int = 0
    item_failures: int = 0
    batch_failures: int = 0


class QueuePoller:
    """``maximum_concurrency`` threads polling one queue and invoking ``handler``."""

    def __init__(
        self,
        sqs,
        queue_url: str,
        queue_arn: str,
        handler: Handler,
        mapping: EventSourceMapping,
        *,
        region: str = "us-east-1",
        enrich: Callable[[dict], dict] | None = None,
        visibility_timeout_s: float = 30.0,
    ) -> None:
        self._visibility_s = visibility_timeout_s
        self._sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self._handler = handler
        self.mapping = mapping
        self._region = region
        self._enrich = enrich
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._busy = 0  # batches received and not yet settled
        self.stats = PollerStats()
        name = queue_arn.rsplit(":", 1)[-1]
        # One receiver per queue (moto's ReceiveMessage is not synchronised: concurrent
        # receives on a queue could return the same message, which SQS does not do) hands
        # batches to ``maximum_concurrency`` invokers.
        self._handoff: queue.Queue = queue.Queue(maxsize=1)
        self._threads = [threading.Thread(target=self._receiver, name=f"poll-{name}",
                                          daemon=True)]
        self._threads += [
            threading.Thread(target=self._invoker, name=f"invoke-{name}-{i}", daemon=True)
            for i in range(mapping.maximum_concurrency)
        ]

    @property
    def busy(self) -> bool:
        """True while a received batch is not settled (deleted or left for redelivery)."""
        with self._lock:
            return self._busy > 0

    def start(self) -> QueuePoller:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout_s: float = 30) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout_s)

    # --- threads -------------------------------------------------------------------------
    def _receiver(self) -> None:
        while not self._stop.is_set():
            try:
                # Long-poll while idle; received messages are invisible in the queue, and
                # ``busy`` covers them from here until they are settled.
                first = self._receive(min(10, self.mapping.batch_size), 1)
                if not first:
                    continue
                received_at = time.monotonic()
                with self._lock:
                    self._busy += 1
                batch = self._complete(first)
                done = threading.Event()
                threading.Thread(
                    target=self._keep_invisible, args=(batch, received_at, done), daemon=True
                ).start()
                self._handoff.put((batch, done))
            except (BotoCoreError, ClientError):
                if self._stop.is_set():
                    return
                log.exception("poller for %s: SQS call failed; retrying", self.queue_arn)
                self._stop.wait(1.0)

    def _invoker(self) -> None:
        while not (self._stop.is_set() and self._handoff.empty()):
            try:
                batch, done = self._handoff.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._invoke(batch)
            except (BotoCoreError, ClientError):
                log.exception("poller for %s: SQS call failed while settling", self.queue_arn)
            finally:
                done.set()
                with self._lock:
                    self._busy -= 1

    def _receive(self, max_messages: int, wait_s: int) -> list[dict]:
        return self._sqs.receive_message(
            QueueUrl=self.queue_url, MaxNumberOfMessages=max_messages,
            WaitTimeSeconds=wait_s, AttributeNames=["All"], MessageAttributeNames=["All"],
        ).get("Messages", [])

    def _complete(self, first: list[dict]) -> list[dict]:
        """Fill the batch up to batch_size within the batching window."""
        mapping = self.mapping
        batch = list(first)
        deadline = time.monotonic() + mapping.batching_window_s
        while len(batch) < mapping.batch_size and not self._stop.is_set():
            wanted = min(10, mapping.batch_size - len(batch))
            if mapping.batching_window_s <= 0:
                more = self._receive(wanted, 0) if len(first) == 10 else []
                if not more:
                    break
            else:
                window_left = deadline - time.monotonic()
                if window_left <= 0:
                    break
                more = self._receive(wanted, 0)
                if not more:
                    self._stop.wait(min(0.05, window_left))
                    continue
            batch.extend(more)
        return batch

    def _keep_invisible(self, batch: list[dict], since: float, done: threading.Event) -> None:
        """While the invocation runs, push the batch's visibility out (see module docstring)."""
        # a third of the timeout: slack for a slow (loaded) moto before anything reappears
        period = max(0.5, self._visibility_s / 3)
        next_at = since + period
        while not done.wait(max(0.0, next_at - time.monotonic())):
            extend = max(1, round(self._visibility_s))
            for start in range(0, len(batch), 10):
                chunk = batch[start : start + 10]
                try:
                    self._sqs.change_message_visibility_batch(
                        QueueUrl=self.queue_url,
                        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"],
                                  "VisibilityTimeout": extend} for i, m in enumerate(chunk)],
                    )
                except (BotoCoreError, ClientError):
                    log.exception("could not extend visibility for %s", self.queue_arn)
            next_at = time.monotonic() + period

    def _invoke(self, messages: list[dict]) -> None:
        records = [to_lambda_record(m, self.queue_arn, self._region) for m in messages]
        if self._enrich is not None:
            records = [self._enrich(r) for r in records]
        event = {"Records": records}
        context = LambdaContext(self.mapping.function_name, self.mapping.timeout_s, self._region)
        with self._lock:
            self.stats.invocations += 1
            self.stats.received += len(records)
        started = time.monotonic()
        try:
            response = self._handler(event, context) or {}
            took = time.monotonic() - started
            if took > 1.0:
                log.warning("%s: invocation of %d records took %.2fs",
                            self.mapping.function_name, len(records), took)
            failures = {f["itemIdentifier"] for f in response.get("batchItemFailures") or []}
        except Exception:  # a function error: Lambda leaves the whole batch in the queue
            log.exception("handler %s failed; the batch returns to the queue",
                          self.mapping.function_name)
            with self._lock:
                self.stats.batch_failures += 1
            return
        ids = {r["messageId"] for r in records}
        if not failures <= ids:
            log.error("batchItemFailures names unknown message ids %s; failing the batch",
                      sorted(failures - ids))
            with self._lock:
                self.stats.batch_failures += 1
            return
        done = [r for r in records if r["messageId"] not in failures]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            result = self._sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]}
                         for i, r in enumerate(chunk)],
            )
            for failed in result.get("Failed", []):
                log.warning("delete failed for %s: %s", chunk[int(failed["Id"])]["messageId"],
                            failed.get("Message"))
        with self._lock:
            self.stats.deleted += len(done)
            self.stats.item_failures += len(failures)
