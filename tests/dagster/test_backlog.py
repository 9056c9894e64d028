"""Backlog: a run that read more than the threshold is followed at once by another."""

import dagster as dg

from leanops_dagster.definitions import build_definitions
from leanops_dagster.sensors.backlog import BacklogConfig, backlog_sensor, rows_read_by_run
from tests.dagster.conftest import append_raw, event, raw_row


def _evaluate(instance, run, threshold):
    context = dg.build_run_status_sensor_context(
        sensor_name=backlog_sensor.name,
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS
        ).records[0].event_log_entry.dagster_event,
        resources={"backlog": BacklogConfig(threshold=threshold)},
    )
    return backlog_sensor(context)


def test_backlog_requests_a_follow_up_only_above_the_threshold(settings, registry, catalog):
    registry.deploy("events")
    append_raw(catalog, [raw_row(f"m{i}", event(f"k{i}")) for i in range(12)])
    definitions = build_definitions(settings)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("topics", ["events"])
        result = definitions.resolve_job_def("topic_pipeline").execute_in_process(
            instance=instance, partition_key="events"
        )
        run = instance.get_run_by_id(result.run_id)
        assert rows_read_by_run(instance, run.run_id) == 12

        follow_up = _evaluate(instance, run, threshold=10)
        assert isinstance(follow_up, dg.RunRequest)
        assert follow_up.partition_key == "events"
        assert follow_up.run_key == f"backlog:{run.run_id}"

        quiet = _evaluate(instance, run, threshold=12)
        assert isinstance(quiet, dg.SkipReason)
