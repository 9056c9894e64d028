"""The warm-fork run launcher (leanops_dagster/local/launcher.py) on a real instance: runs
forked from its worker succeed and log to the instance, a run process that dies is reported
failed (and the worker keeps launching), terminate cancels a run, and with the local
instance's queue two runs of one topic never overlap while runs of two topics do."""

import itertools
import json
import os
import time

import dagster as dg
import pytest
import yaml
from dagster._core.launcher import WorkerStatus
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from leanops_dagster.instance import DAGSTER_YAML
from leanops_dagster.local.launcher import PID_TAG, WarmForkRunLauncher
from leanops_dagster.settings import REPO_ROOT
from tests.dagster import launcher_jobs

LOCAL = yaml.safe_load(DAGSTER_YAML)
LAUNCHER = {**LOCAL["run_launcher"], "config": {"preload_modules": [launcher_jobs.__name__]}}
# the test jobs as a code location loaded in this process (submitted runs need its origin)
JOBS_LOCATION = InProcessWorkspaceLoadTarget(
    InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name=launcher_jobs.__name__, working_directory=str(REPO_ROOT))
    )
)
TIMEOUT_S = 240  # the first launch imports the worker's modules; the machine may be loaded


@pytest.fixture(scope="module")
def instance():
    """One instance (and so one worker) for the tests that do not stop it."""
    with dg.instance_for_test(overrides={"run_launcher": LAUNCHER}) as instance:
        yield instance


def _run(instance, job, tags=None, run_config=None) -> dg.DagsterRun:
    return instance.create_run_for_job(
        job,
        run_config=run_config,
        tags=tags,
        job_code_origin=dg.reconstructable(job).get_python_origin(),
    )


def _finished(instance, run_id: str, timeout_s: float = TIMEOUT_S) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run.is_finished:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish: {instance.get_run_by_id(run_id).status}")


def _messages(instance, run_id: str) -> list[str]:
    return [entry.message or entry.user_message for entry in instance.all_logs(run_id)]


def _waits_config(seconds: float, log) -> dict:
    return {"ops": {"wait_and_record": {"config": {"seconds": seconds, "log": str(log)}}}}


def test_the_local_instance_launches_with_the_warm_launcher():
    assert LOCAL["run_launcher"] == {
        "module": "leanops_dagster.local.launcher",
        "class": "WarmForkRunLauncher",
    }


def test_a_forked_run_succeeds_and_its_events_reach_the_instance(instance):
    assert isinstance(instance.run_launcher, WarmForkRunLauncher)
    run = _run(instance, launcher_jobs.succeeds)
    instance.launch_run(run.run_id, workspace=None)

    assert _finished(instance, run.run_id).status == dg.DagsterRunStatus.SUCCESS
    messages = _messages(instance, run.run_id)
    started = [m for m in messages if m.startswith("Started process for run (pid: ")]
    assert len(started) == 1
    run_pid = int(started[0].split("pid: ")[1].rstrip(")."))
    supervisor = int(instance.get_run_by_id(run.run_id).tags[PID_TAG])
    assert len({run_pid, supervisor, os.getpid()}) == 3  # a process of its own
    assert f"hello from run process {run_pid}" in messages  # the step's own log
    exited = f"Process for run exited (pid: {run_pid})."  # written after RUN_SUCCESS
    deadline = time.monotonic() + 30
    while exited not in _messages(instance, run.run_id):
        assert time.monotonic() < deadline, "the run process did not report its exit"
        time.sleep(0.2)


def test_a_run_whose_process_dies_is_reported_failed_and_the_next_run_starts(instance):
    crash = _run(instance, launcher_jobs.crashes)
    instance.launch_run(crash.run_id, workspace=None)

    crashed = _finished(instance, crash.run_id)
    assert crashed.status == dg.DagsterRunStatus.FAILURE
    assert "The run process ended (killed by signal 9) before the run finished." in _messages(
        instance, crash.run_id
    )
    # the worker forks afresh: the crash did not take it down
    after = _run(instance, launcher_jobs.succeeds)
    instance.launch_run(after.run_id, workspace=None)
    assert _finished(instance, after.run_id).status == dg.DagsterRunStatus.SUCCESS


