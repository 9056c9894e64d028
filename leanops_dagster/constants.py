"""The storage vocabulary: every name the layers, the local stack and Terraform share.

One home (as pyiceberg keeps its property names in ``TableProperties``) for the names that
are stored or shared and so must never be spelled twice: zones and table names, the columns
the layers pass on, the watermark names and ``leanops.*`` snapshot-summary keys and table
properties, the partition specs, and the AWS resource names. Renaming a stored name orphans
what existing tables hold under the old one: these values are persisted, not cosmetic.

The seeds paid for a key mismatch between Lambda code and infrastructure; every name that both
sides use is derived here, ``tests/infra/test_infra_consistency.py`` checks Terraform agrees
and ``tests/lambdas/test_lambda_package.py`` that the Lambdas' copy does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pyiceberg is imported where a spec is built: settings and the CLI stay light
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.schema import Schema

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
#: each zone's run leases (``iceberg.lease``); the underscore keeps it apart from every topic
LEASE_TABLE = "_run_leases"

# SQS / Firehose limits the handler must respect.
SQS_MAX_RECEIVE_COUNT = 5
FIREHOSE_MAX_BATCH_RECORDS = 500
FIREHOSE_MAX_BATCH_BYTES = 4 * 1024 * 1024
FIREHOSE_MAX_RECORD_BYTES = 1000 * 1024

# --- columns the layers pass on ------------------------------------------------------------
MESSAGE_ID = "message_id"
TOPIC_NAME = "topic_name"
JSON_PAYLOAD = "json_payload"
PUBLISH_TIME = "publish_time"
INGESTION_TS = "ingestion_ts"
IDEMPOTENCY_KEY = "idempotency_key"
#: lineage: the upstream snapshot that brought a row (Standardized, Curated, error tables)
RAW_SNAPSHOT_ID = "raw_snapshot_id"
STANDARDIZED_SNAPSHOT_ID = "standardized_snapshot_id"
RECORDED_TS = "recorded_ts"

RAW_COLUMNS = (MESSAGE_ID, TOPIC_NAME, JSON_PAYLOAD, PUBLISH_TIME, INGESTION_TS)
#: metadata columns of Standardized and Curated, in output order
METADATA_COLUMNS = (MESSAGE_ID, IDEMPOTENCY_KEY, TOPIC_NAME, PUBLISH_TIME, INGESTION_TS)
#: lineage columns a caller may add (the snapshot a row was read from); carried through
LINEAGE_COLUMNS = (RAW_SNAPSHOT_ID, STANDARDIZED_SNAPSHOT_ID)
#: names Iceberg reserves for its metadata columns (``org.apache.iceberg.MetadataColumns``,
#: v3 row lineage and the changelog view's): a table column of one of these names makes
#: Iceberg's Spark reader refuse every read of the table ("Table column names conflict with
#: names reserved for Iceberg metadata columns"), so no layer may create one
ICEBERG_METADATA_COLUMNS = (
    "_file", "_pos", "_deleted", "_spec_id", "_partition", "_row_id",
    "_last_updated_sequence_number", "_change_type", "_change_ordinal", "_commit_snapshot_id",
)

#: ``dlq_errors.topic_name`` and the DLQ replay's count key for a message of unknown origin
#: (the Lambdas write it: ``ingestion_lambdas/common/constants.py``)
UNKNOWN_TOPIC = "unknown"
#: the local Firehose stand-in's key for a record without a valid ``topic_name`` (its error
#: counts and prefix): the leading underscore keeps it apart from every topic name
UNROUTABLE_TOPIC = "_unknown"

# --- snapshot summaries and table properties (``leanops.*``) --------------------------------
SUMMARY_PREFIX = "leanops."
#: ``leanops.watermark.<name>``: the upstream snapshot a commit consumed up to, in the same
#: Iceberg snapshot as the data (``iceberg.watermarks``)
WATERMARK_PROPERTY_PREFIX = "leanops.watermark."
#: ``leanops.total.<count>``: running totals (``iceberg.watermarks.counter_properties``)
TOTAL_PROPERTY_PREFIX = "leanops.total."
#: Standardized's watermark on RAW and Curated's on Standardized (the lineage columns' names)
RAW_WATERMARK = RAW_SNAPSHOT_ID
STD_WATERMARK = STANDARDIZED_SNAPSHOT_ID
#: the upstream snapshot a layer commit's increment started after (empty: the first)
RAW_SNAPSHOT_FROM_PROPERTY = "leanops.raw_snapshot_from"
STANDARDIZED_SNAPSHOT_FROM_PROPERTY = "leanops.standardized_snapshot_from"
#: the schema version a Curated commit was made with (snapshot summary)
SCHEMA_VERSION_PROPERTY = "leanops.schema_version"
#: table property: the schema versions a rebuild replaced (``pipeline.evolve``)
SUPERSEDED_VERSIONS_PROPERTY = "leanops.schema.superseded-versions"
#: ``leanops.key-index.<column>``: the Curated key index pointer (``iceberg.key_index``)
INDEX_PROPERTY_PREFIX = "leanops.key-index."
#: the keys of a table's own state: committed in the snapshot summary of the data they describe
#: and, in the same commit, as table properties, which no other writer's maintenance removes
#: (``iceberg.state``)
STATE_PROPERTY_PREFIXES = (
    WATERMARK_PROPERTY_PREFIX, TOTAL_PROPERTY_PREFIX, INDEX_PROPERTY_PREFIX,
    SCHEMA_VERSION_PROPERTY,
)
#: table property: the snapshot the table's last state commit created (``iceberg.state``)
STATE_SNAPSHOT_PROPERTY = "leanops.state.snapshot-id"
#: the tag a consumer keeps on its upstream table at the oldest snapshot it has read up to,
#: so no snapshot expiry removes it (``iceberg.history``); ``<prefix><consumer zone>``
CONSUMER_TAG_PREFIX = "leanops-consumer-"
#: ``history.expire.max-snapshot-age-ms`` set on the project's tables where the table has none:
#: what Spark's ``expire_snapshots`` and the Glue retention optimizer default to reading
EXPIRE_MAX_SNAPSHOT_AGE_PROPERTY = "history.expire.max-snapshot-age-ms"
DEFAULT_MAX_SNAPSHOT_AGE_MS = 5 * 24 * 3600 * 1000  # Iceberg's own default, stated
#: ``leanops.lease.<topic>``: a run lease in ``<zone>._run_leases`` (``iceberg.lease``)
LEASE_PROPERTY_PREFIX = "leanops.lease."
#: on a live table's swap snapshot: which rebuild produced it (the resume marker)
REBUILD_ID_PROPERTY = "leanops.rebuild.id"
#: table property of a replay table: the live upstream snapshot whose files it replays
REPLAY_OF_PROPERTY = "leanops.rebuild.replay-of"
REPLACED_SNAPSHOT_PROPERTY = "leanops.rebuild.replaced_snapshot_id"
REPLACED_METADATA_PROPERTY = "leanops.rebuild.replaced_metadata"
REPLACED_VERSION_PROPERTY = "leanops.rebuild.replaced_schema_version"


class Count:
    """The counts a layer commit records about itself (``leanops.<count>``, ``count_key``);
    some also as running totals (``leanops.total.<count>``, ``total_key``)."""

    ROWS_READ = "rows_read"
    PARSE_ERRORS = "parse_errors"
    DUPLICATES = "duplicates"
    INSERTED = "inserted"
    UPDATED = "updated"
    SUPERSEDED = "superseded"
    CDE_ERROR_ROWS = "cde_error_rows"
    QUARANTINED = "quarantined"


def watermark_key(name: str) -> str:
    """The snapshot-summary key of watermark ``name``."""
    return f"{WATERMARK_PROPERTY_PREFIX}{name}"


def count_key(count: str) -> str:
    """The snapshot-summary key of a commit's own ``count``."""
    return f"{SUMMARY_PREFIX}{count}"


