"""Ingestion first (brief rule 10): the local instance's queue, in front of a launcher that only
records what it launches, with 30 onboarded topics and the schedules firing."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
import yaml
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import (
    QueuedRunCoordinatorDaemon,
)

from leanops_dagster import lanes
from leanops_dagster.definitions import build_definitions
from leanops_dagster.instance import DAGSTER_YAML
from leanops_dagster.settings import REPO_ROOT

LOCAL = yaml.safe_load(DAGSTER_YAML)
RECORDING_LAUNCHER = {"module": "dagster._core.test_utils", "class": "MockedRunLauncher"}
TOPICS = [f"t{i:02d}" for i in range(30)]


@pytest.fixture
def queue(settings):
    """(instance, workspace, submit): the local run coordinator, the production definitions
    as an in-process code location, and ``submit(job_name, tags)`` that queues a run with the
    tags a sensor or schedule would give it (the job's run tags, then the request's)."""
    overrides = {"run_coordinator": LOCAL["run_coordinator"], "run_launcher": RECORDING_LAUNCHER}
    location = InProcessWorkspaceLoadTarget(InProcessCodeLocationOrigin(LoadableTargetOrigin(
        module_name="leanops_dagster.definitions", working_directory=str(REPO_ROOT))))
    with (
        dg.instance_for_test(overrides=overrides) as instance,
        WorkspaceProcessContext(instance, location) as workspace,
    ):
        code_location = next(
            iter(workspace.create_request_context().get_code_location_entries().values())
        ).code_location
        repository = next(iter(code_location.get_repositories().values()))
        instance.add_dynamic_partitions("topics", TOPICS)

        def submit(job_name: str, tags: dict[str, str] | None = None) -> str:
            remote = repository.get_full_job(job_name)
            run = instance.create_run_for_job(
                job_def=dg.JobDefinition(  # the run's snapshot only; the code is remote
                    graph_def=dg.GraphDefinition(name=job_name, node_defs=[]), name=job_name),
                tags={**remote.run_tags, **(tags or {})},
                remote_job_origin=remote.get_remote_origin(),
                job_code_origin=remote.get_python_origin(),
            )
            instance.submit_run(run.run_id, workspace.create_request_context())
            return run.run_id

        yield instance, workspace, submit


def _dequeues(instance, workspace, expected: int) -> list[list[dg.DagsterRun]]:
    """Dequeue until ``expected`` runs were launched, ending each launched run at once (the
    recording launcher does not run them): the runs each dequeue started, in launch order."""
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    launched: list[str] = []
    batches: list[list[dg.DagsterRun]] = []
    for _ in range(expected * 2):
        list(daemon.run_iteration(workspace))
        started = [r for r in instance.run_launcher.queue() if r.run_id not in launched]
        assert len(started) <= LOCAL["run_coordinator"]["config"]["max_concurrent_runs"]
        launched += [r.run_id for r in started]
        batches.append([instance.get_run_by_id(r.run_id) for r in started])
        for run in started:
            instance.report_run_canceled(instance.get_run_by_id(run.run_id))
        if len(launched) == expected:
            break
    assert len(launched) == expected
    return batches


def _launch_order(instance, workspace, expected: int) -> list[dg.DagsterRun]:
    return [run for batch in _dequeues(instance, workspace, expected) for run in batch]


def test_a_topic_run_starts_before_any_housekeeping_run_queued_before_it(settings, queue):
    """The schedules fire (03:00: the checks of 30 topics and the maintenance), a rebuild and a
    DLQ replay are queued too, then the RAW sensor's 30 topic runs: every dequeue starts its
    topic runs first and as many as ingestion has slots, as if no housekeeping were queued."""
    instance, workspace, submit = queue
    definitions_schedules = {s.name: s for s in build_definitions(settings).schedules}
    tick = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)  # both schedules fire at 03:00
    housekeeping = []
    for name, job in (("accountability_checks_schedule", "accountability_checks"),
                      ("table_maintenance_job_schedule", "table_maintenance_job")):
        schedule = definitions_schedules[name]
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
        for request in schedule.evaluate_tick(context).run_requests:
            housekeeping.append(submit(job, request.tags))
    housekeeping.append(submit("schema_rebuild_job", {"dagster/partition": TOPICS[0]}))
    housekeeping.append(submit("dlq_replay_job"))
    # the RAW sensor's requests, one per topic, all queued after the housekeeping runs
    topic_runs = [submit("topic_pipeline", {"dagster/partition": t, "leanops/topic": t})
                  for t in TOPICS]
    batches = _dequeues(instance, workspace, len(housekeeping) + len(topic_runs))
    waiting = len(topic_runs)
    for batch in batches:
        kinds = [lanes.is_housekeeping(run.tags) for run in batch]
        assert kinds == sorted(kinds), "a housekeeping run started before a topic run"
        assert kinds.count(False) == min(lanes.LOCAL_INGESTION_RUNS, waiting)
        assert kinds.count(True) <= lanes.HOUSEKEEPING_RUN_LIMIT
        waiting -= kinds.count(False)
    # the first topic run started at the first dequeue, first of all the runs queued before it
    assert batches[0][0].run_id == topic_runs[0]
    order = [run.run_id for batch in batches for run in batch]
    assert order.index(topic_runs[0]) < min(order.index(r) for r in housekeeping)
    # the schedule fired once for all 30 topics: one check run, not 30
    assert sum(run.job_name == "accountability_checks" for b in batches for run in b) == 1


def test_housekeeping_never_holds_every_run_slot(settings, queue):
    """Housekeeping alone in the queue takes its one slot, and the topic that arrives next
    starts at once."""
    instance, workspace, submit = queue
    for _ in range(3):
        submit("accountability_checks")
    daemon = QueuedRunCoordinatorDaemon(interval_seconds=1)
    list(daemon.run_iteration(workspace))
    assert len(instance.run_launcher.queue()) == 1  # one housekeeping run, not two
    topic_run = submit("topic_pipeline", {"dagster/partition": TOPICS[5]})
    list(daemon.run_iteration(workspace))
    assert [r.run_id for r in instance.run_launcher.queue()][-1] == topic_run


def test_one_topics_backlog_does_not_starve_the_others(settings, queue):
    """Three runs of one topic queued first, then one of two others: the others start as soon
    as a slot is free, not after the whole backlog (one run per topic, queue order)."""
    instance, workspace, submit = queue
    busy = [submit("topic_pipeline", {"dagster/partition": "t00"}) for _ in range(3)]
    others = [submit("topic_pipeline", {"dagster/partition": t}) for t in ("t01", "t02")]
    order = [run.run_id for run in _launch_order(instance, workspace, 5)]
    assert order.index(others[0]) < order.index(busy[1])
    assert order.index(others[1]) < order.index(busy[2])


def test_both_instances_give_each_lane_its_own_slots():
    """Local and AWS: one run per topic, ingestion's slots, one housekeeping slot, and a global
    maximum of exactly both (so housekeeping never takes a topic's slot)."""
    from leanops_dagster.settings import REPO_ROOT

    aws = yaml.safe_load((REPO_ROOT / "infra" / "dagster" / "dagster.yaml").read_text())
    for config, ingestion in ((LOCAL, lanes.LOCAL_INGESTION_RUNS),
                              (aws, lanes.AWS_INGESTION_RUNS)):
        queue = config["run_coordinator"]["config"]
        assert queue["tag_concurrency_limits"] == lanes.tag_concurrency_limits(ingestion)
        assert queue["max_concurrent_runs"] == ingestion + lanes.HOUSEKEEPING_RUN_LIMIT


def test_a_sensor_tick_requests_one_round_of_the_submit_pool_at_most():
    """Ticks stay short: both instances submit a tick's run requests from a pool of
    SENSOR_SUBMIT_WORKERS threads, and the sensors request no more runs than that per tick
    (``tests/dagster/test_sensors.py`` counts the requests of each tick)."""
    aws = yaml.safe_load((REPO_ROOT / "infra" / "dagster" / "dagster.yaml").read_text())
    for instance in (LOCAL, aws):
        assert instance["sensors"]["use_threads"] is True
        assert instance["sensors"]["num_submit_workers"] == lanes.SENSOR_SUBMIT_WORKERS
    assert 0 < lanes.RUN_REQUESTS_PER_TICK <= lanes.SENSOR_SUBMIT_WORKERS
