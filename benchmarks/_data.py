"""Seeded, vectorised synthetic data for the benchmarks: Curated ``events`` tables and increments.

The shape follows the ``events`` topic (seed 004, ``leanops_dagster/local/injector``):
flattened event columns plus the metadata columns. Row ``i`` of a history is a pure function of
``(seed, i)`` (splitmix64 hashing, no global random state), so an increment can name stored keys
and their ``publish_time`` without reading the table, and a cached table can be rebuilt
identically.

A ``History`` is ``rows`` events at ``rows_per_day`` per day, ending the day before
``end_day``: a bigger table is *more history*, not denser days. An increment is what arrives
after that history: mostly new keys on the following days, plus corrections of stored keys.
How old the corrected records are decides how many files a copy-on-write MERGE must rewrite;
the default (exponential, mean 2 days) models corrections that follow the original within
hours or days, with a thin tail reaching weeks back. ``late_fraction`` of the corrections carry
a ``publish_time`` older than the stored version (an older correction arriving late): the
MERGE must keep the stored row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.schema import Schema
from pyiceberg.types import (
    NestedField,
    StringType,
    TimestamptzType,
)

from leanops_dagster.local.injector.generators import EVENT_TYPES as INJECTOR_EVENT_TYPES
from leanops_dagster.local.injector.generators import USER_AGENTS as INJECTOR_USER_AGENTS

US_PER_DAY = 86_400_000_000
EPOCH = dt.date(1970, 1, 1)

CURATED_EVENTS_SCHEMA = Schema(  # the columns validate_and_cast makes of schemas/events
    NestedField(1, "message_id", StringType(), required=False),
    NestedField(2, "idempotency_key", StringType(), required=True),
    NestedField(3, "topic_name", StringType(), required=False),
    NestedField(4, "publish_time", TimestamptzType(), required=False),
    NestedField(5, "ingestion_ts", TimestamptzType(), required=False),
    NestedField(6, "event_timestamp", TimestamptzType(), required=False),
    NestedField(7, "user_id", StringType(), required=False),
    NestedField(8, "event_type", StringType(), required=False),
    NestedField(9, "verb", StringType(), required=False),
    NestedField(10, "session_id", StringType(), required=False),
    NestedField(11, "ip_address", StringType(), required=False),  # PII: HMAC-SHA256 hex
    NestedField(12, "device_id", StringType(), required=False),
    NestedField(13, "user_agent", StringType(), required=False),
)

# the injector's event mix and user agents, as arrays for vectorised generation
EVENT_TYPES = np.array([name for name, _, _ in INJECTOR_EVENT_TYPES])
VERBS = np.array([verb for _, verb, _ in INJECTOR_EVENT_TYPES])
EVENT_WEIGHTS = np.array([weight for _, _, weight in INJECTOR_EVENT_TYPES], dtype=np.float64)
USER_AGENTS = np.array(INJECTOR_USER_AGENTS)
USERS = 50_000

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix(index: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 of ``index`` in stream ``salt``: a deterministic 64-bit hash per row."""
    with np.errstate(over="ignore"):
        z = index.astype(np.uint64) + np.uint64(salt % 2**63) * _GOLDEN + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _uniform(index: np.ndarray, salt: int) -> np.ndarray:
    return (mix(index, salt) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def hex_strings(words: list[np.ndarray], prefix: str = "", uuid_dashes: bool = False) -> pa.Array:
    """Strings of the hex digits of ``words`` (uint64 each), built without a Python loop."""
    n = len(words[0])
    raw = np.stack([w.astype(">u8").view(np.uint8).reshape(n, 8) for w in words], axis=1)
    raw = raw.reshape(n, -1)
    chars = np.empty((n, raw.shape[1] * 2), dtype=np.uint8)
    chars[:, 0::2] = _HEX[raw >> 4]
    chars[:, 1::2] = _HEX[raw & 15]
    if uuid_dashes:
        chars = np.insert(chars, [8, 12, 16, 20], ord("-"), axis=1)
    if prefix:
        head = np.frombuffer(prefix.encode(), dtype=np.uint8)
        chars = np.concatenate([np.broadcast_to(head, (n, len(head))), chars], axis=1)
    width = chars.shape[1]
    offsets = np.arange(n + 1, dtype=np.int32) * width
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(chars).ravel())
    )


def idempotency_keys(index: np.ndarray, stream: int) -> pa.Array:
    return hex_strings([mix(index, 10_000 + stream), mix(index, 20_000 + stream)], "evt-", True)