def total_key(count: str) -> str:
    """The snapshot-summary key of the running total of ``count``."""
    return f"{TOTAL_PROPERTY_PREFIX}{count}"


def count_properties(counts: Mapping[str, int]) -> dict[str, str]:
    """``leanops.<count>`` summary properties of a commit's own counts."""
    return {count_key(count): str(value) for count, value in counts.items()}


def parse_errors_watermark_name(topic: str) -> str:
    """Watermark of the Standardized run's parse errors of ``topic`` (on RAW)."""
    return f"parse_errors.{topic}.{RAW_WATERMARK}"


def errors_watermark_name(topic: str) -> str:
    """Watermark of the Curated run's errors of ``topic`` (on Standardized)."""
    return f"errors.{topic}.{STD_WATERMARK}"


def errors_rebuild_property(topic: str) -> str:
    """Summary key marking the Curated errors a rebuild of ``topic`` committed."""
    return f"leanops.rebuild.errors.{topic}"


def parse_errors_rebuild_property(topic: str) -> str:
    """Summary key marking the parse errors a rebuild of ``topic`` committed."""
    return f"leanops.rebuild.parse_errors.{topic}"


# --- partition specs -----------------------------------------------------------------------
#: Curated's ``bucket(N, idempotency_key)``
KEY_BUCKETS = 16


