"""Injector configuration files (``tests/configs/*.json``), validated with pydantic.

```json
{
  "name": "corrections",
  "description": "what the scenario shows",
  "seed": 42,
  "senders": 1,
  "streams": [
    {"topic": "events", "generator": "events", "records": 200, "corrections": 40}
  ]
}
```

Per stream, every count is exact, so a scenario's expected outcome is known up front
(``StreamConfig.expected``): ``records`` base records, of which ``drift`` carry new nested keys;
plus ``malformed`` bodies that are not JSON, ``duplicates`` redeliveries of earlier bodies
(same ``_metadata.messageId``), ``corrections`` newer versions of earlier records (same
idempotency key, later ``publishTime``, sent before the version they supersede, so they arrive
out of order), ``poison`` messages whose Firehose delivery keeps failing until the DLQ, and
``delivery_errors`` messages Firehose accepts but cannot write (they go to its error output).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from leanops_dagster.constants import validate_topic
from leanops_dagster.settings import REPO_ROOT

CONFIG_DIR = REPO_ROOT / "tests" / "configs"
GENERATORS = ("events", "sensor_readings")


class ConfigError(ValueError):
    """An unknown, unreadable or invalid injector config (message fits one line)."""


class StreamConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str
    generator: Literal["events", "sensor_readings"] | None = Field(
        default=None, description="record shape; default: the topic's name"
    )
    records: int = Field(ge=0, le=10_000_000)
    drift: int = Field(default=0, ge=0, description="base records with new nested keys")
    malformed: int = Field(default=0, ge=0)
    duplicates: int = Field(default=0, ge=0, description="identical bodies sent again")
    corrections: int = Field(default=0, ge=0, description="newer versions sent out of order")
    poison: int = Field(default=0, ge=0, description="bodies the Firehose stand-in rejects")
    delivery_errors: int = Field(
        default=0, ge=0, description="bodies Firehose accepts but cannot write (error output)"
    )
    start: dt.datetime = Field(
        default=dt.datetime(2026, 1, 19, tzinfo=dt.UTC),
        description="publish times are spread over [start, start + span_minutes)",
    )
    span_minutes: float = Field(default=60.0, gt=0)

    @field_validator("topic")
    @classmethod
    def _topic(cls, topic: str) -> str:
        return validate_topic(topic)

    @model_validator(mode="after")
    def _consistent(self) -> StreamConfig:
        if self.generator is None and self.topic not in GENERATORS:
            raise ValueError(f"topic {self.topic!r} needs a generator (one of {GENERATORS})")
        for name in ("drift", "duplicates", "corrections"):
            if getattr(self, name) > self.records:
                raise ValueError(f"{name} ({getattr(self, name)}) exceeds records ({self.records})")
        if self.start.tzinfo is None:
            raise ValueError("start needs a UTC offset")
        return self

    @property
    def kind(self) -> str:
        return self.generator or self.topic

    @property
    def messages(self) -> int:
        return (self.records + self.malformed + self.duplicates + self.corrections + self.poison
                + self.delivery_errors)

    def expected(self) -> dict[str, int]:
        """Exact outcome: poison in the DLQ records, delivery errors in the Firehose error
        output, every other message in RAW (sent = raw + dlq + firehose_errors)."""
        return {
            "sent": self.messages,
            "raw": self.messages - self.poison - self.delivery_errors,
            "dlq": self.poison,
            "firehose_errors": self.delivery_errors,
        }


class InjectorConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    seed: int = 42
    senders: int = Field(default=1, ge=1, le=16, description="parallel sending threads")
    streams: list[StreamConfig] = Field(min_length=1)

    @property
    def messages(self) -> int:
        return sum(s.messages for s in self.streams)

    def expected(self) -> dict[str, dict[str, int]]:
        totals: dict[str, dict[str, int]] = {}
        for stream in self.streams:
            acc = totals.setdefault(
                stream.topic, {"sent": 0, "raw": 0, "dlq": 0, "firehose_errors": 0}
            )
            for key, value in stream.expected().items():
                acc[key] += value
        return totals


def known_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def resolve(ref: str | Path) -> Path:
    """A path, or the name of a file in ``tests/configs`` (``happy_path``)."""
    path = Path(ref)
    if path.is_file():
        return path
    named = CONFIG_DIR / f"{ref}.json"
    if path.name == str(ref) and named.is_file():
        return named
    raise ConfigError(
        f"unknown config {str(ref)!r}: no such file, and not one of {', '.join(known_configs())}"
    )


def load_config(ref: str | Path) -> InjectorConfig:
    """Load and validate a config; every problem is a ``ConfigError`` with a one-line message."""
    path = resolve(ref)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"config {path}: cannot read JSON: {exc}") from None
    try:
        return InjectorConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"config {path}: {problems}") from None
