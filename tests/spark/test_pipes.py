"""The Spark job through Dagster Pipes: a real Dagster run launches it as a subprocess, which
reports the assets' materialization metadata and per-run check results back."""

from __future__ import annotations

import json

import dagster as dg

from leanops_dagster.definitions import build_definitions
from leanops_dagster.engines.spark.job import pipes_metadata
from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.schemas.registry import SchemaRegistry
from leanops_dagster.settings import get_settings
from tests.dagster.conftest import append_raw, event, raw_row
from tests.spark.conftest import JARS_CACHE

TABLES = TopicTables("events")


def test_metadata_values_keep_their_types_over_pipes():
    converted = pipes_metadata({
        "rows": 3, "watermark": dg.MetadataValue.text("42"),
        "columns": dg.MetadataValue.json(["a"]), "table": dg.MetadataValue.md("| a |"),
    })
    assert converted == {
        "rows": 3, "watermark": {"raw_value": "42", "type": "text"},
        "columns": {"raw_value": ["a"], "type": "json"},
        "table": {"raw_value": "| a |", "type": "md"},
    }


def test_a_column_schema_crosses_pipes_as_a_table_schema():
    from dagster._core.definitions.metadata.external_metadata import metadata_value_from_external

    schema = dg.TableSchema(columns=[
        dg.TableColumn("message_id", "string", description="the id",
                       constraints=dg.TableColumnConstraints(nullable=False)),
        dg.TableColumn("n", "long"),
    ])
    converted = pipes_metadata({"dagster/column_schema": schema})["dagster/column_schema"]
    assert converted["type"] == "table_schema"
    back = metadata_value_from_external(converted["raw_value"], converted["type"])
    assert back == dg.MetadataValue.table_schema(schema)


def test_a_dagster_run_launches_the_spark_job_and_gets_its_reports(
    spark_installed, tmp_path, monkeypatch
):
    """No session in this process: the job's subprocess starts its own."""
    for name, value in {
        "HOME": str(tmp_path / "home"), "ENGINE": "spark",
        "SPARK_LAUNCHER": "pipes_subprocess", "SPARK_JARS_DIR": str(JARS_CACHE),
        "SPARK_CONF": json.dumps({"spark.sql.shuffle.partitions": "2"}),
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
