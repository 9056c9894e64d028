"""boto3 clients, built lazily on first use and reused across warm invocations.

Endpoints come from boto3's own environment handling (``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL_FIREHOSE``, ``AWS_ENDPOINT_URL_S3`` ...), so the
local stack points these at moto / the local Firehose without a code path of its own.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def client(service: str) -> Any:
    import boto3
    from botocore.config import Config as BotoConfig

    # Our own bounded retries handle Firehose's per-record failures; keep botocore's short.
    return boto3.client(service, config=BotoConfig(retries={"mode": "standard", "max_attempts": 3}))
