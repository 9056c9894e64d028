"""Every zone's materialization carries Dagster's standard table metadata with one meaning:
``dagster/row_count`` is the table's total rows after the commit (the run's own counts are under
the layer's keys), ``dagster/table_name`` the Iceberg identifier, ``dagster/column_schema`` the
Iceberg schema."""

from __future__ import annotations

import dagster as dg

from leanops_dagster.assets.keys import CURATED, RAW_STAGING, STANDARDIZED
from leanops_dagster.assets.reporting import column_schema
from leanops_dagster.definitions import build_definitions
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.resources.catalog import IcebergCatalogResource
from leanops_dagster.sensors.raw_snapshots import raw_snapshot_sensor
from tests.dagster.conftest import append_raw, event, raw_row

TABLES = TopicTables("events")


def _run(settings, instance) -> dict[dg.AssetKey, dict]:
    job = build_definitions(settings).resolve_job_def("topic_pipeline")
    result = job.execute_in_process(instance=instance, partition_key="events")
    assert result.success
    return {
        m.asset_key: m.metadata
        for m in (
            e.step_materialization_data.materialization
            for e in result.get_asset_materialization_events()
        )
    }


def _total(catalog, identifier) -> int:
    summary = catalog.load_table(identifier).current_snapshot().summary
    return int(summary["total-records"])


def test_row_count_is_the_table_total_after_each_commit(settings, registry, catalog):
    registry.deploy("events")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("topics", ["events"])
    append_raw(catalog, [raw_row("m1", event("k1")), raw_row("m2", event("k2"))])
    first = _run(settings, instance)
    append_raw(catalog, [raw_row("m3", event("k3")), raw_row("m4", event("k1", minutes=5))])
    second = _run(settings, instance)

    std, cur = second[STANDARDIZED], second[CURATED]
    # this run's increment: 2 new Standardized rows; 1 Curated insert (k3), 1 update (k1)
    assert std["rows_written"].value == 2
    assert (cur["inserted"].value, cur["updated"].value) == (1, 1)
    # the tables' totals after the commit: 4 Standardized rows, 3 Curated keys
    assert first[STANDARDIZED]["dagster/row_count"].value == 2
    assert std["dagster/row_count"].value == 4 == _total(catalog, TABLES.standardized)
    assert first[CURATED]["dagster/row_count"].value == 2
    assert cur["dagster/row_count"].value == 3 == _total(catalog, TABLES.curated)
    assert "table" not in std and "table" not in cur
    assert std["dagster/table_name"].value == "standardized.events"
    assert cur["dagster/table_name"].value == "curated.events"
    for key, identifier in ((STANDARDIZED, TABLES.standardized), (CURATED, TABLES.curated)):
        shown = second[key]["dagster/column_schema"].value
        assert shown == column_schema(catalog.load_table(identifier).schema())
        assert "idempotency_key" in {c.name for c in shown.columns}


def test_the_raw_snapshot_reports_the_same_keys(settings, registry, catalog):
    registry.deploy("events")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("topics", ["events"])
    append_raw(catalog, [raw_row("m1", event("k1")), raw_row("m2", event("k2"))])
    append_raw(catalog, [raw_row("m3", event("k3"))])
    context = dg.build_sensor_context(
        instance=instance, resources={"catalog": IcebergCatalogResource.from_settings(settings)}
    )
    (materialization,) = raw_snapshot_sensor(context).asset_events
    assert materialization.asset_key == RAW_STAGING
    metadata = materialization.metadata
    assert metadata["dagster/row_count"].value == 3  # the table's total
    assert metadata["added_records"].value == 1  # this snapshot's own
    assert metadata["dagster/table_name"].value == "raw.events_staging"
    columns = {c.name: c for c in metadata["dagster/column_schema"].value.columns}
    assert list(columns) == [
        "message_id",
        "topic_name",
        "json_payload",
        "publish_time",
        "ingestion_ts",
    ]
    assert columns["publish_time"].type == "timestamptz"
