"""Every use of Dagster beyond its public API (``import dagster as dg``), in one place.

An upgrade of Dagster starts here: re-check each use below against the new version, then add it
to ``CHECKED_VERSIONS`` (``tests/test_library_internals.py`` fails, naming this file, while the
installed version is not listed). No other module imports from ``dagster._*``.

Each use, why, and the version it was checked against (1.13.27):

- ``AssetCheckExecutionRecordStatus`` (``sensors/alerts.py``): the status filter of
  ``instance.event_log_storage.get_asset_check_execution_history``; not exported by ``dagster``.
- ``SerializableErrorInfo`` (``sensors/alerts.py``, ``cli/run_output.py``): the error record
  Dagster keeps of a failed run or step, read for its root cause; not exported.
- ``RunLauncher``, ``LaunchRunContext``, ``CheckRunHealthResult``, ``WorkerStatus``,
  ``ConfigurableClass``, ``ConfigurableClassData`` (``local/launcher.py``): the base classes and
  types of a run launcher configured in ``dagster.yaml``; Dagster documents custom launchers
  but exports these from ``dagster._core`` / ``dagster._serdes`` only.
- ``execute_run`` and ``capture_interrupts``: what ``dagster api execute_run`` does with its
  arguments (``dagster._cli.api._execute_run_command_body``), run in a warm forked process;
  ``RUN_BODY_MODULES`` are the modules it imports on first use, preloaded by the worker.
- ``unexpected_termination``: the ``JobFailureData`` a run launcher reports for a run process
  that died (``dagster._core.events``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from dagster._core.launcher import (
    CheckRunHealthResult,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._serdes import ConfigurableClass, ConfigurableClassData
from dagster._utils.error import SerializableErrorInfo

if TYPE_CHECKING:
    import dagster as dg

#: the Dagster versions every use below was checked against
CHECKED_VERSIONS = ("1.13.27",)

__all__ = [
    "CHECKED_VERSIONS",
    "RUN_BODY_MODULES",
    "AssetCheckExecutionRecordStatus",
    "CheckRunHealthResult",
    "ConfigurableClass",
    "ConfigurableClassData",
    "LaunchRunContext",
    "RunLauncher",
    "SerializableErrorInfo",
    "WorkerStatus",
    "capture_interrupts",
    "execute_run",
    "unexpected_termination",
]

#: Dagster's run body and what it imports on first use in a run process
RUN_BODY_MODULES = (
    "dagster._cli.api",
    "dagster._core.executor.in_process",
    "dagster._core.execution.plan.active",
    "dagster._core.storage.local_compute_log_manager",
)


def capture_interrupts() -> AbstractContextManager[None]:
    """Dagster's SIGINT handling for a run process (as ``dagster api execute_run`` sets it)."""
    from dagster._utils.interrupts import capture_interrupts as capture

    return capture()


def execute_run(run_id: str, instance: dg.DagsterInstance) -> None:
    """Execute the run ``run_id`` in this process: ``dagster api execute_run``'s body."""
    from dagster._cli.api import _execute_run_command_body

    _execute_run_command_body(
        run_id, instance, lambda _event: None, set_exit_code_on_failure=False
    )


def unexpected_termination() -> Any:
    """The failure data of a run whose process ended before the run did."""
    from dagster._core.events import JobFailureData, RunFailureReason

    return JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION)
