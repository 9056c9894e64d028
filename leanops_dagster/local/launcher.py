"""Local run launcher: each run is a fork of a warm worker that has already imported the code.

Dagster's ``DefaultRunLauncher`` asks the code server for a run, which spawns a fresh
interpreter that imports dagster and ``leanops_dagster.definitions`` before the run's first
event: about 10 s of a 14 s run on a loaded laptop. ``WarmForkRunLauncher`` starts one
worker process (``python -m leanops_dagster.local.launcher``) the first time it launches a run,
in the process that launches runs (the daemon of ``leanops demo``, ``dagster dev`` or the
benchmarks). The worker imports the configured modules once, builds their ``Definitions``,
then forks per run:

- a *supervisor* (one per run, its pid in the run's ``leanops/run_worker_pid`` tag), which forks
  the *run process*: Dagster's own ``dagster api execute_run`` body against the instance, so the
  run's events, logs and status reach the instance as with any launcher;
- when the run process ends, the supervisor reports the run failed if it is not finished (a run
  process that was killed or crashed never leaves a run STARTED), or canceled if it was being
  canceled.

Nothing is shared between runs but the imported modules: every run is a fresh fork, so a run
that crashes leaves the worker as it was. The queue is unchanged (the ``QueuedRunCoordinator``
and its per-topic tag limit decide what runs, this launcher only starts it). ``terminate``
signals the supervisor, which forwards SIGTERM to the run process (Dagster turns it into an
interrupt and the run ends CANCELED). The worker exits when the launching process closes its
end of the pipe (``dispose`` or that process's exit). Local only: the AWS instance keeps
``EcsRunLauncher`` (infra/dagster/dagster.yaml).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from leanops_dagster._dagster_internals import (
    RUN_BODY_MODULES,
    CheckRunHealthResult,
    ConfigurableClass,
    ConfigurableClassData,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
    capture_interrupts,
    execute_run,
    unexpected_termination,
)

PID_TAG = "leanops/run_worker_pid"
#: imported by the worker before it forks: the code location's module (workspace.yaml, the local
#: Definitions: a run that finds it imported does not build it again) and the SQL catalog module
#: pyiceberg imports on a run's first catalog load (SQLAlchemy's ORM, ~1 s of every run start)
DEFAULT_PRELOAD = ("leanops_dagster.local.definitions", "pyiceberg.catalog.sql")
# The first launch waits for the worker's imports (as long as one cold run start).
WORKER_START_TIMEOUT_S = 300


class WarmForkRunLauncher(RunLauncher, ConfigurableClass):
    """Launches each run as a fork of a warm worker process (see the module docstring)."""

    def __init__(
        self,
        inst_data: ConfigurableClassData | None = None,
        preload_modules: Sequence[str] = DEFAULT_PRELOAD,
    ) -> None:
        self._inst_data = inst_data
        self.preload_modules = tuple(preload_modules)
        self._worker: subprocess.Popen | None = None
        self._lock = threading.Lock()
        super().__init__()

    # --- ConfigurableClass ---------------------------------------------------------------
    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict:
        return {
            "preload_modules": dg.Field(
                [str], is_required=False, default_value=list(DEFAULT_PRELOAD)
            )
        }

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> WarmForkRunLauncher:
        return cls(inst_data=inst_data, **config_value)

    # --- RunLauncher -----------------------------------------------------------------------
    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        request = {
            "run_id": run.run_id,
            "instance_ref": dg.serialize_value(self._instance.get_ref()),
        }
        with self._lock:
            reply = self._ask(request)
        if "pid" not in reply:
            raise RuntimeError(
                f"the warm run worker could not start run {run.run_id}: {reply.get('error', reply)}"
            )
        self._instance.add_run_tags(run.run_id, {PID_TAG: str(reply["pid"])})
        self._instance.report_engine_event(
            f"Forked from the warm run worker (supervisor pid {reply['pid']}).",
            run,
            cls=self.__class__,
        )

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        pid = run.tags.get(PID_TAG)
        if pid is None:
            self._instance.report_engine_event(
                "No run worker to terminate (the run was never forked).", run, cls=self.__class__
            )
            return False
        self._instance.report_run_canceling(run)
        try:
            os.kill(int(pid), signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        # the caller's record may predate the tag, written just after the fork
        run = self._instance.get_run_by_id(run.run_id) or run
        pid = run.tags.get(PID_TAG)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.NOT_FOUND, "no run worker pid tag")
        if _alive(int(pid)):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=pid)
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"run worker supervisor {pid} is gone", run_worker_id=pid
        )

    def dispose(self) -> None:
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None and worker.poll() is None:
            worker.stdin.close()  # EOF: the worker exits; runs in progress finish on their own
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()

    # --- the worker process ----------------------------------------------------------------
    def _ask(self, request: dict) -> dict:
        """Send one request to the worker (started, or restarted if it died) and read its
        reply; called under the lock."""
        for attempt in (1, 2):
            if self._worker is None or self._worker.poll() is not None:
                self._worker = subprocess.Popen(  # nosec B603 - our interpreter, fixed argv
                    [sys.executable, "-m", "leanops_dagster.local.launcher", *self.preload_modules],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    start_new_session=True,  # a Ctrl-C to the terminal is not a run's cancel
                )
            try:
                self._worker.stdin.write(json.dumps(request) + "\n")
                self._worker.stdin.flush()
                line = _readline(self._worker, WORKER_START_TIMEOUT_S)
            except (BrokenPipeError, OSError, TimeoutError):
                line = ""
            if line:
                return json.loads(line)
            if self._worker.poll() is None:  # timed out: do not leave it half-started
                self._worker.kill()
            self._worker = None
            if attempt == 2:
                return {"error": "the worker exited before replying (see the daemon log)"}
        raise AssertionError("unreachable")


def _readline(worker: subprocess.Popen, timeout_s: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(worker.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    if reader.is_alive():
        raise TimeoutError(f"the warm run worker did not answer within {timeout_s} s")
    return result[0]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a pid reused by another user's process: not our worker
        return False
    return True


def _warm(modules: Sequence[str]) -> None:
    """Import Dagster's run body and the modules, and build every ``Definitions`` object they
    hold (cached on it, so a run's ``get_definition`` finds it built)."""
    for name in RUN_BODY_MODULES:
        importlib.import_module(name)
    for name in modules:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, dg.Definitions):
                value.get_repository_def().get_all_jobs()


