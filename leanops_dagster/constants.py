"""Names shared by the Python code, the local stack and Terraform (kept identical on purpose).

The seeds paid for a key mismatch between Lambda code and infrastructure; every name that both
sides use is derived here, and ``tests/infra/test_infra_consistency.py`` checks Terraform agrees.
"""

from __future__ import annotations

import re

PROJECT = "lean-ops"
TOPIC_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

# Iceberg namespaces (zones); an environment prefix may be prepended (see Settings.namespace).
RAW_ZONE = "raw"
STANDARDIZED_ZONE = "standardized"
CURATED_ZONE = "curated"
ZONES = (RAW_ZONE, STANDARDIZED_ZONE, CURATED_ZONE)

RAW_TABLE_SUFFIX = "_staging"
DLQ_ERRORS_TABLE = "dlq_errors"
PARSE_ERRORS_TABLE = "parse_errors"
CURATED_ERRORS_TABLE = "errors"
DRIFT_LOG_TABLE = "drift_log"

# SQS / Firehose limits the handler must respect.
SQS_MAX_RECEIVE_COUNT = 5
FIREHOSE_MAX_BATCH_RECORDS = 500
FIREHOSE_MAX_BATCH_BYTES = 4 * 1024 * 1024
FIREHOSE_MAX_RECORD_BYTES = 1000 * 1024

# Snapshot summary property keys: the watermark lives in the same Iceberg snapshot as the data.
WATERMARK_PROPERTY_PREFIX = "leanops.watermark."


#: names of the tables every topic shares in a zone: a topic of that name would write its
#: layer table into the shared one
RESERVED_TOPICS = frozenset({DLQ_ERRORS_TABLE, PARSE_ERRORS_TABLE, CURATED_ERRORS_TABLE,
                             DRIFT_LOG_TABLE})


class InvalidTopicError(ValueError):
    """A topic name outside ``[a-z][a-z0-9_]*``, or the name of a shared table."""


def validate_topic(topic: str) -> str:
    """Return ``topic`` unchanged, or raise ``InvalidTopicError`` naming the rule."""
    if not TOPIC_PATTERN.fullmatch(topic or ""):
        raise InvalidTopicError(
            f"invalid topic name {topic!r}: must match {TOPIC_PATTERN.pattern}"
        )
    if topic in RESERVED_TOPICS:
        raise InvalidTopicError(
            f"invalid topic name {topic!r}: it names a table all topics share "
            f"({', '.join(sorted(RESERVED_TOPICS))} are reserved)"
        )
    return topic


def raw_table_name(topic: str) -> str:
    return f"{validate_topic(topic)}{RAW_TABLE_SUFFIX}"


def resource_name(environment: str, component: str) -> str:
    """AWS resource naming: ``<project>-<env>-<component>``."""
    return f"{PROJECT}-{environment}-{component}"


def queue_name(environment: str, topic: str) -> str:
    return resource_name(environment, f"{validate_topic(topic)}-queue")


def dlq_name(environment: str) -> str:
    return resource_name(environment, "dlq")


def firehose_stream_name(environment: str) -> str:
    return resource_name(environment, "raw-firehose")


def glue_database_name(environment: str, zone: str) -> str:
    """Glue database (= Iceberg namespace in AWS): ``lean_ops_<env>_<zone>``."""
    return f"{PROJECT.replace('-', '_')}_{environment}_{zone}"
