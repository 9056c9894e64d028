"""Deterministic, realistic message bodies for the ``events`` and ``sensor_readings`` topics.

The same config and seed always give the same bodies in the same order (no clock, no global
random state). Both shapes carry the envelope the ingestion reads (docs/contracts.md):

``events`` (seed 004)::

    {"event": {"userId", "eventType", "verb", "timestamp",
               "metadata": {"ipAddress", "deviceId", "userAgent"}},
     "sessionId",
     "_metadata": {"idempotencyKeyResource", "messageId", "publishTime"}}

``sensor_readings`` (IoT)::

    {"deviceId", "site", "readingTime", "temperature", "humidity", "battery", "firmware",
     "_metadata": {"idempotencyKeyResource", "messageId", "publishTime"}}

``publishTime`` is ISO-8601 with an offset for ``events`` and epoch milliseconds for
``sensor_readings`` (the contract accepts both). A poison message is a regular record whose
``_metadata.faultInjection`` holds ``POISON_MARKER``: the local Firehose stand-in's default
fault rule rejects it on every attempt (see ``leanops_dagster.local.firehose``); with
``DELIVERY_FAULT_MARKER`` instead, Firehose accepts it and its Iceberg delivery fails, so it
ends in the Firehose error output.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import random
import uuid
from collections.abc import Callable

from leanops_dagster.local.injector.config import InjectorConfig, StreamConfig

# = leanops_dagster.local.firehose.POISON_MARKER / DELIVERY_FAULT_MARKER (tests check equality)
POISON_MARKER = "LEANOPS_FAULT_FIREHOSE_REJECT"
DELIVERY_FAULT_MARKER = "LEANOPS_FAULT_ICEBERG_REJECT"

EVENT_TYPES = (
    ("page_view", "viewed", 40), ("click", "clicked", 25), ("search", "searched", 10),
    ("add_to_cart", "added", 8), ("purchase", "purchased", 3), ("login", "logged_in", 7),
    ("logout", "logged_out", 4), ("share", "shared", 3),
)
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "LeanOpsApp/5.2.1 (Android 14; Samsung SM-S918B)",
)
SITES = ("berlin-dc1", "dublin-plant", "austin-lab", "osaka-warehouse")
FIRMWARE = ("2.4.1", "2.4.3", "2.5.0")
COUNTRIES = (("DE", "Berlin"), ("IE", "Dublin"), ("US", "Austin"), ("JP", "Osaka"))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _stream_rng(seed: int, stream: StreamConfig, index: int, purpose: str) -> random.Random:
    digest = hashlib.sha256(f"{seed}:{index}:{stream.topic}:{purpose}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _iso(ts: dt.datetime) -> str:
    return ts.isoformat(timespec="milliseconds")


def _dumps(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


class EventsGenerator:
    """Clickstream events of a pool of users with sessions (seed 004's envelope)."""

    def __init__(self, rng: random.Random, users: int = 500) -> None:
        self.rng = rng
        self.users = [f"user-{i:06d}" for i in range(users)]
        self.devices = {u: f"dev-{rng.getrandbits(32):08x}" for u in self.users}
        self.agents = {u: rng.choice(USER_AGENTS) for u in self.users}
        self.ips = {u: self._ip() for u in self.users}
        self.sessions: dict[str, str] = {}
        self.weights = [w for _, _, w in EVENT_TYPES]

    def _ip(self) -> str:
        r = self.rng
        return f"{r.choice((31, 52, 81, 93, 145, 176, 185, 203))}.{r.randrange(256)}." \
               f"{r.randrange(256)}.{r.randrange(1, 255)}"

    def record(self, ts: dt.datetime) -> dict:
        r = self.rng
        user = self.users[min(int(r.paretovariate(1.2)) - 1, len(self.users) - 1)] \
            if r.random() < 0.5 else r.choice(self.users)
        event_type, verb, _ = r.choices(EVENT_TYPES, weights=self.weights)[0]
        if event_type == "login" or user not in self.sessions:
            self.sessions[user] = _uuid(r)
        session = self.sessions[user]
        if event_type == "logout":
            self.sessions.pop(user, None)
        publish = ts + dt.timedelta(milliseconds=r.randrange(5, 900))
        return {
            "event": {
                "userId": user,
                "eventType": event_type,
                "verb": verb,
                "timestamp": _iso(ts),
                "metadata": {
                    "ipAddress": self.ips[user],
                    "deviceId": self.devices[user],
                    "userAgent": self.agents[user],
                },
            },
            "sessionId": session,
            "_metadata": {
                "idempotencyKeyResource": f"evt-{_uuid(r)}",
                "messageId": _uuid(r),
                "publishTime": _iso(publish),
            },
        }

    def drift(self, record: dict) -> dict:
        country, city = self.rng.choice(COUNTRIES)
        record["event"]["metadata"]["geo"] = {"country": country, "city": city}
        record["event"]["context"] = {"appVersion": "5.3.0", "experiment": {"id": "exp-checkout"}}
        return record

    def correct(self, record: dict, version: int) -> dict:
        newer = copy.deepcopy(record)
        newer["event"]["verb"] = f"{record['event']['verb']}_corrected_v{version}"
        return newer


class SensorReadingsGenerator:
    """IoT readings: a fleet of sensors with drifting temperature and draining batteries."""

    def __init__(self, rng: random.Random, devices: int = 60) -> None:
        self.rng = rng
        self.devices = [f"sensor-{i:04d}" for i in range(devices)]
        self.site = {d: rng.choice(SITES) for d in self.devices}
        self.firmware = {d: rng.choice(FIRMWARE) for d in self.devices}
        self.temp = {d: rng.gauss(21.0, 3.0) for d in self.devices}
        self.battery = {d: rng.uniform(55.0, 100.0) for d in self.devices}

    def record(self, ts: dt.datetime) -> dict:
        r = self.rng
        device = r.choice(self.devices)
        self.temp[device] += r.gauss(0.0, 0.3)
        self.battery[device] = max(0.0, self.battery[device] - r.uniform(0.0, 0.05))
        publish = ts + dt.timedelta(milliseconds=r.randrange(20, 3000))
        return {
            "deviceId": device,
            "site": self.site[device],
            "readingTime": _iso(ts),
            "temperature": round(self.temp[device], 2),
            "humidity": round(min(100.0, max(0.0, r.gauss(45.0, 8.0))), 1),
            "battery": round(self.battery[device], 1),
            "firmware": self.firmware[device],
            "_metadata": {
                "idempotencyKeyResource": f"{device}:{_iso(ts)}",
                "messageId": _uuid(r),
                "publishTime": int(publish.timestamp() * 1000),
            },
        }

    def drift(self, record: dict) -> dict:
        record["location"] = {"geo": {"lat": round(self.rng.uniform(-60, 60), 5),
                                      "lon": round(self.rng.uniform(-150, 150), 5)}}
        record["diagnostics"] = {"rssiDbm": self.rng.randrange(-95, -40), "uptimeS": 86400}
        return record

    def correct(self, record: dict, version: int) -> dict:
        newer = copy.deepcopy(record)
        newer["temperature"] = round(record["temperature"] + 0.5 * version, 2)
        return newer


_GENERATORS: dict[str, Callable[[random.Random], EventsGenerator | SensorReadingsGenerator]] = {
    "events": EventsGenerator,
    "sensor_readings": SensorReadingsGenerator,
}


def malformed_bodies(rng: random.Random, sample: str, n: int) -> list[str]:
    """Bodies that are not JSON objects a parser accepts (all valid SQS bodies)."""
    cut = max(2, len(sample) // 2)
    variants = (
        lambda i: sample[: cut + i % 7],  # truncated in transit
        lambda i: f"temperature=21.{i % 10};humidity=40;device=sensor-{i:04d}",  # key=value
        lambda i: f"{{'deviceId': 'sensor-{i:04d}', 'temperature': 21.5}}",  # Python repr
        lambda i: f'{{"deviceId": "sensor-{i:04d}", "temperature": 21.5,}}',  # trailing comma
        lambda i: f'{{"a": {i}}}{{"b": {i + 1}}}',  # two objects glued together
        lambda i: f"<reading><device>sensor-{i:04d}</device><t>21.5</t></reading>",  # XML
        lambda i: f"température élevée ✓ 🚀 #{i}",  # free text, non-ASCII
        lambda i: f'{{"event": {{"userId": "user-{i:06d}", "eventType": "click"',  # unclosed
    )
    return [variants[(i + rng.randrange(len(variants))) % len(variants)](i) for i in range(n)]


def stream_bodies(stream: StreamConfig, seed: int) -> list[str]:
    """All bodies of one stream, in send order (deterministic for a given seed)."""
    rng = _stream_rng(seed, stream, 0, "base")
    gen = _GENERATORS[stream.kind](rng)
    span = dt.timedelta(minutes=stream.span_minutes)
    step = span / max(stream.records, 1)
    base = [gen.record(stream.start + step * i) for i in range(stream.records)]
    if stream.drift:
        for i in sorted(_stream_rng(seed, stream, 1, "drift").sample(range(stream.records),
                                                                      stream.drift)):
            base[i] = gen.drift(base[i])

    bodies = [_dumps(r) for r in base]
    order: list[str] = list(bodies)

    if stream.corrections:
        pick = _stream_rng(seed, stream, 2, "corrections")
        for n, i in enumerate(sorted(pick.sample(range(stream.records), stream.corrections))):
            newer = gen.correct(base[i], version=2)
            meta = newer["_metadata"]
            meta["messageId"] = _uuid(pick)
            later = _shift(meta["publishTime"], dt.timedelta(minutes=5 + n % 55))
            meta["publishTime"] = later
            # The newer version is sent first; the original arrives after it (out of order).
            position = order.index(bodies[i])
            order.insert(position, _dumps(newer))

    if stream.duplicates:
        pick = _stream_rng(seed, stream, 3, "duplicates")
        for i in sorted(pick.sample(range(stream.records), stream.duplicates)):
            position = order.index(bodies[i])
            order.insert(pick.randrange(position + 1, len(order) + 1), bodies[i])

    extras: list[str] = []
    if stream.malformed:
        sample = bodies[0] if bodies else _dumps(gen.record(stream.start))
        extras += malformed_bodies(_stream_rng(seed, stream, 4, "malformed"), sample,
                                   stream.malformed)
    if stream.poison:
        pick = _stream_rng(seed, stream, 5, "poison")
        for i in range(stream.poison):
            record = gen.record(stream.start + step * (i % max(stream.records, 1)))
            record["_metadata"]["messageId"] = _uuid(pick)
            record["_metadata"]["faultInjection"] = POISON_MARKER
            extras.append(_dumps(record))
    if stream.delivery_errors:
        pick = _stream_rng(seed, stream, 7, "delivery_errors")
        for i in range(stream.delivery_errors):
            record = gen.record(stream.start + step * (i % max(stream.records, 1)))
            record["_metadata"]["messageId"] = _uuid(pick)
            record["_metadata"]["faultInjection"] = DELIVERY_FAULT_MARKER
            extras.append(_dumps(record))
    if extras:
        place = _stream_rng(seed, stream, 6, "placement")
        for body in extras:
            order.insert(place.randrange(len(order) + 1), body)
    return order


def _shift(publish_time: str | int, delta: dt.timedelta) -> str | int:
    if isinstance(publish_time, int):
        return publish_time + int(delta.total_seconds() * 1000)
    return _iso(dt.datetime.fromisoformat(publish_time) + delta)


def generate(config: InjectorConfig) -> dict[str, list[str]]:
    """Topic -> bodies in send order, for every stream of ``config`` (streams of the same
    topic are concatenated in config order)."""
    out: dict[str, list[str]] = {}
    for index, stream in enumerate(config.streams):
        out.setdefault(stream.topic, []).extend(stream_bodies(stream, config.seed + index))
    return out
