"""sqs_processor: SQS batch -> RAW records -> Firehose, with a partial batch response.

Handler string: ``ingestion_lambdas.sqs_processor.handler.lambda_handler``.

Per message (see ``common.raw_record`` for the RAW record itself):

- topic from the event source queue name (``QUEUE_NAME_PREFIX`` + topic + ``QUEUE_NAME_SUFFIX``);
  a queue name that yields no valid topic is a deployment error a retry cannot fix: the message
  goes straight to the centralized DLQ (reason ``invalid_queue_name``);
- a body that is not JSON, or JSON but not an object, is *not* retried: it is delivered to RAW
  as received and logged with its error class (``MALFORMED_JSON`` / ``NOT_JSON_OBJECT``);
- a record above Firehose's 1,000 KiB limit is not retried either: it is sent to the centralized
  DLQ with reason ``record_too_large`` (a batch item failure only if that send fails);
- everything else is collected and put to Firehose once per invocation (chunked, bounded
  per-record retries); only messages whose record was not delivered are returned in
  ``batchItemFailures``, for SQS to retry and, after ``maxReceiveCount``, to redrive.

Accountability per topic and invocation:
``received = delivered + sent_to_dlq + failed``; ``malformed`` is a subset of ``delivered``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, NamedTuple

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ingestion_lambdas.common import constants as c
from ingestion_lambdas.common.batch import (
    FirehoseBatchProcessor,
    FirehoseDeliveryError,
    ForFirehose,
)
from ingestion_lambdas.common.clients import client
from ingestion_lambdas.common.config import Config, get_config
from ingestion_lambdas.common.raw_record import (
    InvalidQueueNameError,
    RawRecordBuilder,
    format_ts,
    queue_name_from_arn,
    topic_from_queue_name,
)

logger = Logger(service=c.SQS_PROCESSOR_SERVICE)

_MAX_MESSAGE_ATTRIBUTES = 10  # SQS limit per message


@dataclass
class TopicCounts:
    received: int = 0
    delivered: int = 0
    malformed: int = 0
    sent_to_dlq: int = 0
    failed: int = 0


@dataclass
class BatchOutcome:
    """The partial batch response plus the per-topic counts (metrics, ledger, benchmark)."""

    response: dict[str, Any]
    counts: dict[str, TopicCounts] = field(default_factory=dict)
    firehose_calls: int = 0


def _forwarded_attributes(raw: dict[str, Any], extra: dict[str, str]) -> dict[str, Any]:
    """Our ``leanops_*`` attributes plus as many of the original String/Number ones as fit."""
    attributes = {k: {"DataType": "String", "StringValue": v} for k, v in extra.items() if v}
    for name, value in (raw.get("messageAttributes") or {}).items():
        if len(attributes) >= _MAX_MESSAGE_ATTRIBUTES:
            break
        data_type = value.get("dataType") or value.get("DataType") or ""
        string_value = value.get("stringValue", value.get("StringValue"))
        if name in attributes or string_value is None:
            continue
        if data_type.startswith(("String", "Number")):
            attributes[name] = {"DataType": data_type, "StringValue": string_value}
    return attributes


def send_to_dlq(
    sqs: Any,
    dlq_url: str,
    raw: dict[str, Any],
    *,
    topic: str | None,
    reason: str,
    error_class: str,
    message_id: str,
    source_queue: str,
) -> None:
    """Send one message (body unchanged) to the centralized DLQ with the reason attached."""
    sent_timestamp = (raw.get("attributes") or {}).get("SentTimestamp", "")
    sqs.send_message(
        QueueUrl=dlq_url,
        MessageBody=raw.get("body", ""),
        MessageAttributes=_forwarded_attributes(
            raw,
            {
                c.ATTR_TOPIC: topic or "",
                c.ATTR_FAILURE_REASON: reason,
                c.ATTR_ERROR_CLASS: error_class,
                c.ATTR_MESSAGE_ID: message_id,
                c.ATTR_SENT_TIMESTAMP: sent_timestamp,
                c.ATTR_SOURCE_QUEUE: source_queue,
            },
        ),
    )


@dataclass(frozen=True)
class Source:
    """An event source queue of one invocation: its topic (None: the name gives no valid
    topic) and the record builder of that topic."""

    queue: str
    topic: str | None
    builder: RawRecordBuilder | None

    @property
    def counts_key(self) -> str:
        return self.topic or c.UNKNOWN_TOPIC


class SentToDlq(NamedTuple):
    """A record handler's result: the message went to the centralized DLQ, not to Firehose."""

    topic: str | None


