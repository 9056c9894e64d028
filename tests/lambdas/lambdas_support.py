"""Shared helpers of the Lambda tests: Lambda SQS events and a scriptable fake Firehose."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import ClientError

from ingestion_lambdas.common.config import Config

ACCOUNT = "123456789012"
REGION = "us-east-1"
PREFIX = "lean-ops-test-"
_ids = itertools.count(1)


def queue_arn(queue_name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue_name}"


def sqs_record(
    body: str,
    *,
    topic: str = "events",
    queue_name: str | None = None,
    message_id: str | None = None,
    sent_timestamp: str = "1737280800123",  # 2025-01-19T10:00:00.123Z
    receive_count: str = "1",
    message_attributes: dict[str, Any] | None = None,
    extra_attributes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One record of a Lambda SQS event, shaped as Lambda delivers it."""
    mid = message_id or f"sqs-{next(_ids):06d}"
    attributes = {
        "ApproximateReceiveCount": receive_count,
        "SentTimestamp": sent_timestamp,
        "SenderId": "AIDAEXAMPLE",
        "ApproximateFirstReceiveTimestamp": sent_timestamp,
    }
    attributes.update(extra_attributes or {})
    return {
        "messageId": mid,
        "receiptHandle": f"rh-{mid}",
        "body": body,
        "attributes": attributes,
        "messageAttributes": message_attributes or {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn(queue_name or f"{PREFIX}{topic}-queue"),
        "awsRegion": REGION,
    }


def lambda_context(function_name: str = "lean-ops-test-sqs-processor") -> SimpleNamespace:
    """The attributes of a Lambda context that powertools' ``inject_lambda_context`` reads."""
    return SimpleNamespace(
        function_name=function_name,
        memory_limit_in_mb=256,
        invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}",
        aws_request_id=f"req-{next(_ids):06d}",
    )


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def payload(message_id: str | None = None, publish_time: Any = None, **fields: Any) -> str:
    meta: dict[str, Any] = {"idempotencyKeyResource": "k-1"}
    if message_id is not None:
        meta["messageId"] = message_id
    if publish_time is not None:
        meta["publishTime"] = publish_time
    return json.dumps({"eventType": "click", "_metadata": meta, **fields})


def config(**overrides: Any) -> Config:
    values: dict[str, Any] = {
        "firehose_stream_name": "lean-ops-test-raw-firehose",
        "dlq_url": "",
        "archive_bucket": "lean-ops-test-dlq-archive",
        "queue_name_prefix": PREFIX,
        "firehose_max_attempts": 3,
        "firehose_retry_base_delay_s": 0.0,
    }
    values.update(overrides)
    return Config(**values)


def client_error(code: str, operation: str = "PutRecordBatch") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} (test)"}}, operation)


class FakeFirehose:
    """boto3-compatible ``put_record_batch`` whose outcome each call is scripted.

    ``script`` is called with (call number, list of record bytes) and returns either a set of
    positions to reject, or raises. The default accepts everything. Every call's records are
    kept in ``calls``; the accepted ones in ``delivered``.
    """

    def __init__(
        self, script: Callable[[int, list[bytes]], set[int] | None] | None = None
    ) -> None:
        self.script = script or (lambda n, records: None)
        self.calls: list[list[bytes]] = []
        self.delivered: list[bytes] = []
        self.stream_names: set[str] = set()

    def put_record_batch(self, *, DeliveryStreamName: str, Records: list[dict]) -> dict:
        self.stream_names.add(DeliveryStreamName)
        data = [r["Data"] for r in Records]
        self.calls.append(data)
        rejected = self.script(len(self.calls), data) or set()
        responses = []
        for i, item in enumerate(data):
            if i in rejected:
                responses.append(
                    {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "slow down"}
                )
            else:
                self.delivered.append(item)
                responses.append({"RecordId": f"rid-{len(self.delivered)}"})
        return {"FailedPutCount": len(rejected), "Encrypted": False, "RequestResponses": responses}

    def delivered_rows(self) -> list[dict[str, Any]]:
        return [json.loads(d) for d in self.delivered]
