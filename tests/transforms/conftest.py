"""Small RAW / Standardized fixtures for the pure transforms."""

from __future__ import annotations

import datetime as dt
import os

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, settings

T0 = dt.datetime(2026, 1, 19, 10, 0, tzinfo=dt.UTC)

#: the property tests' budget: bounded so the suite stays fast; no example database (no
#: ``.hypothesis`` directory in the checkout). A longer local run: ``LEANOPS_HYPOTHESIS_PROFILE=
#: transforms-long uv run pytest tests/transforms -k property --timeout=0``
settings.register_profile(
    "transforms", deadline=None, max_examples=200, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("transforms-long", settings.get_profile("transforms"),
                          max_examples=5000)
BOUNDED = settings(settings.get_profile(os.environ.get("LEANOPS_HYPOTHESIS_PROFILE",
                                                     "transforms")))
TS = pa.timestamp("us", tz="UTC")


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def raw_rows(payloads, *, ids=None, snapshot=7, ingested=None, topic="events") -> pa.Table:
    n = len(payloads)
    return pa.table(
        {
            "message_id": ids or [f"m{i}" for i in range(n)],
            "topic_name": [topic] * n,
            "json_payload": pa.array(payloads, pa.string()),
            "publish_time": pa.array([at(i) for i in range(n)], TS),
            "ingestion_ts": pa.array(ingested or [at(100 + i) for i in range(n)], TS),
            "raw_snapshot_id": pa.array([snapshot] * n, pa.int64()),
        }
    )


def std_rows(columns: dict[str, list], *, n: int | None = None) -> pa.Table:
    """Standardized rows: metadata defaults + the given STRING columns."""
    n = n or len(next(iter(columns.values())))
    base = {
        "message_id": [f"m{i}" for i in range(n)],
        "idempotency_key": [f"k{i}" for i in range(n)],
        "topic_name": ["events"] * n,
        "publish_time": pa.array([at(i) for i in range(n)], TS),
        "ingestion_ts": pa.array([at(100 + i) for i in range(n)], TS),
        "standardized_snapshot_id": pa.array([3] * n, pa.int64()),
    }
    for name, values in columns.items():
        base[name] = pa.array(values, TS) if name in ("publish_time", "ingestion_ts") \
            else pa.array(values, pa.string() if name != "standardized_snapshot_id" else pa.int64())
    return pa.table(base)


@pytest.fixture
def meta():
    def envelope(key="k1", **extra):
        return {"_metadata": {"idempotencyKeyResource": key, "messageId": "x",
                              "publishTime": "2026-01-19T10:00:00Z"}, **extra}
    return envelope
