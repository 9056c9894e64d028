"""DLQ replay (the runbook's ``leanops dlq replay`` and ``dlq_replay`` job): dead-lettered
messages back to their topic's queue, as a plain function over an SQS client."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from leanops_dagster.constants import UNKNOWN_TOPIC


@dataclass
class ReplayResult:
    received: int = 0
    replayed: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)


def _topic_of(message: dict, queue_prefix: str, queue_suffix: str) -> str | None:
    attrs = message.get("MessageAttributes") or {}
    if "leanops_topic" in attrs:
        return attrs["leanops_topic"].get("StringValue")
    source_arn = (message.get("Attributes") or {}).get("DeadLetterQueueSourceArn", "")
    name = source_arn.rsplit(":", 1)[-1]
    if name.startswith(queue_prefix) and name.endswith(queue_suffix):
        return name[len(queue_prefix) : len(name) - len(queue_suffix)]
    return None


def replay_dlq(
    sqs, *, dlq_url: str, queue_url_for, queue_prefix: str, queue_suffix: str = "-queue",
    topic: str | None = None, max_messages: int = 1000, visibility_timeout_s: int = 300,
) -> ReplayResult:
    """Move DLQ messages back to their source queue; delete each only after it was re-sent.

    ``queue_url_for(topic)`` maps a topic to its queue URL. Messages of other topics (when
    ``topic`` is given) or of unknown origin stay in the DLQ and are counted as skipped; they
    are left invisible for ``visibility_timeout_s`` so one replay counts each message once.
    """
    result = ReplayResult()
    while result.received < max_messages:
        batch = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=min(10, max_messages - result.received),
            AttributeNames=["All"], MessageAttributeNames=["All"],
            VisibilityTimeout=visibility_timeout_s,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not batch:
            break
        for message in batch:
            result.received += 1
            source = _topic_of(message, queue_prefix, queue_suffix)
            if source is None or (topic is not None and source != topic):
                key = source or UNKNOWN_TOPIC
                result.skipped[key] = result.skipped.get(key, 0) + 1
                continue  # stays in the DLQ, invisible until this replay is over
            sqs.send_message(QueueUrl=queue_url_for(source), MessageBody=message["Body"])
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            result.replayed[source] = result.replayed.get(source, 0) + 1
    return result


def describe(result: ReplayResult) -> str:
    return json.dumps({"received": result.received, "replayed": result.replayed,
                       "skipped": result.skipped})
