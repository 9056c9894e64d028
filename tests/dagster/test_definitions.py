"""The whole Definitions object loads, and its asset graph is what the platform promises."""

import datetime as dt

import dagster as dg

from leanops_dagster.assets.keys import CURATED, RAW_STAGING, STANDARDIZED
from leanops_dagster.definitions import build_definitions, defs


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)


def test_asset_graph_lineage_and_partitions(settings):
    definitions = build_definitions(settings)
    graph = definitions.resolve_asset_graph()
    assert set(graph.get_all_asset_keys()) == {RAW_STAGING, STANDARDIZED, CURATED}
    assert graph.get(STANDARDIZED).parent_keys == {RAW_STAGING}
    assert graph.get(CURATED).parent_keys == {STANDARDIZED}
    for key in (RAW_STAGING, STANDARDIZED, CURATED):
        node = graph.get(key)
        assert node.partitions_def.name == "topics"
        assert node.description, key
    assert graph.get(RAW_STAGING).is_external


def test_checks_sensors_jobs_and_schedules(settings):
    definitions = build_definitions(settings)
    checks = {
        (key.asset_key.to_user_string(), key.name)
        for key in definitions.resolve_asset_graph().asset_check_keys
    }
    assert checks == {
        ("raw/staging", "pre_raw_balance"),
        ("standardized/records", "post_raw_water_balance"),
        ("standardized/records", "post_raw_balance_all_time"),
        ("standardized/records", "quarantined_rows"),
        ("curated/records", "quarantined_rows"),
        ("curated/records", "curated_water_balance"),
        ("curated/records", "cde_error_rate"),
        ("curated/records", "schema_drift"),
        ("curated/records", "curated_balance_all_time"),
        ("curated/records", "curated_freshness"),
    }
    blocking = {
        key.name
        for key, spec in (
            (k, definitions.resolve_asset_graph().get_check_spec(k))
            for k in definitions.resolve_asset_graph().asset_check_keys
        )
        if spec.blocking
    }
    assert blocking == {"post_raw_water_balance", "curated_water_balance", "cde_error_rate"}
    assert {s.name for s in definitions.sensors} == {
        "schema_gate_sensor", "raw_snapshot_sensor", "backlog_sensor",
        "run_failure_alert_sensor", "check_failure_alert_sensor", "stale_topic_alert_sensor",
        "drift_alert_sensor", "tick_metrics_sensor"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in definitions.sensors)
    assert {j.name for j in definitions.jobs} >= {
        "topic_pipeline", "dlq_replay_job", "table_maintenance_job", "accountability_checks"}
    assert {s.name for s in definitions.schedules} == {
        "accountability_checks_schedule", "table_maintenance_job_schedule"}


def test_the_accountability_job_is_one_in_process_housekeeping_op(settings):
    """The all-time checks of every topic in one op of one process: no step per check."""
    job = build_definitions(settings).resolve_job_def("accountability_checks")
    assert [node.name for node in job.nodes] == ["evaluate_all_time_checks"]
    assert job.executor_def.name == dg.in_process_executor.name
    assert job.run_tags == {"leanops/lane": "housekeeping", "dagster/priority": "-10"}
    assert job.partitions_def is None  # one run covers every topic partition


def test_schedules_run_by_default_and_a_setting_turns_them_off(settings):
    from leanops_dagster.settings import get_settings

    on = build_definitions(settings).schedules
    assert {s.default_status for s in on} == {dg.DefaultScheduleStatus.RUNNING}
    off = build_definitions(get_settings(home=settings.home, schedules_running=False)).schedules
    assert {s.default_status for s in off} == {dg.DefaultScheduleStatus.STOPPED}
    assert {s.name for s in off} == {s.name for s in on}


def test_the_all_time_checks_are_partitioned_by_topic(settings):
    graph = build_definitions(settings).resolve_asset_graph()
    all_time = {"pre_raw_balance", "post_raw_balance_all_time", "curated_balance_all_time",
                "curated_freshness"}
    specs = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys
             if key.name in all_time}
    assert set(specs) == all_time
    assert {spec.partitions_def.name for spec in specs.values()} == {"topics"}


def test_the_accountability_schedule_requests_one_run_whatever_the_number_of_topics(settings):
    from leanops_dagster.instance import get_instance

    (schedule,) = [s for s in build_definitions(settings).schedules
                   if s.name == "accountability_checks_schedule"]
    instance = get_instance(settings)
    tick = dt.datetime(2026, 12, 1, 19, 40, tzinfo=dt.UTC)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
    empty = schedule.evaluate_tick(context)
    assert not empty.run_requests and empty.skip_message == "no onboarded topic"
    instance.add_dynamic_partitions("topics", [f"t{i:02d}" for i in range(30)])
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.run_key == "2026-12-01T19:40:00+00:00"
    assert "dagster/partition" not in request.tags


def test_the_schedules_launch_at_most_four_housekeeping_runs_in_any_hour(settings):
    from dagster._utils.schedules import cron_string_iterator

    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    per_hour: dict[dt.datetime, int] = {}
    for schedule in build_definitions(settings).schedules:
        for tick in cron_string_iterator(start.timestamp(), schedule.cron_schedule, "UTC"):
            if tick >= start + dt.timedelta(days=1):
                break
            hour = tick.replace(minute=0, second=0, microsecond=0)
            per_hour[hour] = per_hour.get(hour, 0) + 1
    assert max(per_hour.values()) == 4 and len(per_hour) == 24