@dataclass(frozen=True)
class Invocation:
    """What the records of one invocation share: the SQS client (for the DLQ), the config and
    the event source queues, resolved once."""

    sqs: Any
    config: Config
    sources: dict[str, Source]


def resolve_sources(
    records: list[dict[str, Any]], config: Config, ingestion_ts: str
) -> dict[str, Source]:
    """Each distinct ``eventSourceARN`` of the records -> its ``Source``; a queue name that
    gives no valid topic is logged once (its messages go to the DLQ)."""
    sources: dict[str, Source] = {}
    for raw in records:
        arn = raw.get("eventSourceARN", "")
        if arn in sources:
            continue
        name = queue_name_from_arn(arn)
        try:
            topic = topic_from_queue_name(name, config.queue_name_prefix, config.queue_name_suffix)
        except InvalidQueueNameError as exc:
            sources[arn] = Source(name, None, None)
            logger.error(
                "queue name gives no valid topic; messages go to the DLQ",
                extra={"queue": name, "error_class": c.ERROR_INVALID_QUEUE_NAME,
                       "detail": str(exc)},
            )
            continue
        sources[arn] = Source(name, topic, RawRecordBuilder(topic, ingestion_ts))
    return sources


def handle_message(
    raw: dict[str, Any], source: Source, *, sqs: Any, config: Config
) -> ForFirehose | SentToDlq:
    """One SQS message: its RAW record for Firehose, or the DLQ for a message a retry cannot
    fix (no valid topic, a record above Firehose's limit). Raises when the DLQ send fails."""
    sqs_message_id = raw["messageId"]
    if source.builder is None:
        send_to_dlq(
            sqs, config.require("dlq_url"), raw, topic=None,
            reason=c.REASON_INVALID_QUEUE_NAME, error_class=c.ERROR_INVALID_QUEUE_NAME,
            message_id=sqs_message_id, source_queue=source.queue,
        )
        return SentToDlq(None)
    rec = source.builder.build(
        raw.get("body", ""), sqs_message_id, (raw.get("attributes") or {}).get("SentTimestamp")
    )
    if len(rec.data) > c.FIREHOSE_MAX_RECORD_BYTES:
        send_to_dlq(
            sqs, config.require("dlq_url"), raw, topic=source.topic,
            reason=c.REASON_RECORD_TOO_LARGE, error_class=c.ERROR_RECORD_TOO_LARGE,
            message_id=rec.message_id, source_queue=source.queue,
        )
        logger.warning(
            "record exceeds Firehose's record limit; sent to the DLQ",
            extra={"topic": source.topic, "message_id": rec.message_id,
                   "sqs_message_id": sqs_message_id, "record_bytes": len(rec.data),
                   "error_class": c.ERROR_RECORD_TOO_LARGE},
        )
        return SentToDlq(source.topic)
    if rec.error_class is not None:
        logger.warning(
            "body is not a JSON object; delivered to RAW as received, not retried",
            extra={"topic": source.topic, "message_id": rec.message_id,
                   "sqs_message_id": sqs_message_id, "error_class": rec.error_class},
        )
    return ForFirehose(rec.data, source.topic, rec.error_class is not None)


def record_handler(invocation: Invocation, record: SQSRecord) -> ForFirehose | SentToDlq:
    """Powertools' record handler (bound to its invocation with ``functools.partial``)."""
    raw = record.raw_event
    return handle_message(
        raw, invocation.sources[raw.get("eventSourceARN", "")],
        sqs=invocation.sqs, config=invocation.config,
    )


