"""Names and limits the Lambdas share with ``leanops_dagster.constants``.

The Lambda zip deploys alone (boto3 + aws-lambda-powertools), so these values are duplicated
here on purpose; ``tests/lambdas/test_constants.py`` asserts they equal the originals, so the
two copies cannot drift apart.
"""

from __future__ import annotations

import re

TOPIC_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
RAW_TABLE_SUFFIX = "_staging"
DLQ_ERRORS_TABLE = "dlq_errors"

SQS_MAX_RECEIVE_COUNT = 5
FIREHOSE_MAX_BATCH_RECORDS = 500
FIREHOSE_MAX_BATCH_BYTES = 4 * 1024 * 1024
FIREHOSE_MAX_RECORD_BYTES = 1000 * 1024
UNKNOWN_TOPIC = "unknown"  # dlq_errors.topic_name of a message of unknown origin

# Lambda-only names (not used by the Dagster side).
ROUTING_TABLE_KEY = "_leanops_table"
SQS_PROCESSOR_SERVICE = "sqs_processor"
DLQ_PROCESSOR_SERVICE = "dlq_processor"
CIRCUIT_BREAKER_SERVICE = "circuit_breaker"

# Message attributes the Lambdas set on messages they send to the centralized DLQ themselves
# (and that dlq_processor / the DLQ replay runbook read).
ATTR_TOPIC = "leanops_topic"
ATTR_FAILURE_REASON = "leanops_failure_reason"
ATTR_ERROR_CLASS = "leanops_error_class"
ATTR_MESSAGE_ID = "leanops_message_id"
ATTR_SENT_TIMESTAMP = "leanops_sent_timestamp"
ATTR_SOURCE_QUEUE = "leanops_source_queue"

# Failure reasons (dlq_errors.failure_reason) and error classes (logs, dlq_errors.error_class).
REASON_RECORD_TOO_LARGE = "record_too_large"
REASON_INVALID_QUEUE_NAME = "invalid_queue_name"
REASON_MAX_RECEIVE_COUNT = "max_receive_count_exceeded"
ERROR_MALFORMED_JSON = "MALFORMED_JSON"
ERROR_NOT_JSON_OBJECT = "NOT_JSON_OBJECT"
ERROR_RECORD_TOO_LARGE = "RECORD_TOO_LARGE"
ERROR_INVALID_QUEUE_NAME = "INVALID_QUEUE_NAME"

# Per-topic CloudWatch metrics sqs_processor emits (EMF) and circuit_breaker reads.
METRIC_RECEIVED = "MessagesReceived"
METRIC_DELIVERED = "MessagesDelivered"
METRIC_MALFORMED = "MessagesMalformed"
METRIC_SENT_TO_DLQ = "MessagesSentToDlq"
METRIC_FAILED = "MessagesFailed"
