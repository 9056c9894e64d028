"""The Lambdas' configuration: one frozen dataclass, read from environment variables here only.

| variable | used by | meaning (default) |
| --- | --- | --- |
| `FIREHOSE_STREAM_NAME` | sqs, dlq | Firehose stream every RAW / dlq_errors record is put to |
| `DLQ_URL` | sqs | centralized DLQ; oversized records and invalid queue names go there |
| `ARCHIVE_BUCKET` | dlq | S3 bucket of the DLQ archive |
| `ARCHIVE_PREFIX` | dlq | key prefix in that bucket (`dlq-archive`) |
| `QUEUE_NAME_PREFIX` | sqs, dlq | queue name before the topic, e.g. `lean-ops-dev-` (empty) |
| `QUEUE_NAME_SUFFIX` | sqs, dlq | queue name after the topic (`-queue`) |
| `FIREHOSE_MAX_ATTEMPTS` | sqs, dlq | put attempts per record within one invocation (4) |
| `FIREHOSE_RETRY_BASE_DELAY_S` | sqs, dlq | first backoff delay, doubled per retry (0.05) |
| `FIREHOSE_RETRY_MAX_DELAY_S` | sqs, dlq | cap of one backoff delay (1.0) |
| `METRICS_NAMESPACE` | sqs, breaker | namespace of the per-topic metrics (`LeanOps/Ingestion`) |
| `CB_MAPPINGS` | breaker | JSON object topic -> event source mapping UUID (`{}`) |
| `CB_STATE_PARAMETER_PREFIX` | breaker | SSM prefix of the state (`/lean-ops/circuit-breaker/`) |
| `CB_ERROR_RATE_THRESHOLD` | breaker | open when failed / received exceeds this (0.5) |
| `CB_MIN_SAMPLES` | breaker | messages needed in the window before the breaker may open (20) |
| `CB_WINDOW_SECONDS` | breaker | evaluation window while closed (300) |
| `CB_COOLDOWN_SECONDS` | breaker | time open before the half-open probe (600) |
| `CB_PROBE_WINDOW_SECONDS` | breaker | length of the half-open probe (300) |
| `CB_PROBE_MIN_SAMPLES` | breaker | messages that let the probe re-open early (5) |

The Firehose routing (topic -> ``<raw db>.<topic>_staging``) lives in the stream's JQ
metadata extraction, so no RAW namespace is needed here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from ingestion_lambdas.common.constants import TOPIC_PATTERN


class ConfigError(ValueError):
    """A missing or malformed environment variable."""


@dataclass(frozen=True)
class BreakerConfig:
    """Thresholds of the circuit breaker (see ``circuit_breaker.breaker.decide``)."""

    error_rate_threshold: float = 0.5
    min_samples: int = 20
    window_seconds: int = 300
    cooldown_seconds: int = 600
    probe_window_seconds: int = 300
    probe_min_samples: int = 5


@dataclass(frozen=True)
class Config:
    firehose_stream_name: str = ""
    dlq_url: str = ""
    archive_bucket: str = ""
    archive_prefix: str = "dlq-archive"
    queue_name_prefix: str = ""
    queue_name_suffix: str = "-queue"
    firehose_max_attempts: int = 4
    firehose_retry_base_delay_s: float = 0.05
    firehose_retry_max_delay_s: float = 1.0
    metrics_namespace: str = "LeanOps/Ingestion"
    breaker_mappings: Mapping[str, str] = field(default_factory=dict)
    breaker_state_parameter_prefix: str = "/lean-ops/circuit-breaker/"
    breaker: BreakerConfig = field(default_factory=BreakerConfig)

    def __post_init__(self) -> None:
        if self.firehose_max_attempts < 1:
            raise ConfigError("FIREHOSE_MAX_ATTEMPTS must be >= 1")
        if self.firehose_retry_base_delay_s < 0 or self.firehose_retry_max_delay_s < 0:
            raise ConfigError("retry delays must be >= 0")
        if not 0 <= self.breaker.error_rate_threshold <= 1:
            raise ConfigError("CB_ERROR_RATE_THRESHOLD must be within [0, 1]")
        for topic in self.breaker_mappings:
            if not TOPIC_PATTERN.fullmatch(topic):
                raise ConfigError(f"CB_MAPPINGS: invalid topic name {topic!r}")

    def require(self, name: str) -> str:
        """The value of a string setting a handler cannot run without; a clear error if unset."""
        value = getattr(self, name)
        if not value:
            raise ConfigError(f"{name.upper()} is not set")
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ
        defaults = cls()
        breaker_defaults = BreakerConfig()

        def text(key: str, default: str) -> str:
            return env.get(key, default)

        def number(key: str, default, kind):
            raw = env.get(key)
            if raw is None or raw == "":
                return default
            try:
                return kind(raw)
            except ValueError:
                raise ConfigError(f"{key}={raw!r} is not a valid {kind.__name__}") from None

        raw_mappings = env.get("CB_MAPPINGS") or "{}"
        try:
            mappings = json.loads(raw_mappings)
        except ValueError:
            raise ConfigError("CB_MAPPINGS is not valid JSON") from None
        if not isinstance(mappings, dict) or not all(
            isinstance(v, str) and v for v in mappings.values()
        ):
            raise ConfigError("CB_MAPPINGS must be a JSON object of topic -> mapping UUID")

        return cls(
            firehose_stream_name=text("FIREHOSE_STREAM_NAME", defaults.firehose_stream_name),
            dlq_url=text("DLQ_URL", defaults.dlq_url),
            archive_bucket=text("ARCHIVE_BUCKET", defaults.archive_bucket),
            archive_prefix=text("ARCHIVE_PREFIX", defaults.archive_prefix).strip("/"),
            queue_name_prefix=text("QUEUE_NAME_PREFIX", defaults.queue_name_prefix),
            queue_name_suffix=text("QUEUE_NAME_SUFFIX", defaults.queue_name_suffix),
            firehose_max_attempts=number(
                "FIREHOSE_MAX_ATTEMPTS", defaults.firehose_max_attempts, int
            ),
            firehose_retry_base_delay_s=number(
                "FIREHOSE_RETRY_BASE_DELAY_S", defaults.firehose_retry_base_delay_s, float
            ),
            firehose_retry_max_delay_s=number(
                "FIREHOSE_RETRY_MAX_DELAY_S", defaults.firehose_retry_max_delay_s, float
            ),
            metrics_namespace=text("METRICS_NAMESPACE", defaults.metrics_namespace),
            breaker_mappings=dict(mappings),
            breaker_state_parameter_prefix=text(
                "CB_STATE_PARAMETER_PREFIX", defaults.breaker_state_parameter_prefix
            ),
            breaker=BreakerConfig(
                error_rate_threshold=number(
                    "CB_ERROR_RATE_THRESHOLD", breaker_defaults.error_rate_threshold, float
                ),
                min_samples=number("CB_MIN_SAMPLES", breaker_defaults.min_samples, int),
                window_seconds=number("CB_WINDOW_SECONDS", breaker_defaults.window_seconds, int),
                cooldown_seconds=number(
                    "CB_COOLDOWN_SECONDS", breaker_defaults.cooldown_seconds, int
                ),
                probe_window_seconds=number(
                    "CB_PROBE_WINDOW_SECONDS", breaker_defaults.probe_window_seconds, int
                ),
                probe_min_samples=number(
                    "CB_PROBE_MIN_SAMPLES", breaker_defaults.probe_min_samples, int
                ),
            ),
        )


@cache
def get_config() -> Config:
    """The process-wide configuration, read from the environment on first use."""
    return Config.from_env()