def count_outcomes(
    records: list[dict[str, Any]],
    sources: dict[str, Source],
    processor: FirehoseBatchProcessor,
) -> dict[str, TopicCounts]:
    """Per topic: ``received = delivered + sent_to_dlq + failed``, from the processor's
    results after the Firehose put (``malformed`` counts the non-object bodies handled)."""
    counts: dict[str, TopicCounts] = {}
    by_arn = {arn: counts.setdefault(source.counts_key, TopicCounts())
              for arn, source in sources.items()}  # in the records' order, as they came

    def tally(raw: dict[str, Any]) -> TopicCounts:
        return by_arn[raw.get("eventSourceARN", "")]

    for raw in records:
        tally(raw).received += 1
    undelivered = {id(raw) for raw, _, _ in processor.undelivered}
    for raw, result in processor.handled:
        found = tally(raw)
        if type(result) is SentToDlq:
            found.sent_to_dlq += 1
            continue
        found.malformed += result.malformed
        if id(raw) not in undelivered:
            found.delivered += 1
    for failed in processor.fail_messages:
        tally(failed.raw_event).failed += 1
    return counts


def log_failures(processor: FirehoseBatchProcessor) -> None:
    for raw, item, error in processor.undelivered:
        logger.error(
            "record not delivered to Firehose; reported as a batch item failure",
            extra={"topic": item.topic, "sqs_message_id": raw["messageId"], "error": error},
        )
    for failure, error in processor.failures():
        if not isinstance(error, FirehoseDeliveryError):
            logger.error(
                "record handling failed; reported as a batch item failure",
                extra={"sqs_message_id": failure.message_id, "error": repr(error)},
            )


def process_batch(
    event: dict[str, Any],
    *,
    firehose: Any,
    sqs: Any,
    config: Config,
    now: Callable[[], dt.datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchOutcome:
    """Process one Lambda SQS event; ``firehose`` and ``sqs`` are boto3-compatible clients.

    powertools' ``process_partial_response`` with ``record_handler``; the processor is made
    per call (powertools keeps an invocation's results on it, and the local stack runs
    invocations in parallel threads of one process) and puts the records to Firehose once.
    """
    records = event.get("Records") or []
    if not records:
        return BatchOutcome(response={"batchItemFailures": []})  # no data, no work
    stream = config.require("firehose_stream_name")
    sources = resolve_sources(records, config, format_ts((now or _utcnow)()))
    processor = FirehoseBatchProcessor.to_stream(firehose, stream, config, sleep)
    response = process_partial_response(
        event=event,
        record_handler=partial(record_handler, Invocation(sqs, config, sources)),
        processor=processor,
    )
    log_failures(processor)
    outcome = BatchOutcome(
        response=response,
        counts=count_outcomes(records, sources, processor),
        firehose_calls=processor.delivery.calls if processor.delivery else 0,
    )
    if logger.isEnabledFor(logging.INFO):  # one line per invocation; skip building it if off
        logger.info(
            "batch processed",
            extra={"records": len(records),
                   "batch_item_failures": len(response.get("batchItemFailures", [])),
                   "firehose_calls": outcome.firehose_calls,
                   "counts": {t: asdict(v) for t, v in outcome.counts.items()}},
        )
    return outcome


def process_event(
    event: dict[str, Any], *, firehose: Any, sqs: Any, config: Config
) -> dict[str, Any]:
    """Process one Lambda SQS event; returns ``{"batchItemFailures": [...]}``."""
    return process_batch(event, firehose=firehose, sqs=sqs, config=config).response


def publish_metrics(counts: dict[str, TopicCounts], config: Config) -> None:
    """Per-topic counts as CloudWatch EMF metrics (read by the circuit breaker)."""
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    metrics = Metrics(namespace=config.metrics_namespace, service=c.SQS_PROCESSOR_SERVICE)
    for topic, tally in counts.items():
        metrics.add_dimension(name="topic", value=topic)
        for name, value in (
            (c.METRIC_RECEIVED, tally.received),
            (c.METRIC_DELIVERED, tally.delivered),
            (c.METRIC_MALFORMED, tally.malformed),
            (c.METRIC_SENT_TO_DLQ, tally.sent_to_dlq),
            (c.METRIC_FAILED, tally.failed),
        ):
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        metrics.flush_metrics()


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    config = get_config()
    outcome = process_batch(event, firehose=client("firehose"), sqs=client("sqs"), config=config)
    publish_metrics(outcome.counts, config)
    return outcome.response
