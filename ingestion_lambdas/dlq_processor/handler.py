"""dlq_processor: centralized DLQ -> S3 archive + one RAW ``dlq_errors`` row per message.

Handler string: ``ingestion_lambdas.dlq_processor.handler.lambda_handler``.

Per DLQ message (all derived from the message itself, so handling it twice gives the same
result):

- ``topic``: message attribute ``leanops_topic`` (set when sqs_processor sent the message to the
  DLQ itself), else the queue name in the ``DeadLetterQueueSourceArn`` system attribute (set by
  SQS on redriven messages), else ``unknown``;
- ``failure_reason``: attribute ``leanops_failure_reason``, else ``max_receive_count_exceeded``
  (SQS redrove it after ``maxReceiveCount`` failed receives);
- ``message_id``: attribute ``leanops_message_id``, else payload ``_metadata.messageId``, else
  the SQS message id (SQS keeps it when it redrives a message);
- ``sent_time``: attribute ``leanops_sent_timestamp``, else ``SentTimestamp`` (both the original
  send time);
- archive object ``<ARCHIVE_PREFIX>/<topic>/<yyyy>/<mm>/<dd>/<dlq_message_id>.json`` (date of
  ``sent_time``, UTC), a JSON document with body, attributes, message attributes, reason,
  topic, ids; the key and the content depend only on the message, so a replay overwrites the
  same object with the same bytes;
- one Firehose record for ``dlq_errors`` (``"_leanops_table": "dlq_errors"``), routed with
  operation ``update`` keyed on ``dlq_message_id``: a replay updates the same row.

The archive is written first; the row is put with the batched Firehose delivery. A message is
only reported processed when both landed; otherwise it is a batch item failure.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from ingestion_lambdas.common import constants as c
from ingestion_lambdas.common.batch import FirehoseBatchProcessor, ForFirehose
from ingestion_lambdas.common.clients import client
from ingestion_lambdas.common.config import Config, get_config
from ingestion_lambdas.common.raw_record import (
    InvalidQueueNameError,
    datetime_from_epoch_ms,
    format_ts,
    parse_body,
    payload_message_id,
    queue_name_from_arn,
    topic_from_queue_name,
)

logger = Logger(service=c.DLQ_PROCESSOR_SERVICE)


@dataclass(frozen=True)
class DlqEntry:
    """What one DLQ message becomes: its archive object and its ``dlq_errors`` record."""

    dlq_message_id: str
    message_id: str
    topic: str
    failure_reason: str
    error_class: str | None
    receive_count: int | None
    sent_time: dt.datetime | None
    archive_key: str
    archive_body: bytes

    def firehose_record(self, *, archive_uri: str, body: str | None, recorded_ts: str) -> bytes:
        row = {
            c.ROUTING_TABLE_KEY: c.DLQ_ERRORS_TABLE,
            "dlq_message_id": self.dlq_message_id,
            "message_id": self.message_id,
            "topic_name": self.topic,
            "failure_reason": self.failure_reason,
            "error_class": self.error_class,
            "receive_count": self.receive_count,
            "body": body,
            "archive_uri": archive_uri,
            "sent_time": format_ts(self.sent_time) if self.sent_time else None,
            "recorded_ts": recorded_ts,
        }
        text = json.dumps(row, ensure_ascii=False, separators=(",", ":"))
        return (text + "\n").encode("utf-8", "surrogatepass")


def _string_attribute(raw: dict[str, Any], name: str) -> str | None:
    value = (raw.get("messageAttributes") or {}).get(name) or {}
    text = value.get("stringValue", value.get("StringValue"))
    return text if isinstance(text, str) and text else None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def topic_of(raw: dict[str, Any], config: Config) -> str:
    """``leanops_topic`` attribute, else the DeadLetterQueueSourceArn's queue, else unknown."""
    topic = _string_attribute(raw, c.ATTR_TOPIC)
    if topic and c.TOPIC_PATTERN.fullmatch(topic):
        return topic
    source_arn = (raw.get("attributes") or {}).get("DeadLetterQueueSourceArn")
    if source_arn:
        try:
            return topic_from_queue_name(
                queue_name_from_arn(source_arn), config.queue_name_prefix,
                config.queue_name_suffix,
            )
        except InvalidQueueNameError:
            pass
    return c.UNKNOWN_TOPIC


