"""Sensor cursors and run requests, and the schema gate's Day 1 / Day 2."""

import json

import dagster as dg

from leanops_dagster.assets.keys import RAW_STAGING
from leanops_dagster.definitions import build_definitions
from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.lanes import RUN_REQUESTS_PER_TICK
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.resources.catalog import IcebergCatalogResource
from leanops_dagster.resources.schema_registry import SchemaRegistryResource
from leanops_dagster.sensors.raw_snapshots import raw_snapshot_sensor
from leanops_dagster.sensors.schema_gate import schema_gate_sensor
from tests.dagster.conftest import append_raw, event, raw_row


def _gate(instance, settings, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor,
        resources={"schema_registry": SchemaRegistryResource.from_settings(settings),
                   "catalog": IcebergCatalogResource.from_settings(settings)},
    )
    return schema_gate_sensor(context), context


def _raw_sensor(instance, settings, cursor=None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor,
        resources={"catalog": IcebergCatalogResource.from_settings(settings)},
    )
    return raw_snapshot_sensor(context), context


def test_schema_gate_adds_partition_once_per_deployed_version(settings, registry, catalog):
    with dg.instance_for_test() as instance:
        result, _ = _gate(instance, settings)
        assert isinstance(result, dg.SkipReason)

        append_raw(catalog, [raw_row("m1", event("k1"))])  # buffered before the deploy
        registry.deploy("events")
        result, _ = _gate(instance, settings)
        assert [r.partitions_def_name for r in result.dynamic_partitions_requests] == ["topics"]
        assert list(result.dynamic_partitions_requests[0].partition_keys) == ["events"]
        assert [r.partition_key for r in result.run_requests] == ["events"]
        cursor = json.loads(result.cursor)
        assert set(cursor["versions"]) == set(cursor["stamps"]) == {"events"}

        instance.add_dynamic_partitions("topics", ["events"])
        again, _ = _gate(instance, settings, cursor=result.cursor)
        assert isinstance(again, dg.SkipReason)


def test_schema_gate_requests_no_run_for_a_topic_without_raw_data(settings, registry, catalog):
    """No data, no run: the partition is added, and the RAW sensor requests the first run
    when the topic's first data lands."""
    with dg.instance_for_test() as instance:
        registry.deploy("events")
        gate, _ = _gate(instance, settings)
        assert list(gate.dynamic_partitions_requests[0].partition_keys) == ["events"]
        assert gate.run_requests == []
        assert set(json.loads(gate.cursor)["versions"]) == {"events"}  # seen: not asked again
        instance.add_dynamic_partitions("topics", ["events"])

        snapshot = append_raw(catalog, [raw_row("m1", event("k1"))])
        again, _ = _gate(instance, settings, cursor=gate.cursor)
        assert isinstance(again, dg.SkipReason)
        raw, _ = _raw_sensor(instance, settings)
        assert [r.run_key for r in raw.run_requests] == [f"events:{snapshot}"]


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
        assert json.loads(result.cursor)["events"]["snapshot"] == first
        (materialization,) = result.asset_events
        assert materialization.asset_key == RAW_STAGING
        assert materialization.partition == "events"

        unchanged, _ = _raw_sensor(instance, settings, cursor=result.cursor)
        assert isinstance(unchanged, dg.SkipReason)  # no new data -> no work

        second = append_raw(catalog, [raw_row("m2", event("k2"))])
        newer, _ = _raw_sensor(instance, settings, cursor=result.cursor)
        assert json.loads(newer.cursor)["events"]["snapshot"] == second
        assert [r.run_key for r in newer.run_requests] == [f"events:{second}"]


def test_raw_sensor_reads_a_legacy_cursor_and_requests_only_what_is_newer(
    settings, registry, catalog
):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("topics", ["events"])
        first = append_raw(catalog, [raw_row("m1", event("k1"))])
        legacy = json.dumps({"events": first})  # the cursor before metadata locations
        result, _ = _raw_sensor(instance, settings, cursor=legacy)
        assert not result.run_requests and not result.asset_events
        second = append_raw(catalog, [raw_row("m2", event("k2"))])
        result, _ = _raw_sensor(instance, settings, cursor=legacy)
        assert [r.run_key for r in result.run_requests] == [f"events:{second}"]


