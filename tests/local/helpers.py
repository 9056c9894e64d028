"""Readers the local end-to-end tests share."""

from __future__ import annotations

import pyarrow as pa
from pyiceberg.expressions import EqualTo

from leanops_dagster import constants
from leanops_dagster.local.injector.config import InjectorConfig, StreamConfig


def raw_rows(catalog, settings, topic: str) -> pa.Table:
    ident = (settings.raw_namespace, constants.raw_table_name(topic))
    if not catalog.table_exists(ident):
        return pa.table({"message_id": pa.array([], pa.string())})
    return catalog.load_table(ident).scan().to_arrow()


def dlq_rows(catalog, settings, topic: str) -> list[dict]:
    ident = (settings.raw_namespace, constants.DLQ_ERRORS_TABLE)
    if not catalog.table_exists(ident):
        return []
    table = catalog.load_table(ident)
    if table.current_snapshot() is None:
        return []
    return table.scan(row_filter=EqualTo("topic_name", topic)).to_arrow().to_pylist()


def archive_keys(stack, topic: str) -> list[str]:
    pages = stack.s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.settings.archive_bucket_name, Prefix=f"dlq-archive/{topic}/"
    )
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def retarget(config: InjectorConfig, prefix: str) -> InjectorConfig:
    """The same scenario on topics of its own (``<prefix>_<topic>``), generators unchanged."""
    streams = [
        StreamConfig(**{**s.model_dump(), "topic": f"{prefix}_{s.topic}", "generator": s.kind})
        for s in config.streams
    ]
    return config.model_copy(update={"streams": streams})
