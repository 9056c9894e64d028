"""The circuit breaker's decision, as a pure function (no clock, no I/O).

States per topic::

    closed --(error rate > threshold, at least min_samples messages in the window)--> open
    open --(cool-down elapsed)--> half_open      (the probe: the mapping is re-enabled)
    half_open --(probe error rate > threshold, at least probe_min_samples)--> open
    half_open --(probe window elapsed, error rate <= threshold)--> closed

"Error rate" is ``errors / requests`` of the window: by default the per-topic
``MessagesFailed / MessagesReceived`` that sqs_processor publishes.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from enum import StrEnum

from ingestion_lambdas.common.config import BreakerConfig


class Status(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Action(StrEnum):
    NONE = "none"
    DISABLE = "disable"  # update_event_source_mapping(Enabled=False)
    ENABLE = "enable"  # update_event_source_mapping(Enabled=True)


@dataclass(frozen=True)
class BreakerState:
    status: Status = Status.CLOSED
    since: dt.datetime | None = None  # when ``status`` was entered

    def to_json(self) -> str:
        return json.dumps(
            {"status": self.status.value, "since": self.since.isoformat() if self.since else None}
        )

    @classmethod
    def from_json(cls, text: str) -> BreakerState:
        data = json.loads(text)
        since = data.get("since")
        return cls(
            status=Status(data.get("status", Status.CLOSED)),
            since=dt.datetime.fromisoformat(since) if since else None,
        )


@dataclass(frozen=True)
class WindowStats:
    requests: int
    errors: int

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests > 0 else 0.0


@dataclass(frozen=True)
class Decision:
    previous: Status
    state: BreakerState  # the state after this decision (unchanged when no transition)
    action: Action
    reason: str

    @property
    def transition(self) -> bool:
        return self.state.status is not self.previous


def window_start(state: BreakerState, now: dt.datetime, config: BreakerConfig) -> dt.datetime:
    """Start of the metrics window ``decide`` should see: the probe's start when half-open."""
    if state.status is Status.HALF_OPEN and state.since is not None:
        return state.since
    return now - dt.timedelta(seconds=config.window_seconds)


def decide(
    state: BreakerState, window: WindowStats, now: dt.datetime, config: BreakerConfig
) -> Decision:
    """The next breaker state and the action on the event source mapping."""
    rate = window.error_rate
    summary = (
        f"{window.errors}/{window.requests} failed ({rate:.1%}), "
        f"threshold {config.error_rate_threshold:.1%}"
    )

    def stay(reason: str) -> Decision:
        return Decision(state.status, state, Action.NONE, reason)

    def move(status: Status, action: Action, reason: str) -> Decision:
        return Decision(state.status, BreakerState(status, now), action, reason)

    if state.status is Status.CLOSED:
        if window.requests < config.min_samples:
            return stay(f"below min sample size {config.min_samples}: {summary}")
        if rate > config.error_rate_threshold:
            return move(Status.OPEN, Action.DISABLE, f"tripped: {summary}")
        return stay(f"healthy: {summary}")

    elapsed = (now - state.since).total_seconds() if state.since is not None else None
    if state.status is Status.OPEN:
        if elapsed is None or elapsed >= config.cooldown_seconds:
            return move(
                Status.HALF_OPEN, Action.ENABLE,
                f"cool-down of {config.cooldown_seconds}s elapsed: probing",
            )
        return stay("cooling down")

    # half-open: the probe window runs from ``state.since``.
    probe_over = elapsed is None or elapsed >= config.probe_window_seconds
    if rate > config.error_rate_threshold and (
        window.requests >= config.probe_min_samples or probe_over
    ):
        return move(Status.OPEN, Action.DISABLE, f"probe failed: {summary}")
    if probe_over:
        return move(Status.CLOSED, Action.NONE, f"probe healthy: {summary}")
    return stay(f"probing: {summary}")
