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
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ingestion_lambdas.common import constants as c
from ingestion_lambdas.common.batch import (
    FirehoseBatchProcessor,
    FirehoseDeliveryError,
    ForFirehose,
)
from ingestion_lambdas.common.clients import bound_context, client
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


def process_batch(
    event: dict[str, Any],
    *,
    firehose: Any,
    sqs: Any,
    config: Config,
    now: Callable[[], dt.datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> BatchOutcome:
    """Process one Lambda SQS event; ``firehose`` and ``sqs`` are boto3-compatible clients."""
    if not event.get("Records"):
        return BatchOutcome(response={"batchItemFailures": []})  # no data, no work
    stream = config.require("firehose_stream_name")
    ingestion_ts = format_ts((now or _utcnow)())
    prefix, suffix = config.queue_name_prefix, config.queue_name_suffix
    topics: dict[str, str | None] = {}
    counts: dict[str, TopicCounts] = {}
    invalid_queues: set[str] = set()
    # Per event source queue: (topic or None, its counts, its record builder), resolved once.
    sources: dict[str, tuple[str | None, TopicCounts, RawRecordBuilder | None]] = {}

    def topic_of(arn: str) -> str | None:
        try:
            return topics[arn]
        except KeyError:
            pass
        name = queue_name_from_arn(arn)
        try:
            topics[arn] = topic_from_queue_name(name, prefix, suffix)
        except InvalidQueueNameError as exc:
            topics[arn] = None
            invalid_queues.add(name)
            logger.error(
                "queue name gives no valid topic; messages go to the DLQ",
                extra={"queue": name, "error_class": c.ERROR_INVALID_QUEUE_NAME,
                       "detail": str(exc)},
            )
        return topics[arn]

    def counts_for(topic: str | None) -> TopicCounts:
        key = topic or c.UNKNOWN_TOPIC
        found = counts.get(key)
        if found is None:
            found = counts[key] = TopicCounts()
        return found

    def source_of(arn: str) -> tuple[str | None, TopicCounts, RawRecordBuilder | None]:
        topic = topic_of(arn)
        builder = RawRecordBuilder(topic, ingestion_ts) if topic is not None else None
        found = sources[arn] = (topic, counts_for(topic), builder)
        return found

    def record_handler(record: SQSRecord) -> ForFirehose | None:
        raw = record.raw_event
        arn = raw.get("eventSourceARN", "")
        try:
            topic, tally, builder = sources[arn]
        except KeyError:
            topic, tally, builder = source_of(arn)
        tally.received += 1
        sqs_message_id = raw["messageId"]
        if builder is None:
            send_to_dlq(
                sqs, config.require("dlq_url"), raw, topic=None,
                reason=c.REASON_INVALID_QUEUE_NAME, error_class=c.ERROR_INVALID_QUEUE_NAME,
                message_id=sqs_message_id, source_queue=queue_name_from_arn(arn),
            )
            tally.sent_to_dlq += 1
            return None
        rec = builder.build(
            raw.get("body", ""), sqs_message_id, (raw.get("attributes") or {}).get("SentTimestamp")
        )
        if len(rec.data) > c.FIREHOSE_MAX_RECORD_BYTES:
            send_to_dlq(
                sqs, config.require("dlq_url"), raw, topic=topic,
                reason=c.REASON_RECORD_TOO_LARGE, error_class=c.ERROR_RECORD_TOO_LARGE,
                message_id=rec.message_id, source_queue=queue_name_from_arn(arn),
            )
            tally.sent_to_dlq += 1
            logger.warning(
                "record exceeds Firehose's record limit; sent to the DLQ",
                extra={"topic": topic, "message_id": rec.message_id,
                       "sqs_message_id": sqs_message_id, "record_bytes": len(rec.data),
                       "error_class": c.ERROR_RECORD_TOO_LARGE},
            )
            return None
        if rec.error_class is not None:
            tally.malformed += 1
            logger.warning(
                "body is not a JSON object; delivered to RAW as received, not retried",
                extra={"topic": topic, "message_id": rec.message_id,
                       "sqs_message_id": sqs_message_id, "error_class": rec.error_class},
            )
        tally.delivered += 1  # provisional: the undelivered are subtracted after the put
        return ForFirehose(rec.data, topic)

    processor = FirehoseBatchProcessor.to_stream(firehose, stream, config, sleep)
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor
    )

    for raw, item, error in processor.undelivered:
        counts_for(item.topic).delivered -= 1
        logger.error(
            "record not delivered to Firehose; reported as a batch item failure",
            extra={"topic": item.topic, "sqs_message_id": raw["messageId"], "error": error},
        )
    for failed in processor.fail_messages:
        counts_for(topics.get(failed.raw_event.get("eventSourceARN", ""))).failed += 1
    for failure, exc_info in zip(processor.fail_messages, processor.exceptions, strict=False):
        if exc_info[0] is not FirehoseDeliveryError:
            logger.error(
                "record handling failed; reported as a batch item failure",
                extra={"sqs_message_id": failure.message_id, "error": repr(exc_info[1])},
            )

    outcome = BatchOutcome(
        response=response,
        counts=counts,
        firehose_calls=processor.delivery.calls if processor.delivery else 0,
    )
    if logger.isEnabledFor(logging.INFO):  # one line per invocation; skip building it if off
        logger.info(
            "batch processed",
            extra={"records": len(event.get("Records") or []),
                   "batch_item_failures": len(response.get("batchItemFailures", [])),
                   "firehose_calls": outcome.firehose_calls,
                   "counts": {t: asdict(v) for t, v in counts.items()}},
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


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with bound_context(logger, context):
        config = get_config()
        outcome = process_batch(
            event, firehose=client("firehose"), sqs=client("sqs"), config=config
        )
        publish_metrics(outcome.counts, config)
        return outcome.response
