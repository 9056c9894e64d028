"""Sensor cursors and run requests, and the schema gate's Day 1 / Day 2."""

import json

import dagster as dg

from leanops_dagster.assets.keys import RAW_STAGING
from leanops_dagster.definitions import build_definitions
from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.resources.catalog import IcebergCatalogResource
from leanops_dagster.resources.schema_registry import SchemaRegistryResource
from leanops_dagster.sensors.raw_snapshots import raw_snapshot_sensor
from leanops_dagster.sensors.schema_gate import schema_gate_sensor
from tests.dagster.conftest import append_raw, event, raw_row


def _gate(instance, settings, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor,
        resources={"schema_registry": SchemaRegistryResource.from_settings(settings)},
    )
    return schema_gate_sensor(context), context


def _raw_sensor(instance, settings, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor,
        resources={"catalog": IcebergCatalogResource.from_settings(settings)},
    )
    return raw_snapshot_sensor(context), context


def test_schema_gate_adds_partition_once_per_deployed_version(settings, registry):
    with dg.instance_for_test() as instance:
        result, _ = _gate(instance, settings)
        assert isinstance(result, dg.SkipReason)

        registry.deploy("events")
        result, _ = _gate(instance, settings)
        assert [r.partitions_def_name for r in result.dynamic_partitions_requests] == ["topics"]
        assert list(result.dynamic_partitions_requests[0].partition_keys) == ["events"]
        assert [r.partition_key for r in result.run_requests] == ["events"]
        cursor = json.loads(result.cursor)
        assert set(cursor) == {"events"}

        instance.add_dynamic_partitions("topics", ["events"])
        again, _ = _gate(instance, settings, cursor=result.cursor)
        assert isinstance(again, dg.SkipReason)


def test_raw_sensor_requests_only_onboarded_topics_and_only_new_snapshots(
    settings, registry, catalog
):
    with dg.instance_for_test() as instance:
        append_raw(catalog, [raw_row("s1", {"x": 1}, topic="sensor_readings")],
                   topic="sensor_readings")
        result, _ = _raw_sensor(instance, settings)
        assert isinstance(result, dg.SkipReason)  # no topic onboarded: nothing runs

        instance.add_dynamic_partitions("topics", ["events"])
        first = append_raw(catalog, [raw_row("m1", event("k1"))])
        result, _ = _raw_sensor(instance, settings)
        assert [r.partition_key for r in result.run_requests] == ["events"]
        assert result.run_requests[0].run_key == f"events:{first}"
        assert json.loads(result.cursor) == {"events": first}
        (materialization,) = result.asset_events
        assert materialization.asset_key == RAW_STAGING
        assert materialization.partition == "events"

        unchanged, _ = _raw_sensor(instance, settings, cursor=result.cursor)
        assert isinstance(unchanged, dg.SkipReason)  # no new data -> no work

        second = append_raw(catalog, [raw_row("m2", event("k2"))])
        newer, _ = _raw_sensor(instance, settings, cursor=result.cursor)
        assert json.loads(newer.cursor) == {"events": second}


def test_day1_day2_buffered_raw_is_processed_once_schema_is_deployed(settings, registry, catalog):
    """Day 1: RAW lands, no schema, no partition, no work. Day 2: deploy -> everything."""
    definitions = build_definitions(settings)
    rows = [raw_row(f"m{i}", event(f"k{i}", minutes=i), minutes=i) for i in range(30)]
    append_raw(catalog, rows[:10])
    append_raw(catalog, rows[10:])
    tables = TopicTables("events")
    with dg.instance_for_test() as instance:
        gate, _ = _gate(instance, settings)
        assert isinstance(gate, dg.SkipReason)
        assert not open_catalog(settings).table_exists(tables.standardized)

        registry.deploy("events")
        gate, _ = _gate(instance, settings)
        for request in gate.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name,
                                            list(request.partition_keys))
        (request,) = gate.run_requests
        result = definitions.resolve_job_def("topic_pipeline").execute_in_process(
            instance=instance, partition_key=request.partition_key
        )
        assert result.success
        catalog = open_catalog(settings)
        assert catalog.load_table(tables.standardized).scan().to_arrow().num_rows == 30
        assert catalog.load_table(tables.curated).scan().to_arrow().num_rows == 30
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks == {
            "post_raw_water_balance": True, "curated_water_balance": True,
            "cde_error_rate": True, "schema_drift": True, "quarantined_rows": True,
        }
