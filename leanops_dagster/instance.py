"""The local Dagster instance under LEANOPS_HOME/dagster (SQLite storage, queued runs).

Runs queue per topic partition: at most one run per topic at a time (both layers of a topic
run in one run), so a second trigger waits and then finds nothing new (watermarks).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from leanops_dagster.settings import Settings

DAGSTER_YAML = """\
# Written by leanops: local Dagster instance for the embedded defaults.
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 2
    tag_concurrency_limits:
      - key: "dagster/partition"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
# A failed run is retried (it resumes from the watermarks, so a retry never double-counts).
run_retries:
  enabled: true
  max_retries: 2
telemetry:
  enabled: false
"""


def prepare_dagster_home(settings: Settings) -> Path:
    """Create the instance directory and its dagster.yaml; export DAGSTER_HOME."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() or config.read_text() != DAGSTER_YAML:
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    # Child processes (daemon, code server, run workers) must see the same absolute home.
    os.environ["LEANOPS_HOME"] = str(settings.home)
    return home


def get_instance(settings: Settings) -> dg.DagsterInstance:
    prepare_dagster_home(settings)
    return dg.DagsterInstance.get()
