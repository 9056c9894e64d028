"""boto3 clients (built lazily on first use and reused across warm invocations)
and the per-invocation logging context.

Endpoints come from boto3's own environment handling (``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL_FIREHOSE``, ``AWS_ENDPOINT_URL_S3`` ...), so the
local stack points these at moto / the local Firehose without a code path of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any


@cache
def client(service: str) -> Any:
    import boto3
    from botocore.config import Config as BotoConfig

    # Our own bounded retries handle Firehose's per-record failures; keep botocore's short.
    return boto3.client(service, config=BotoConfig(retries={"mode": "standard", "max_attempts": 3}))


@contextmanager
def bound_context(logger: Any, context: Any) -> Iterator[None]:
    """Add the Lambda context's ids to every log line of one invocation (context may be None,
    e.g. when the local stack's poller invokes the handler)."""
    keys = {
        "function_name": getattr(context, "function_name", None),
        "function_request_id": getattr(context, "aws_request_id", None),
    }
    keys = {k: v for k, v in keys.items() if v is not None}
    logger.append_keys(**keys)
    try:
        yield
    finally:
        logger.remove_keys(list(keys))
