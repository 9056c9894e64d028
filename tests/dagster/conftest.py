"""Fixtures for the pipeline and Dagster tests: a fresh LEANOPS_HOME, its catalog, RAW rows."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterable

import pyarrow as pa
import pytest

from leanops_dagster.iceberg.catalog import ensure_table, open_catalog
from leanops_dagster.iceberg.tables import RAW_STAGING_PARTITION_SPEC, RAW_STAGING_SCHEMA
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.schemas.registry import SchemaRegistry
from leanops_dagster.settings import REPO_ROOT, get_settings

T0 = dt.datetime(2026, 1, 19, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def settings(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("LEANOPS_HOME", str(home))
    return get_settings(home=home)


@pytest.fixture
def catalog(settings):
    return open_catalog(settings)


@pytest.fixture
def registry(settings):
    return SchemaRegistry.from_settings(settings)


@pytest.fixture
def tmp_schemas(tmp_path):
    """A writable copy of the repository's schema sources."""
    target = tmp_path / "schemas"
    shutil.copytree(REPO_ROOT / "schemas", target)
    return target


def event(
    key: str, *, user: str = "user-000001", verb: str = "clicked", minutes: int = 0,
    extra: dict | None = None, message_id: str | None = None,
) -> dict:
    """A seed-004 `events` payload (as the producer sends it)."""
    body = {
        "event": {"userId": user, "eventType": "click", "verb": verb,
                  "timestamp": (T0 + dt.timedelta(minutes=minutes)).isoformat(),
                  "metadata": {"ipAddress": "10.0.0.1", "deviceId": "d-1",
                               "userAgent": "ua"}},
        "sessionId": "s-1",
        "_metadata": {"idempotencyKeyResource": key,
                      "publishTime": (T0 + dt.timedelta(minutes=minutes)).isoformat()},
    }
    if message_id:
        body["_metadata"]["messageId"] = message_id
    if extra:
        body.update(extra)
    return body


def raw_row(
    message_id: str, payload: dict | str, *, minutes: int = 0, ingested: int = 0,
    topic: str = "events",
) -> dict:
    return {
        "message_id": message_id,
        "topic_name": topic,
        "json_payload": payload if isinstance(payload, str) else json.dumps(payload),
        "publish_time": T0 + dt.timedelta(minutes=minutes),
        "ingestion_ts": T0 + dt.timedelta(minutes=minutes, seconds=ingested + 1),
    }


def append_raw(catalog, rows: Iterable[dict], topic: str = "events") -> int:
    """What the Firehose stand-in does: one RAW append (one snapshot). Returns its id."""
    table = ensure_table(
        catalog, TopicTables(topic).raw, RAW_STAGING_SCHEMA, RAW_STAGING_PARTITION_SPEC
    )
    table.append(pa.Table.from_pylist(list(rows), schema=RAW_STAGING_SCHEMA.as_arrow()))
    return table.current_snapshot().snapshot_id
