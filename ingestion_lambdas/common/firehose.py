"""Batched delivery to Firehose with bounded, per-record retries.

``deliver`` puts encoded records with ``put_record_batch`` in chunks within Firehose's limits
(500 records and 4 MiB per call). Records Firehose rejects (``FailedPutCount`` > 0, matched to
the request by position) are retried, and only those; a throttling / service-unavailable
exception on a whole call retries that chunk. Retries use exponential backoff with jitter and
stop after ``max_attempts`` attempts per record. The return value names every record that was
*not* delivered, so the caller reports exactly those messages as failed.

The ``firehose`` argument is anything with boto3's
``put_record_batch(DeliveryStreamName=..., Records=[{"Data": bytes}])`` signature.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ingestion_lambdas.common.constants import (
    FIREHOSE_MAX_BATCH_BYTES,
    FIREHOSE_MAX_BATCH_RECORDS,
)

_log = logging.getLogger(__name__)

# Error codes of a whole failed call that a later attempt can fix.
RETRYABLE_ERROR_CODES = frozenset(
    {
        "ServiceUnavailableException",
        "ThrottlingException",
        "Throttling",
        "LimitExceededException",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


@dataclass
class DeliveryReport:
    """Outcome of one ``deliver`` call."""

    delivered: int = 0
    calls: int = 0
    retried_records: int = 0
    failed: dict[int, str] = field(default_factory=dict)  # index -> last error


def chunk_indices(
    sizes: Sequence[int],
    *,
    max_records: int = FIREHOSE_MAX_BATCH_RECORDS,
    max_bytes: int = FIREHOSE_MAX_BATCH_BYTES,
) -> Iterator[list[int]]:
    """Consecutive index chunks with at most ``max_records`` items and ``max_bytes`` bytes.

    A single record larger than ``max_bytes`` gets a chunk of its own (callers reject records
    above Firehose's per-record limit before delivery, which is far below ``max_bytes``).
    """
    if len(sizes) <= max_records and sum(sizes) <= max_bytes:
        if sizes:
            yield list(range(len(sizes)))  # the common case: one call takes everything
        return
    chunk: list[int] = []
    chunk_bytes = 0
    for index, size in enumerate(sizes):
        if chunk and (len(chunk) >= max_records or chunk_bytes + size > max_bytes):
            yield chunk
            chunk, chunk_bytes = [], 0
        chunk.append(index)
        chunk_bytes += size
    if chunk:
        yield chunk


def _error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return (response.get("Error") or {}).get("Code")
    return None


def _is_retryable(exc: BaseException) -> bool:
    code = _error_code(exc)
    if code is not None:
        return code in RETRYABLE_ERROR_CODES
    # botocore connection / read-timeout errors carry no error code.
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:  # pragma: no cover - botocore is always present in Lambda
        return False
    return isinstance(exc, BotoCoreError)


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Full-jitter exponential backoff before retry number ``attempt`` (1-based)."""
    if base_s <= 0:
        return 0.0
    ceiling = min(max_s, base_s * (2 ** (attempt - 1)))
    # Jitter spreads concurrent retries; it is not a security use of randomness.
    return random.uniform(0, ceiling)  # nosec B311


def deliver(
    firehose: Any,
    stream_name: str,
    records: Sequence[bytes],
    *,
    max_attempts: int = 4,
    base_delay_s: float = 0.05,
    max_delay_s: float = 1.0,
    max_batch_records: int = FIREHOSE_MAX_BATCH_RECORDS,
    max_batch_bytes: int = FIREHOSE_MAX_BATCH_BYTES,
    sleep: Callable[[float], None] = time.sleep,
) -> DeliveryReport:
    """Put ``records`` to ``stream_name``; report which indices were not delivered."""
    report = DeliveryReport()
    sizes = list(map(len, records))
    for chunk in chunk_indices(sizes, max_records=max_batch_records, max_bytes=max_batch_bytes):
        _deliver_chunk(
            firehose, stream_name, records, chunk, report,
            max_attempts=max_attempts, base_delay_s=base_delay_s, max_delay_s=max_delay_s,
            sleep=sleep,
        )
    return report


def _deliver_chunk(
    firehose: Any,
    stream_name: str,
    records: Sequence[bytes],
    pending: list[int],
    report: DeliveryReport,
    *,
    max_attempts: int,
    base_delay_s: float,
    max_delay_s: float,
    sleep: Callable[[float], None],
) -> None:
    errors: dict[int, str] = {}
    for attempt in range(1, max_attempts + 1):
        if attempt > 1:
            report.retried_records += len(pending)
            delay = backoff_delay(attempt - 1, base_delay_s, max_delay_s)
            if delay > 0:
                sleep(delay)
        report.calls += 1
        try:
            response = firehose.put_record_batch(
                DeliveryStreamName=stream_name,
                Records=[{"Data": data} for data in map(records.__getitem__, pending)],
            )
        except Exception as exc:  # a whole call failed
            message = f"{_error_code(exc) or type(exc).__name__}: {exc}"
            for i in pending:
                errors[i] = message
            if _is_retryable(exc):
                _log.warning("firehose put_record_batch failed, will retry: %s", message)
                continue
            _log.error("firehose put_record_batch failed, not retryable: %s", message)
            break
        if not response.get("FailedPutCount"):
            report.delivered += len(pending)
            for i in pending:
                errors.pop(i, None)
            pending = []
            break
        responses = response.get("RequestResponses") or []
        if len(responses) != len(pending):
            # Cannot tell which records landed: retry all (at-least-once; RAW dedups later).
            for i in pending:
                errors[i] = "UnmatchedResponse: RequestResponses do not match the request"
            continue
        still: list[int] = []
        for i, entry in zip(pending, responses, strict=True):
            if entry.get("ErrorCode"):
                errors[i] = f"{entry['ErrorCode']}: {entry.get('ErrorMessage', '')}"
                still.append(i)
            else:
                errors.pop(i, None)
                report.delivered += 1
        pending = still
        if not pending:
            break
    for i in pending:
        report.failed[i] = errors.get(i, "unknown error")