def test_the_worker_exits_when_the_launcher_is_disposed():
    with dg.instance_for_test(overrides={"run_launcher": LAUNCHER}) as instance:
        run = _run(instance, launcher_jobs.succeeds)
        instance.launch_run(run.run_id, workspace=None)
        worker = instance.run_launcher._worker
        assert worker is not None and worker.poll() is None
        assert _finished(instance, run.run_id).status == dg.DagsterRunStatus.SUCCESS
    assert worker.wait(timeout=30) == 0  # the instance's disposal closed the worker's pipe


def test_terminate_cancels_a_running_run(instance, tmp_path):
    launcher = instance.run_launcher
    run = _run(instance, launcher_jobs.waits, run_config=_waits_config(120, tmp_path / "log"))
    instance.launch_run(run.run_id, workspace=None)
    deadline = time.monotonic() + TIMEOUT_S
    while not any(
        m.startswith('Started execution of step "wait_and_record"')
        for m in _messages(instance, run.run_id)
    ):
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.2)
    running = instance.get_run_by_id(run.run_id)
    assert launcher.check_run_worker_health(running).status == WorkerStatus.RUNNING

    assert launcher.terminate(run.run_id)
    canceled = _finished(instance, run.run_id, timeout_s=60)
    assert canceled.status == dg.DagsterRunStatus.CANCELED
    assert not (tmp_path / "log").exists()  # the step did not run to its end
    assert not launcher.terminate(run.run_id)  # already finished
    deadline = time.monotonic() + 30  # its supervisor exits once it has settled the run
    while launcher.check_run_worker_health(canceled).status != WorkerStatus.FAILED:
        assert time.monotonic() < deadline, "the run's supervisor did not exit"
        time.sleep(0.2)


def test_runs_of_one_topic_never_overlap_with_the_local_queue(tmp_path):
    """The local instance's queue (max 2 runs, one per dagster/partition) in front of the
    launcher: three runs of topic a and one of b, each step 3 s long."""
    log = tmp_path / "steps.jsonl"
    overrides = {"run_launcher": LAUNCHER, "run_coordinator": LOCAL["run_coordinator"]}
    with (
        dg.instance_for_test(overrides=overrides) as instance,
        WorkspaceProcessContext(instance, JOBS_LOCATION) as workspace,
    ):
        location = next(
            iter(workspace.create_request_context().get_code_location_entries().values())
        ).code_location
        remote = next(iter(location.get_repositories().values())).get_full_job("waits")
        runs = [
            instance.create_run_for_job(
                launcher_jobs.waits,
                run_config=_waits_config(3, log),
                tags={"dagster/partition": topic},
                remote_job_origin=remote.get_remote_origin(),
                job_code_origin=remote.get_python_origin(),
            )
            for topic in ("a", "a", "b", "a")
        ]
        for run in runs:
            instance.submit_run(run.run_id, workspace.create_request_context())
        daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
        deadline = time.monotonic() + TIMEOUT_S
        while not all(instance.get_run_by_id(r.run_id).is_finished for r in runs):
            assert time.monotonic() < deadline, "the queued runs did not all finish"
            list(daemon.run_iteration(workspace))
            time.sleep(0.5)
        assert {instance.get_run_by_id(r.run_id).status for r in runs} == {
            dg.DagsterRunStatus.SUCCESS
        }
        records = instance.get_run_records(dg.RunsFilter(tags={"dagster/partition": "a"}))
        for first, second in itertools.combinations(records, 2):  # whole runs, not only steps
            assert first.end_time <= second.start_time or second.end_time <= first.start_time

    steps = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(steps) == 4
    by_topic = {t: [s for s in steps if s["tags"]["dagster/partition"] == t] for t in "ab"}
    for first, second in itertools.combinations(by_topic["a"], 2):
        assert first["end"] <= second["start"] or second["end"] <= first["start"], (
            "two runs of topic a overlapped"
        )
    b = by_topic["b"][0]
    assert any(s["start"] < b["end"] and b["start"] < s["end"] for s in by_topic["a"]), (
        "topic b never ran beside topic a: the test would not see an overlap"
    )