def _spec(schema: Schema, *fields: tuple[str, object, str]) -> PartitionSpec:
    """A spec of ``(source column, transform, name)`` fields, ids numbered as pyiceberg does
    (``PARTITION_FIELD_ID_START`` on)."""
    from pyiceberg.partitioning import PARTITION_FIELD_ID_START, PartitionField, PartitionSpec

    return PartitionSpec(*(
        PartitionField(
            source_id=schema.find_field(column).field_id,
            field_id=PARTITION_FIELD_ID_START + position, transform=transform, name=name,
        )
        for position, (column, transform, name) in enumerate(fields)
    ))


def publish_day_spec(schema: Schema) -> PartitionSpec:
    """``day(publish_time)`` (RAW, Standardized, quarantine); unpartitioned without it."""
    from pyiceberg.partitioning import PartitionSpec
    from pyiceberg.transforms import DayTransform

    if PUBLISH_TIME not in schema.column_names:
        return PartitionSpec()
    return _spec(schema, (PUBLISH_TIME, DayTransform(), f"{PUBLISH_TIME}_day"))


def topic_spec(schema: Schema) -> PartitionSpec:
    """``identity(topic_name)``: the tables every topic shares (error tables, drift log)."""
    from pyiceberg.transforms import IdentityTransform

    return _spec(schema, (TOPIC_NAME, IdentityTransform(), TOPIC_NAME))


def curated_partition_spec(
    schema: Schema,
    *,
    time_column: str = PUBLISH_TIME,
    key: str = IDEMPOTENCY_KEY,
    buckets: int = KEY_BUCKETS,
) -> PartitionSpec:
    """``day(publish_time)``, ``bucket(16, idempotency_key)`` for a Curated table schema."""
    from pyiceberg.transforms import BucketTransform, DayTransform

    return _spec(
        schema,
        (time_column, DayTransform(), f"{time_column}_day"),
        (key, BucketTransform(buckets), f"{key}_bucket"),
    )


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


def namespace(zone: str, prefix: str = "") -> str:
    """The Iceberg namespace of ``zone``: the environment's ``prefix`` then the zone."""
    if zone not in ZONES:
        raise ValueError(f"unknown zone {zone!r}; expected one of {ZONES}")
    return f"{prefix}{zone}"


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
