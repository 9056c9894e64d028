"""The local Dagster instance under LEANOPS_HOME/dagster (SQLite storage, queued runs).

Runs queue per topic partition: at most one run per topic at a time (both layers of a topic
run in one run), so a second trigger waits and then finds nothing new (watermarks). Ingestion
first (``lanes``): topic runs are dequeued before housekeeping runs (run priority), and each
lane has its own slots (tag concurrency limits): two topic runs at once, and one housekeeping
run (all-time checks, maintenance, rebuilds, DLQ replay) beside them, never in their place.
Each run is forked from a warm worker by ``leanops_dagster.local.launcher.WarmForkRunLauncher``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from leanops_dagster.settings import Settings

DAGSTER_YAML = """\
# Written by leanops: local Dagster instance for the embedded defaults.
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    # two topic runs (the 2 cores) + one housekeeping run: separate slots (lanes.py)
    max_concurrent_runs: 3
    # How often the queue is looked at (Dagster's default 5 s, a 2.5 s average wait per run).
    dequeue_interval_seconds: 1
    # Runs are dequeued by priority (dagster/priority: topic runs 10, housekeeping -10),
    # then in queue order (leanops_dagster/lanes.py).
    tag_concurrency_limits:
      # one run per topic at a time (rule 8: one writer per topic and layer)
      - key: "dagster/partition"
        value:
          applyLimitPerUniqueValue: true
        limit: 1
      # ingestion's slots and housekeeping's, apart (brief rule 10)
      - key: "leanops/lane"
        value: "ingestion"
        limit: 2
      - key: "leanops/lane"
        value: "housekeeping"
        limit: 1
# Sensors are evaluated in threads, and a tick's run requests are submitted by a pool: creating
# a run writes its snapshots and planned-asset events (a new SQLite shard per run here), so ten
# requests submitted one after another made the RAW sensor's tick ~20 s with 50 busy topics.
# A tick requests one round of the pool at most (lanes.RUN_REQUESTS_PER_TICK).
sensors:
  use_threads: true
  num_workers: 4
  num_submit_workers: 4
schedules:
  use_threads: true
  num_workers: 2
# Each run is a fork of a warm worker that has imported the definitions once
# (leanops_dagster/local/launcher.py); Dagster's default spawns and imports everything per run.
run_launcher:
  module: leanops_dagster.local.launcher
  class: WarmForkRunLauncher
# A STARTED run whose supervisor is gone is marked failed (the supervisor itself marks a run
# failed when the run process dies); the first launch of a daemon waits for the worker's imports.
run_monitoring:
  enabled: true
  poll_interval_seconds: 30
  start_timeout_seconds: 600
  max_resume_run_attempts: 0
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


class BrokenDagsterHome(RuntimeError):
    """The local instance's storage cannot be opened; the message says how to repair it."""


@contextlib.contextmanager
def _init_lock(home: Path) -> Iterator[None]:
    """An exclusive file lock: Dagster's SQLite storages create and stamp their alembic
    versions on first open, and two processes doing that at once leave two heads behind."""
    with (home / ".leanops-init.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def get_instance(settings: Settings) -> dg.DagsterInstance:
    """The local instance, its storages created (or checked) by one process at a time.

    Raises ``BrokenDagsterHome`` with a one-line repair hint if they cannot be opened."""
    home = prepare_dagster_home(settings)
    with _init_lock(home):
        try:
            instance = dg.DagsterInstance.get()
            # Open every storage now, inside the lock (each creates and stamps its database on
            # first use), and read from each so that a damaged one fails here, not mid-run.
            instance.get_runs(limit=1)
            instance.all_instigator_state()
            instance.get_asset_keys(limit=1)
        except Exception as exc:
            first_line = (str(exc).strip().splitlines() or [""])[0]
            raise BrokenDagsterHome(
                f"the Dagster home {home} is broken ({type(exc).__name__}: {first_line}); it "
                f"holds run history only, no table data: move it aside "
                f"(mv {home} {home}.broken) and rerun"
            ) from exc
    return instance