def build_entry(raw: dict[str, Any], config: Config) -> DlqEntry:
    """Pure: the archive object and row fields for one DLQ record of a Lambda SQS event."""
    attributes = raw.get("attributes") or {}
    dlq_message_id = raw["messageId"]
    body = raw.get("body", "")
    topic = topic_of(raw, config)
    reason = _string_attribute(raw, c.ATTR_FAILURE_REASON) or c.REASON_MAX_RECEIVE_COUNT
    error_class = _string_attribute(raw, c.ATTR_ERROR_CLASS)
    payload, _ = parse_body(body)
    message_id = (
        _string_attribute(raw, c.ATTR_MESSAGE_ID) or payload_message_id(payload) or dlq_message_id
    )
    sent_ms = _int_or_none(_string_attribute(raw, c.ATTR_SENT_TIMESTAMP)) or _int_or_none(
        attributes.get("SentTimestamp")
    )
    sent_time = datetime_from_epoch_ms(sent_ms) if sent_ms is not None else None
    day = sent_time.strftime("%Y/%m/%d") if sent_time else "unknown-date"
    archive_key = f"{config.archive_prefix}/{topic}/{day}/{dlq_message_id}.json"
    document = {
        "body": body,
        "attributes": attributes,
        "message_attributes": raw.get("messageAttributes") or {},
        "reason": reason,
        "error_class": error_class,
        "topic": topic,
        "dlq_message_id": dlq_message_id,
        "message_id": message_id,
        "event_source_arn": raw.get("eventSourceARN"),
    }
    archive_body = json.dumps(document, ensure_ascii=False, sort_keys=True, indent=1).encode(
        "utf-8", "surrogatepass"
    )
    return DlqEntry(
        dlq_message_id=dlq_message_id,
        message_id=message_id,
        topic=topic,
        failure_reason=reason,
        error_class=error_class,
        receive_count=_int_or_none(attributes.get("ApproximateReceiveCount")),
        sent_time=sent_time,
        archive_key=archive_key,
        archive_body=archive_body,
    )


@dataclass(frozen=True)
class Invocation:
    """What the records of one invocation share."""

    s3: Any
    bucket: str
    config: Config
    recorded_ts: str


def archive_message(
    raw: dict[str, Any], *, s3: Any, bucket: str, config: Config, recorded_ts: str
) -> ForFirehose:
    """Write one DLQ message's archive object; return its ``dlq_errors`` record for Firehose
    (without the body when the record would exceed Firehose's limit: the archive has it)."""
    entry = build_entry(raw, config)
    s3.put_object(
        Bucket=bucket, Key=entry.archive_key, Body=entry.archive_body,
        ContentType="application/json",
    )
    archive_uri = f"s3://{bucket}/{entry.archive_key}"
    data = entry.firehose_record(
        archive_uri=archive_uri, body=raw.get("body", ""), recorded_ts=recorded_ts
    )
    if len(data) > c.FIREHOSE_MAX_RECORD_BYTES:
        # The archive holds the full body; the row keeps the pointer to it.
        data = entry.firehose_record(archive_uri=archive_uri, body=None, recorded_ts=recorded_ts)
    logger.info(
        "DLQ message archived",
        extra={"topic": entry.topic, "message_id": entry.message_id,
               "dlq_message_id": entry.dlq_message_id, "reason": entry.failure_reason,
               "error_class": entry.error_class, "archive_uri": archive_uri},
    )
    return ForFirehose(data, entry.topic)


def record_handler(invocation: Invocation, record: SQSRecord) -> ForFirehose:
    """Powertools' record handler (bound to its invocation with ``functools.partial``)."""
    return archive_message(
        record.raw_event, s3=invocation.s3, bucket=invocation.bucket,
        config=invocation.config, recorded_ts=invocation.recorded_ts,
    )


def process_event(
    event: dict[str, Any],
    *,
    firehose: Any,
    s3: Any,
    config: Config,
    sqs: Any = None,
    now: Callable[[], dt.datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Archive and record every DLQ message of one Lambda SQS event; partial batch response.

    powertools' ``process_partial_response`` with ``record_handler``; the processor is made per
    call (as in ``sqs_processor.process_batch``) and puts the rows to Firehose once.
    ``sqs`` is unused; it is accepted so that callers can pass the same clients to every
    handler's ``process_event``.
    """
    if not event.get("Records"):
        return {"batchItemFailures": []}  # no data, no work
    stream = config.require("firehose_stream_name")
    invocation = Invocation(
        s3, config.require("archive_bucket"), config, format_ts((now or _utcnow)())
    )
    processor = FirehoseBatchProcessor.to_stream(firehose, stream, config, sleep)
    response = process_partial_response(
        event=event, record_handler=partial(record_handler, invocation), processor=processor
    )
    for failure, error in processor.failures():
        logger.error(
            "DLQ message not handled; reported as a batch item failure",
            extra={"dlq_message_id": failure.message_id, "error": repr(error)},
        )
    return response


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return process_event(event, firehose=client("firehose"), s3=client("s3"), config=get_config())