def _replace_snapshot(catalog, identifier) -> int:
    """What Spark's ``rewrite_data_files`` (or ``rewrite_manifests``) commits: the same rows in
    new files, a ``replace`` snapshot. pyiceberg writes no ``replace`` itself, so this is its
    overwrite with the operation Spark would record."""
    from pyiceberg.table.snapshots import Operation, Summary
    from pyiceberg.table.update.snapshot import _OverwriteFiles

    from leanops_dagster.iceberg.datafiles import write_data_files

    class _Rewrite(_OverwriteFiles):
        def _summary(self, snapshot_properties=None) -> Summary:
            summary = super()._summary(snapshot_properties or {})
            return Summary(operation=Operation.REPLACE, **summary.additional_properties)

    table = catalog.load_table(identifier)
    tasks = list(table.scan().plan_files())
    rows = table.scan().to_arrow()
    with table.transaction() as tx, _Rewrite(
        operation=Operation.OVERWRITE, transaction=tx, io=table.io
    ) as rewrite:
        for task in tasks:
            rewrite.delete_data_file(task.file)
        for data_file in write_data_files(
            tx.table_metadata, table.io, rows, write_uuid=rewrite.commit_uuid
        ).files:
            rewrite.append_data_file(data_file)
    snapshot = catalog.load_table(identifier).current_snapshot()
    assert snapshot.summary.operation == Operation.REPLACE
    return snapshot.snapshot_id


def test_a_foreign_commit_on_raw_requests_no_run(settings, registry, catalog):
    """Compaction (a ``replace`` snapshot), a tag, a property, expired snapshots: each changes
    RAW's metadata but no data, so none requests a topic run; the next append does."""
    raw = TopicTables("events").raw
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("topics", ["events"])
        append_raw(catalog, [raw_row("m1", event("k1"))])
        second = append_raw(catalog, [raw_row("m2", event("k2"))])
        result, _ = _raw_sensor(instance, settings)
        assert [r.run_key for r in result.run_requests] == [f"events:{second}"]
        cursor = result.cursor

        def foreign(commit) -> None:
            nonlocal cursor
            before = catalog.load_table(raw).metadata_location
            commit(catalog.load_table(raw))
            assert catalog.load_table(raw).metadata_location != before  # it did commit
            tick, _ = _raw_sensor(instance, settings, cursor=cursor)
            assert not tick.run_requests and not tick.asset_events
            assert json.loads(tick.cursor) != json.loads(cursor)  # seen: not looked at again
            cursor = tick.cursor

        replaced = _replace_snapshot(catalog, raw)
        tick, _ = _raw_sensor(instance, settings, cursor=cursor)
        assert not tick.run_requests and not tick.asset_events  # the compaction: no run
        assert json.loads(tick.cursor)["events"]["snapshot"] == replaced
        cursor = tick.cursor
        foreign(lambda t: t.manage_snapshots().create_tag(replaced, "audit").commit())
        foreign(lambda t: t.transaction().set_properties({"owner": "ops"}).commit_transaction())
        foreign(lambda t: t.maintenance.expire_snapshots().by_ids([second]).commit())
        _replace_snapshot(catalog, raw)  # a second compaction, rewriting the first's files
        tick, _ = _raw_sensor(instance, settings, cursor=cursor)
        assert not tick.run_requests and not tick.asset_events
        cursor = tick.cursor

        third = append_raw(catalog, [raw_row("m3", event("k3"))])
        newer, _ = _raw_sensor(instance, settings, cursor=cursor)
        assert [r.run_key for r in newer.run_requests] == [f"events:{third}"]
        (materialization,) = newer.asset_events
        assert materialization.metadata["snapshot_id"].value == str(third)


def test_a_tick_over_100_unchanged_topics_reads_no_table_metadata(
    settings, registry, catalog, monkeypatch
):
    """The cursor keeps each RAW table's metadata location; the catalog lists the current ones
    in one query, so an unchanged topic costs no metadata file read, however many topics."""
    from pyiceberg.serializers import FromInputFile

    topics = [f"t{i:03d}" for i in range(100)]
    for topic in topics:
        append_raw(catalog, [raw_row(f"{topic}-1", event("k1"), topic=topic)], topic=topic)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("topics", topics)
        first, _ = _raw_sensor(instance, settings)
        requested = {r.partition_key for r in first.run_requests}
        while len(requested) < 100:  # a few runs per tick, the rest on the next ticks
            first, _ = _raw_sensor(instance, settings, cursor=first.cursor)
            assert len(first.run_requests) == RUN_REQUESTS_PER_TICK
            requested |= {r.partition_key for r in first.run_requests}

        reads: list[str] = []
        original = FromInputFile.table_metadata

        def counted(input_file, *args, **kwargs):
            reads.append(input_file.location)
            return original(input_file, *args, **kwargs)

        monkeypatch.setattr(FromInputFile, "table_metadata", staticmethod(counted))
        unchanged, _ = _raw_sensor(instance, settings, cursor=first.cursor)
        assert isinstance(unchanged, dg.SkipReason)
        assert reads == []  # not one metadata file opened for 100 unchanged topics

        append_raw(catalog, [raw_row("t042-2", event("k2"), topic="t042")], topic="t042")
        reads.clear()
        one, _ = _raw_sensor(instance, settings, cursor=first.cursor)
        assert [r.partition_key for r in one.run_requests] == ["t042"]
        assert len(reads) == 1 and "t042_staging" in reads[0]  # the changed table only


