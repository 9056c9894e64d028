"""Pure functions that turn one SQS message into one RAW staging record (docs/contracts.md).

Nothing here does I/O; ``sqs_processor.handler`` and the tests call these directly.

RAW record, one JSON object per Firehose record, newline-terminated::

    {"message_id", "topic_name", "json_payload", "publish_time", "ingestion_ts"}

- ``message_id``: payload ``_metadata.messageId`` when the body is a JSON object carrying a
  non-empty string there (a producer's resend is then recognisable downstream), else the SQS
  messageId.
- ``json_payload``: the body exactly as received (also when it is not JSON).
- ``publish_time``: payload ``_metadata.publishTime`` when valid (ISO-8601 *with* an offset, or
  epoch milliseconds as a number or a string of digits), else the SQS ``SentTimestamp``.
- timestamps: ISO-8601 UTC with microseconds, ``2026-01-19T10:00:00.123456Z``.
"""

from __future__ import annotations

import datetime as dt
import json
import json.encoder
import math
from dataclasses import dataclass
from typing import Any

from ingestion_lambdas.common.constants import (
    ERROR_MALFORMED_JSON,
    ERROR_NOT_JSON_OBJECT,
    TOPIC_PATTERN,
)

_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_quote = json.encoder.encode_basestring  # C-accelerated JSON string literal, non-ASCII kept
_decode = json.JSONDecoder().decode


class InvalidQueueNameError(ValueError):
    """The event source queue's name does not yield a valid topic."""


def queue_name_from_arn(arn: str) -> str:
    """``arn:aws:sqs:eu-west-1:123456789012:lean-ops-dev-events-queue`` -> the queue name."""
    return (arn or "").rsplit(":", 1)[-1]


def topic_from_queue_name(name: str, prefix: str, suffix: str) -> str:
    """Strip ``prefix``/``suffix`` from a queue name and validate ``[a-z][a-z0-9_]*``."""
    if not name.startswith(prefix) or not name.endswith(suffix):
        raise InvalidQueueNameError(
            f"queue {name!r} does not match {prefix!r} + <topic> + {suffix!r}"
        )
    topic = name[len(prefix) : len(name) - len(suffix)]
    if not TOPIC_PATTERN.fullmatch(topic):
        raise InvalidQueueNameError(
            f"queue {name!r} gives topic {topic!r}, which does not match {TOPIC_PATTERN.pattern}"
        )
    return topic


def topic_from_queue_arn(arn: str, prefix: str, suffix: str) -> str:
    return topic_from_queue_name(queue_name_from_arn(arn), prefix, suffix)


def parse_body(body: str) -> tuple[dict[str, Any] | None, str | None]:
    """``(payload, None)`` for a JSON object, else ``(None, error_class)``."""
    try:
        payload = _decode(body)
    except (ValueError, RecursionError, TypeError):
        return None, ERROR_MALFORMED_JSON
    if not isinstance(payload, dict):
        return None, ERROR_NOT_JSON_OBJECT
    return payload, None


def _metadata(payload: dict[str, Any] | None) -> dict[str, Any] | None:
    if payload is None:
        return None
    meta = payload.get("_metadata")
    return meta if isinstance(meta, dict) else None


def payload_message_id(payload: dict[str, Any] | None) -> str | None:
    """``_metadata.messageId`` when it is a non-empty string."""
    meta = _metadata(payload)
    if meta is None:
        return None
    value = meta.get("messageId")
    return value if isinstance(value, str) and value.strip() else None


def format_ts(value: dt.datetime) -> str:
    """An aware datetime as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC)."""
    v = value.astimezone(_UTC)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T"
        f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}Z"
    )


def datetime_from_epoch_ms(value: int | float) -> dt.datetime | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not 0 <= value <= _MAX_EPOCH_MS:
        return None
    return _EPOCH + dt.timedelta(microseconds=round(value * 1000))


def parse_publish_time(value: Any) -> dt.datetime | None:
    """``_metadata.publishTime`` as an aware datetime, or None when absent or invalid.

    Valid: epoch milliseconds (int, float or a string of digits) or ISO-8601 with an offset
    (``Z`` or ``±hh:mm``). A naive ISO string is invalid: its instant is unknown.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return datetime_from_epoch_ms(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.isdigit() and text.isascii():
        return datetime_from_epoch_ms(int(text))
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None
    return parsed


def sent_timestamp_iso(sent_timestamp: str | None, fallback: str) -> str:
    """SQS ``SentTimestamp`` (epoch ms as a string) in the RAW format; ``fallback`` if unusable."""
    if sent_timestamp and sent_timestamp.isdigit():
        parsed = datetime_from_epoch_ms(int(sent_timestamp))
        if parsed is not None:
            return format_ts(parsed)
    return fallback


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One RAW staging record, encoded for Firehose, plus what the handler logs and counts."""

    data: bytes
    message_id: str
    error_class: str | None  # MALFORMED_JSON / NOT_JSON_OBJECT, or None for a valid payload
    publish_time_from_payload: bool


def encode_raw_record(
    message_id: str, topic: str, body: str, publish_time: str, ingestion_ts: str
) -> bytes:
    """The RAW record as UTF-8 JSON + newline; same bytes as ``json.dumps(ensure_ascii=False,
    separators=(",", ":"))`` of the dict, without building the dict (the hot path)."""
    text = (
        f'{{"message_id":{_quote(message_id)},"topic_name":{_quote(topic)},'
        f'"json_payload":{_quote(body)},"publish_time":{_quote(publish_time)},'
        f'"ingestion_ts":{_quote(ingestion_ts)}}}\n'
    )
    return text.encode("utf-8", "surrogatepass")


def build_raw_record(
    *,
    body: str,
    sqs_message_id: str,
    sent_timestamp: str | None,
    topic: str,
    ingestion_ts: str,
) -> RawRecord:
    """Classify one message body and build its RAW record (never raises for a bad body)."""
    payload, error_class = parse_body(body)
    message_id = payload_message_id(payload) or sqs_message_id
    meta = _metadata(payload)
    published = parse_publish_time(meta.get("publishTime")) if meta is not None else None
    if published is not None:
        publish_time = format_ts(published)
    else:
        publish_time = sent_timestamp_iso(sent_timestamp, ingestion_ts)
    return RawRecord(
        data=encode_raw_record(message_id, topic, body, publish_time, ingestion_ts),
        message_id=message_id,
        error_class=error_class,
        publish_time_from_payload=published is not None,
    )
