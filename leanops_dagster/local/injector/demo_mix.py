"""The message mix of ``leanops demo``: a little of every scenario on both topics."""

from __future__ import annotations

from leanops_dagster.local.injector.config import InjectorConfig, StreamConfig
from leanops_dagster.local.injector.generators import generate

DEMO_MIX = InjectorConfig(
    name="demo_mix",
    description="happy path with malformed bodies, duplicates, corrections, drift, poison messages"
    " and records the destination rejects",
    seed=7,
    streams=[
        StreamConfig(topic="events", records=600, malformed=12, duplicates=20, corrections=15,
                     drift=60, poison=3, delivery_errors=2),
        StreamConfig(topic="sensor_readings", records=300, malformed=6, duplicates=10,
                     corrections=10, drift=30, poison=2),
    ],
)


def demo_mix(seed: int = 7) -> dict[str, list[str]]:
    """Topic -> bodies in send order (deterministic for ``seed``)."""
    return generate(DEMO_MIX.model_copy(update={"seed": seed}))


def demo_expected() -> dict[str, dict[str, int]]:
    """Topic -> {"sent", "raw", "dlq", "firehose_errors"} the demo mix must produce."""
    return DEMO_MIX.expected()
