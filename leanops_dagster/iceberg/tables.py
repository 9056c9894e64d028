"""Iceberg schemas and partition specs of the fixed tables (RAW, error tables).

The specs follow the vocabulary's layout rules (``constants.publish_day_spec``,
``constants.topic_spec``).

Field ids are explicit so that Terraform's Glue table definitions and these schemas can be
compared column by column. Timestamps are microsecond ``timestamptz`` (UTC).
"""

from __future__ import annotations

from pyiceberg.schema import Schema
from pyiceberg.types import (
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from leanops_dagster.constants import publish_day_spec, topic_spec

RAW_STAGING_SCHEMA = Schema(
    NestedField(1, "message_id", StringType(), required=True),
    NestedField(2, "topic_name", StringType(), required=True),
    NestedField(3, "json_payload", StringType(), required=True),
    NestedField(4, "publish_time", TimestamptzType(), required=True),
    NestedField(5, "ingestion_ts", TimestamptzType(), required=True),
)
RAW_STAGING_PARTITION_SPEC = publish_day_spec(RAW_STAGING_SCHEMA)

DLQ_ERRORS_SCHEMA = Schema(
    NestedField(1, "dlq_message_id", StringType(), required=True),
    NestedField(2, "message_id", StringType(), required=False),
    NestedField(3, "topic_name", StringType(), required=True),
    NestedField(4, "failure_reason", StringType(), required=True),
    NestedField(5, "error_class", StringType(), required=False),
    NestedField(6, "receive_count", IntegerType(), required=False),
    NestedField(7, "body", StringType(), required=False),
    NestedField(8, "archive_uri", StringType(), required=True),
    NestedField(9, "sent_time", TimestamptzType(), required=False),
    NestedField(10, "recorded_ts", TimestamptzType(), required=True),
)
DLQ_ERRORS_PARTITION_SPEC = topic_spec(DLQ_ERRORS_SCHEMA)

PARSE_ERRORS_SCHEMA = Schema(
    NestedField(1, "message_id", StringType(), required=False),
    NestedField(2, "topic_name", StringType(), required=True),
    NestedField(3, "error_reason", StringType(), required=True),
    NestedField(4, "error_detail", StringType(), required=False),
    NestedField(5, "json_payload", StringType(), required=False),
    NestedField(6, "raw_snapshot_id", LongType(), required=True),
    NestedField(7, "publish_time", TimestamptzType(), required=False),
    NestedField(8, "ingestion_ts", TimestamptzType(), required=False),
    NestedField(9, "recorded_ts", TimestamptzType(), required=True),
)

CURATED_ERRORS_SCHEMA = Schema(
    NestedField(1, "message_id", StringType(), required=False),
    NestedField(2, "idempotency_key", StringType(), required=False),
    NestedField(3, "topic_name", StringType(), required=True),
    NestedField(4, "column_name", StringType(), required=True),
    NestedField(5, "rule", StringType(), required=True),
    NestedField(6, "offending_value", StringType(), required=False),
    NestedField(7, "error_detail", StringType(), required=False),
    NestedField(8, "standardized_snapshot_id", LongType(), required=True),
    NestedField(9, "publish_time", TimestamptzType(), required=False),
    NestedField(10, "recorded_ts", TimestamptzType(), required=True),
)
CURATED_ERRORS_PARTITION_SPEC = topic_spec(CURATED_ERRORS_SCHEMA)
PARSE_ERRORS_PARTITION_SPEC = topic_spec(PARSE_ERRORS_SCHEMA)

DRIFT_LOG_SCHEMA = Schema(
    NestedField(1, "topic_name", StringType(), required=True),
    NestedField(2, "column_name", StringType(), required=True),
    NestedField(3, "first_seen", TimestamptzType(), required=False),
    NestedField(4, "sample_value", StringType(), required=False),
    NestedField(5, "rows_seen", LongType(), required=False),
    NestedField(6, "standardized_snapshot_id", LongType(), required=True),
    NestedField(7, "recorded_ts", TimestamptzType(), required=True),
)
DRIFT_LOG_PARTITION_SPEC = topic_spec(DRIFT_LOG_SCHEMA)
