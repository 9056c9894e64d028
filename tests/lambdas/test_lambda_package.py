"""The Lambda package deploys alone: its constants match the project's, its imports stay light."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ingestion_lambdas.common import constants as lam
from ingestion_lambdas.common.config import Config, ConfigError
from leanops_dagster import constants as project


@pytest.mark.parametrize(
    "name",
    [
        "RAW_TABLE_SUFFIX",
        "DLQ_ERRORS_TABLE",
        "SQS_MAX_RECEIVE_COUNT",
        "FIREHOSE_MAX_BATCH_RECORDS",
        "FIREHOSE_MAX_BATCH_BYTES",
        "FIREHOSE_MAX_RECORD_BYTES",
        "UNKNOWN_TOPIC",
    ],
)
def test_duplicated_constants_equal_the_projects(name):
    assert getattr(lam, name) == getattr(project, name)


def test_topic_pattern_equals_the_projects():
    assert lam.TOPIC_PATTERN.pattern == project.TOPIC_PATTERN.pattern


def test_handlers_import_without_dagster_pyiceberg_or_settings():
    code = (
        "import sys\n"
        "import ingestion_lambdas.sqs_processor.handler\n"
        "import ingestion_lambdas.dlq_processor.handler\n"
        "import ingestion_lambdas.circuit_breaker.handler\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'leanops_dagster', 'pyiceberg', 'pydantic_settings', 'dagster', 'pyarrow'})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_config_from_env_reads_every_setting():
    env = {
        "FIREHOSE_STREAM_NAME": "s",
        "DLQ_URL": "http://q",
        "ARCHIVE_BUCKET": "b",
        "ARCHIVE_PREFIX": "/archive/",
        "QUEUE_NAME_PREFIX": "lean-ops-dev-",
        "QUEUE_NAME_SUFFIX": "-q",
        "FIREHOSE_MAX_ATTEMPTS": "7",
        "FIREHOSE_RETRY_BASE_DELAY_S": "0",
        "FIREHOSE_RETRY_MAX_DELAY_S": "2.5",
        "METRICS_NAMESPACE": "NS",
        "CB_MAPPINGS": '{"events": "uuid-1"}',
        "CB_STATE_PARAMETER_PREFIX": "/p/",
        "CB_ERROR_RATE_THRESHOLD": "0.25",
        "CB_MIN_SAMPLES": "3",
        "CB_WINDOW_SECONDS": "60",
        "CB_COOLDOWN_SECONDS": "120",
        "CB_PROBE_WINDOW_SECONDS": "30",
        "CB_PROBE_MIN_SAMPLES": "2",
    }
    cfg = Config.from_env(env)
    assert cfg.archive_prefix == "archive"
    assert cfg.queue_name_suffix == "-q"
    assert cfg.firehose_max_attempts == 7
    assert cfg.firehose_retry_max_delay_s == 2.5
    assert dict(cfg.breaker_mappings) == {"events": "uuid-1"}
    assert cfg.breaker.error_rate_threshold == 0.25
    assert cfg.breaker.min_samples == 3
    assert cfg.breaker.probe_min_samples == 2
    assert Config.from_env({}) == Config()


@pytest.mark.parametrize(
    "env",
    [
        {"FIREHOSE_MAX_ATTEMPTS": "many"},
        {"FIREHOSE_MAX_ATTEMPTS": "0"},
        {"CB_MAPPINGS": "not json"},
        {"CB_MAPPINGS": '{"Bad-Topic": "u"}'},
        {"CB_MAPPINGS": '["u"]'},
        {"CB_ERROR_RATE_THRESHOLD": "1.5"},
    ],
)
def test_config_rejects_malformed_values(env):
    with pytest.raises(ConfigError):
        Config.from_env(env)


def test_require_names_the_missing_variable():
    with pytest.raises(ConfigError, match="DLQ_URL"):
        Config().require("dlq_url")