def test_a_schema_gate_tick_reads_only_redeployed_schemas(settings, tmp_schemas, monkeypatch):
    import shutil

    from leanops_dagster.schemas.registry import SchemaRegistry
    from leanops_dagster.settings import get_settings

    for i in range(20):
        shutil.copytree(tmp_schemas / "events", tmp_schemas / f"t{i:02d}")
    settings = get_settings(home=settings.home, schema_registry=str(tmp_schemas))
    registry = SchemaRegistry.from_settings(settings)
    catalog = open_catalog(settings)
    for i in range(20):
        registry.deploy(f"t{i:02d}")
        append_raw(catalog, [raw_row("m1", event("k1"), topic=f"t{i:02d}")], topic=f"t{i:02d}")
    with dg.instance_for_test() as instance:
        first, _ = _gate(instance, settings)  # a few runs per tick; all 20 partitions
        assert len(first.run_requests) == RUN_REQUESTS_PER_TICK
        assert len(first.dynamic_partitions_requests[0].partition_keys) == 20
        instance.add_dynamic_partitions("topics", [f"t{i:02d}" for i in range(20)])
        requested = [r.partition_key for r in first.run_requests]
        for _ in range(20):  # the next ticks request the rest, a few at a time
            tick, _ = _gate(instance, settings, cursor=first.cursor)
            if isinstance(tick, dg.SkipReason):
                break
            assert 0 < len(tick.run_requests) <= RUN_REQUESTS_PER_TICK
            requested += [r.partition_key for r in tick.run_requests]
            first = tick
        assert sorted(requested) == [f"t{i:02d}" for i in range(20)]
        reads: list[str] = []
        original = SchemaRegistry.deployed

        def counted(self, topic):
            reads.append(topic)
            return original(self, topic)

        monkeypatch.setattr(SchemaRegistry, "deployed", counted)
        again, _ = _gate(instance, settings, cursor=first.cursor)
        assert isinstance(again, dg.SkipReason) and reads == []


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


def test_tick_metrics_publish_each_instigators_longest_tick_since_the_cursor(monkeypatch):
    """What Dagster recorded of each sensor's ticks becomes one TickSeconds datum per sensor
    (its longest tick that ended since the last tick of this sensor)."""
    from types import SimpleNamespace

    from leanops_dagster.resources.metrics import PipelineMetricsResource
    from leanops_dagster.sensors.tick_metrics import tick_metrics_sensor

    def tick(start: float, end: float | None):
        return SimpleNamespace(timestamp=start, end_timestamp=end)

    ticks = {
        "raw_snapshot_sensor": [tick(1000, 1000.4), tick(1010, 1013.5), tick(900, 901)],
        "schema_gate_sensor": [tick(1005, 1005.2), tick(1050, None)],  # one still running
    }
    states = [SimpleNamespace(instigator_name=name, instigator_origin_id=name, selector_id=name)
              for name in ticks]
    instance = SimpleNamespace(all_instigator_state=lambda: states,
                               get_ticks=lambda origin, selector, after: ticks[origin])
    published = []
    monkeypatch.setattr(PipelineMetricsResource, "put",
                        lambda self, metrics, log: published.extend(metrics) or True)
    monkeypatch.setattr("time.time", lambda: 1100.0)
    context = dg.build_sensor_context(cursor="950", resources={
        "metrics": PipelineMetricsResource()})
    monkeypatch.setattr(type(context), "instance", property(lambda self: instance))
    result = tick_metrics_sensor(context)
    assert result.cursor == "1100.0"
    assert {(m.name, m.dimensions["Instigator"], m.value, m.unit) for m in published} == {
        ("TickSeconds", "raw_snapshot_sensor", 3.5, "Seconds"),
        ("TickSeconds", "schema_gate_sensor", 0.2, "Seconds"),
    }