def _warm_instance(instance_ref: str) -> None:
    """Open the instance once and close it: its storages' modules (SQLAlchemy, alembic, ...)
    are imported here, not in every run process (2 s of each run start at a load of 12)."""
    try:
        with dg.DagsterInstance.from_ref(dg.deserialize_value(instance_ref)) as instance:
            instance.get_runs(limit=1)
    except Exception:  # the run process opens it again and reports what is wrong
        import traceback

        traceback.print_exc()


def _execute(run_id: str, instance_ref: str) -> None:
    """The run process: what ``dagster api execute_run`` does with its arguments."""
    with (
        capture_interrupts(),
        dg.DagsterInstance.from_ref(dg.deserialize_value(instance_ref)) as instance,
    ):
        execute_run(run_id, instance)


def _supervise(run_id: str, instance_ref: str) -> None:
    """Fork the run process, forward SIGTERM to it, and settle the run once it has ended."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # SIGTERM is blocked since the worker's fork: one that arrives before the handler below is
    # installed waits for it (neither lost nor fatal to the supervisor)
    run_pid = os.fork()
    if run_pid == 0:
        code = 0
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            _execute(run_id, instance_ref)
        except BaseException:  # reported to the instance by Dagster's run body already
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def forward(signum, _frame):
        with contextlib.suppress(ProcessLookupError):
            os.kill(run_pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    _, status = os.waitpid(run_pid, 0)
    with dg.DagsterInstance.from_ref(dg.deserialize_value(instance_ref)) as instance:
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return
        how = (
            f"killed by signal {os.WTERMSIG(status)}"
            if os.WIFSIGNALED(status)
            else f"exit code {os.WEXITSTATUS(status)}"
        )
        if run.status == dg.DagsterRunStatus.CANCELING:
            instance.report_run_canceled(run, f"The run process ended ({how}) while canceling.")
        else:
            instance.report_run_failed(
                run,
                f"The run process ended ({how}) before the run finished.",
                unexpected_termination(),
            )


def serve(modules: Sequence[str]) -> None:
    """The worker: warm up, then fork one supervisor per request line on stdin."""
    requests, replies = sys.stdin, sys.stdout
    sys.stdout = sys.stderr  # only replies go to the pipe; prints go to the launcher's log
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # supervisors are reaped by the kernel
    _warm(modules)
    warm_instances: set[str] = set()
    worker_pid = os.getpid()
    for line in requests:
        request = json.loads(line)
        if request["instance_ref"] not in warm_instances:
            _warm_instance(request["instance_ref"])
            warm_instances.add(request["instance_ref"])
        # the supervisor starts with SIGTERM blocked until it can forward it (_supervise)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            pid = os.fork()
        except OSError as exc:
            replies.write(json.dumps({"error": str(exc)}) + "\n")
            replies.flush()
            continue
        finally:
            if os.getpid() == worker_pid:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        if pid == 0:
            code = 0
            try:
                devnull = os.open(os.devnull, os.O_RDONLY)
                os.dup2(devnull, 0)  # the pipes stay the worker's
                os.dup2(2, 1)
                _supervise(request["run_id"], request["instance_ref"])
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stderr.flush()
                os._exit(code)
        replies.write(json.dumps({"pid": pid}) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve(sys.argv[1:] or DEFAULT_PRELOAD)