@dataclass(frozen=True)
class History:
    """``rows`` stored events, ``rows_per_day`` a day, on the days before ``end_day``."""

    rows: int
    rows_per_day: int = 100_000
    end_day: dt.date = dt.date(2026, 1, 1)
    seed: int = 7

    @property
    def days(self) -> int:
        return -(-self.rows // self.rows_per_day)

    @property
    def start_us(self) -> int:
        return ((self.end_day - EPOCH).days - self.days) * US_PER_DAY

    @property
    def end_us(self) -> int:
        return (self.end_day - EPOCH).days * US_PER_DAY

    def publish_us(self, index: np.ndarray) -> np.ndarray:
        day = index // self.rows_per_day
        offset = (_uniform(index, self.seed * 31 + 1) * US_PER_DAY).astype(np.int64)
        return self.start_us + day.astype(np.int64) * US_PER_DAY + offset

    def keys(self, index: np.ndarray) -> pa.Array:
        return idempotency_keys(index, self.seed)

    def chunk(self, start: int, stop: int) -> pa.Table:
        """Stored rows ``start..stop-1`` (each key's one and only stored version)."""
        index = np.arange(start, min(stop, self.rows), dtype=np.int64)
        return events(index, self.keys(index), self.publish_us(index), stream=self.seed)


def events(index: np.ndarray, keys: pa.Array, publish_us: np.ndarray, stream: int) -> pa.Table:
    """Curated ``events`` rows with the given keys and publish times (other columns hashed)."""
    salt = stream * 1_000
    n = len(index)
    user = (mix(index, salt + 1) % np.uint64(USERS)).astype(np.int64)
    cumulative = np.cumsum(EVENT_WEIGHTS) / EVENT_WEIGHTS.sum()
    kind = np.searchsorted(cumulative, _uniform(index, salt + 2), side="right")
    kind = np.minimum(kind, len(EVENT_TYPES) - 1)
    lag_us = (_uniform(index, salt + 3) * 5_000_000).astype(np.int64)
    early_us = (_uniform(index, salt + 4) * 900_000).astype(np.int64)
    users = np.arange(USERS, dtype=np.int64)
    user_names = pa.array(np.char.add("user-", np.char.zfill(users.astype(str), 6)))
    devices = hex_strings([mix(users, 77)], "dev-")
    ip_hashes = hex_strings([mix(users, 78 + k) for k in range(4)])  # HMAC-SHA256 hex
    agents = pa.array(USER_AGENTS)
    user_idx = pa.array(user)
    ts = pa.timestamp("us", tz="UTC")
    return pa.table({
        "message_id": hex_strings([mix(index, salt + 5), mix(index, salt + 6)], uuid_dashes=True),
        "idempotency_key": keys,
        "topic_name": pa.array(np.full(n, "events")),
        "publish_time": pa.array(publish_us, pa.int64()).cast(ts),
        "ingestion_ts": pa.array(publish_us + lag_us, pa.int64()).cast(ts),
        "event_timestamp": pa.array(publish_us - early_us, pa.int64()).cast(ts),
        "user_id": user_names.take(user_idx),
        "event_type": pa.array(EVENT_TYPES[kind]),
        "verb": pa.array(VERBS[kind]),
        "session_id": hex_strings([mix(user.astype(np.uint64) * np.uint64(1_000_003)
                                       + (publish_us // 3_600_000_000).astype(np.uint64),
                                       salt + 7), mix(index, salt + 8)], uuid_dashes=True),
        "ip_address": ip_hashes.take(user_idx),
        "device_id": devices.take(user_idx),
        "user_agent": agents.take(pa.array(user % len(USER_AGENTS))),
    })


@dataclass(frozen=True)
class IncrementSpec:
    rows: int
    update_fraction: float = 0.10
    late_fraction: float = 0.10
    mean_age_days: float = 2.0
    seed: int = 1


@dataclass(frozen=True)
class Increment:
    rows: pa.Table
    new_keys: int
    newer_versions: int
    late_versions: int


def make_increment(history: History, spec: IncrementSpec) -> Increment:
    """Rows arriving after ``history``: new keys on the following days plus corrections.

    Unique per key (the LIFO dedup already ran). Corrections pick stored rows by age
    (exponential, ``mean_age_days``); ``late_fraction`` of them are older than the stored
    version (stale for the MERGE), the rest are newer versions stamped in the increment's time.
    """
    rng = np.random.default_rng(spec.seed * 7919 + history.seed)
    stream = 1_000 + spec.seed
    n_updates = min(round(spec.rows * spec.update_fraction), history.rows)
    n_new = spec.rows - n_updates

    # Corrections: stored rows by age, unique.
    mean_rows = max(1.0, spec.mean_age_days * history.rows_per_day)
    targets = np.empty(0, dtype=np.int64)
    while len(targets) < n_updates:
        ages = rng.exponential(mean_rows, size=2 * n_updates).astype(np.int64)
        picked = history.rows - 1 - np.clip(ages, 0, history.rows - 1)
        targets = np.unique(np.concatenate([targets, picked]))
        if len(targets) >= history.rows:
            break
    targets = rng.permutation(targets)[:n_updates]
    n_late = round(len(targets) * spec.late_fraction)
    stored_us = history.publish_us(targets)
    window_days = max(1, -(-n_new // history.rows_per_day))
    newer_us = history.end_us + (rng.random(len(targets)) * window_days * US_PER_DAY).astype(
        np.int64
    )
    older_us = stored_us - rng.integers(1_000_000, 3_600_000_000, size=len(targets))
    update_us = np.where(np.arange(len(targets)) < n_late, older_us, newer_us)
    corrections = events(
        np.arange(len(targets), dtype=np.int64) + (1 << 40), history.keys(targets), update_us,
        stream=stream,
    )

    # New keys on the days after the history, at the same daily volume.
    index = np.arange(n_new, dtype=np.int64)
    new_us = history.end_us + (index // history.rows_per_day) * US_PER_DAY + (
        _uniform(index, stream + 5) * US_PER_DAY
    ).astype(np.int64)
    fresh = events(index, idempotency_keys(index, stream), new_us, stream=stream)

    rows = pa.concat_tables([fresh, corrections])
    rows = rows.take(pa.array(rng.permutation(rows.num_rows)))
    return Increment(rows, n_new, len(targets) - n_late, n_late)


def raw_from_curated(
    rows: pa.Table, *, duplicates: int = 0, seed: int = 3, ip_addresses: bool = True
) -> pa.Table:
    """RAW ``events_staging`` rows whose JSON payload flattens back to ``rows``.

    ``duplicates`` messages are delivered twice (same message id, two seconds later: network
    duplicates FIFO dedup must drop). Payloads use the envelope of docs/contracts.md.
    """
    rng = np.random.default_rng(seed)
    iso = _iso_strings
    ip = rows.column("ip_address")
    if ip_addresses:  # the unmasked IPv4 (from the user number) that masking will hash
        digits = pc.utf8_slice_codeunits(rows.column("user_id"), 5, 11)
        ip = pc.binary_join_element_wise(
            "10.", pc.utf8_slice_codeunits(digits, 0, 2), ".",
            pc.utf8_slice_codeunits(digits, 2, 4), ".", pc.utf8_slice_codeunits(digits, 4, 6), "",
        )
    q = '"'
    parts = [
        '{"event":{"userId":"', rows.column("user_id"),
        '","eventType":"', rows.column("event_type"),
        '","verb":"', rows.column("verb"),
        '","timestamp":"', iso(rows.column("event_timestamp")),
        '","metadata":{"ipAddress":"', ip,
        '","deviceId":"', rows.column("device_id"),
        '","userAgent":"', rows.column("user_agent"),
        '"}},"sessionId":"', rows.column("session_id"),
        '","_metadata":{"idempotencyKeyResource":"', rows.column("idempotency_key"),
        '","messageId":"', rows.column("message_id"),
        '","publishTime":"', iso(rows.column("publish_time")), q, "}}",
    ]
    payload = pc.binary_join_element_wise(*parts, "")
    raw = pa.table({
        "message_id": rows.column("message_id"),
        "topic_name": rows.column("topic_name"),
        "json_payload": payload,
        "publish_time": rows.column("publish_time"),
        "ingestion_ts": rows.column("ingestion_ts"),
    })
    if duplicates:
        dups = raw.take(pa.array(rng.choice(raw.num_rows, duplicates, replace=False)))
        later = pc.add(dups.column("ingestion_ts"), pa.scalar(2_000_000, pa.duration("us")))
        dups = dups.set_column(4, "ingestion_ts", later)
        raw = pa.concat_tables([raw, dups])
    return raw


def _iso_strings(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """``2026-01-19T10:00:00.123456+00:00`` strings of a UTC timestamp column."""
    return pc.strftime(column, format="%Y-%m-%dT%H:%M:%S+00:00")  # %S carries the micros
