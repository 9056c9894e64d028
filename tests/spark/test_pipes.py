"""The Spark job through Dagster Pipes: a real Dagster run launches it as a subprocess, which
reports the assets' materialization metadata and per-run check results back."""

from __future__ import annotations

import json

import dagster as dg
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, NestedField, StringType

from leanops_dagster.assets.reporting import dagster_metadata
from leanops_dagster.definitions import build_definitions
from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.pipeline import materialization
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.schemas.registry import SchemaRegistry
from leanops_dagster.settings import get_settings
from tests.dagster.conftest import append_raw, event, raw_row
from tests.spark.conftest import JARS_CACHE, TEST_SPARK_CONF

TABLES = TopicTables("events")


def test_report_values_are_what_dagster_makes_of_pipes_metadata():
    """The report's typed values are Pipes' wire form: Dagster's own reading of external
    metadata gives the very values the in-process asset reports (assets.reporting)."""
    from dagster._core.definitions.metadata.external_metadata import metadata_value_from_external

    schema = Schema(
        NestedField(1, "message_id", StringType(), required=True, doc="the id"),
        NestedField(2, "n", LongType(), required=False),
    )
    metadata = {
        "watermark": materialization.text(42), "columns": materialization.json_value(["a"]),
        "table": materialization.markdown("| a |"),
        "dagster/column_schema": materialization.column_schema(schema),
    }
    in_process = dagster_metadata(metadata)
    for name, entry in metadata.items():
        assert metadata_value_from_external(entry["raw_value"], entry["type"]) == in_process[name]
    assert in_process["watermark"] == dg.MetadataValue.text("42")
    columns = in_process["dagster/column_schema"].schema.columns
    assert [(c.name, c.type, c.description, c.constraints.nullable) for c in columns] == [
        ("message_id", "string", "the id", False), ("n", "long", None, True)]


def test_a_dagster_run_launches_the_spark_job_and_gets_its_reports(
    spark_installed, tmp_path, monkeypatch
):
    """No session in this process: the job's subprocess starts its own."""
    for name, value in {
        "HOME": str(tmp_path / "home"), "ENGINE": "spark",
        "SPARK_LAUNCHER": "pipes_subprocess", "SPARK_JARS_DIR": str(JARS_CACHE),
        "SPARK_CONF": json.dumps(TEST_SPARK_CONF),
    }.items():
        monkeypatch.setenv(f"LEANOPS_{name}", value)
    settings = get_settings()
    SchemaRegistry.from_settings(settings).deploy("events")
    catalog = open_catalog(settings)
    append_raw(catalog, [raw_row("m1", event("k1")), raw_row("m2", event("k1", minutes=3)),
                         raw_row("m2", event("k1", minutes=3)), raw_row("x", "oops")])

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("topics", ["events"])
    job = build_definitions(settings).resolve_job_def("topic_pipeline")
    result = job.execute_in_process(instance=instance, partition_key="events")

    assert result.success
    metadata = {
        event.asset_key.to_user_string(): {k: v.value for k, v in event.metadata.items()}
        for event in (e.step_materialization_data.materialization
                      for e in result.get_asset_materialization_events())
    }
    std, cur = metadata["standardized/records"], metadata["curated/records"]
    assert (std["rows_read"], std["rows_written"], std["parse_errors"], std["duplicates"]) == (
        4, 2, 1, 1)
    assert (cur["rows_read"], cur["inserted"], cur["superseded"]) == (2, 1, 1)
    # a text value kept its type over Pipes, and so did the column schema
    assert std["dagster/table_name"] == "standardized.events"
    assert "idempotency_key" in {c.name for c in std["dagster/column_schema"].columns}
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["post_raw_water_balance"].passed
    assert checks["curated_water_balance"].passed and checks["cde_error_rate"].passed
    assert "description" in checks["post_raw_water_balance"].metadata
    # the subprocess's Spark wrote both layers
    for identifier in (TABLES.standardized, TABLES.curated):
        summary = catalog.load_table(identifier).current_snapshot().summary
        assert summary.additional_properties["engine-name"] == "spark"
