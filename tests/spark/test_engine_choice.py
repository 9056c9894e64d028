"""Choosing the engine: LEANOPS_ENGINE, a topic's own ``engine``, and `leanops run` honouring
both. Spark stamps ``engine-name=spark`` in the summary of every snapshot it commits, which
tells who wrote each layer."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from leanops_dagster.cli import main
from leanops_dagster.engines.choice import engine_for
from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.schemas.loader import load_topic_dir
from leanops_dagster.schemas.registry import SchemaRegistry
from leanops_dagster.settings import REPO_ROOT, get_settings
from tests.dagster.conftest import append_raw, event, raw_row

TABLES = TopicTables("events")


def test_a_topic_engine_overrides_the_default(tmp_path):
    schema = load_topic_dir(REPO_ROOT / "schemas", "events")
    assert engine_for(schema, "arrow") == "arrow"
    assert engine_for(schema, "spark") == "spark"
    pinned = schema.model_copy(update={
        "curated": schema.curated.model_copy(update={"engine": "spark"})})
    assert engine_for(pinned, "arrow") == "spark"
    with pytest.raises(ValueError, match="unknown engine 'duckdb'"):
        engine_for(schema, "duckdb")
    with pytest.raises(ValueError, match="engine"):
        get_settings(home=tmp_path, engine="duckdb")


def _writer(catalog, identifier) -> str:
    snapshot = catalog.load_table(identifier).current_snapshot()
    return snapshot.summary.additional_properties.get("engine-name", "pyiceberg")


def _use(monkeypatch, settings, **env: str) -> None:
    monkeypatch.setenv("LEANOPS_CATALOG_NAME", settings.catalog_name)
    for name, value in env.items():
        monkeypatch.setenv(f"LEANOPS_{name.upper()}", value)


def test_leanops_run_honours_leanops_engine(spark_settings, monkeypatch):
    _use(monkeypatch, spark_settings, engine="spark")
    SchemaRegistry.from_settings(spark_settings).deploy("events")
    catalog = open_catalog(spark_settings)
    append_raw(catalog, [raw_row("m1", event("k1")), raw_row("m2", event("k1", minutes=3)),
                         raw_row("x", "oops")])

    ran = CliRunner().invoke(main, ["run", "--topic", "events"])
    assert ran.exit_code == 0, ran.output
    assert _writer(catalog, TABLES.standardized) == "spark"
    assert _writer(catalog, TABLES.curated) == "spark"
    report = CliRunner().invoke(main, ["report", "--topic", "events", "--json"])
    equations = {e["layer"]: e for e in json.loads(report.output)}
    assert equations["post-RAW"]["right"] == {
        "standardized": 2, "parse_errors": 1, "duplicates": 0, "quarantined": 0}
    assert equations["curated"]["right"] == {
        "curated": 1, "updates": 0, "superseded": 1, "cde_error_rows": 0, "quarantined": 0}
    assert all(e["balanced"] for e in equations.values())


def test_a_topic_pinned_to_spark_runs_on_spark_under_the_arrow_default(
    spark_settings, monkeypatch, tmp_path
):
    schemas = tmp_path / "schemas"
    shutil.copytree(REPO_ROOT / "schemas", schemas)
    curated = json.loads((schemas / "events" / "curated.json").read_text())
    (schemas / "events" / "curated.json").write_text(json.dumps({**curated, "engine": "spark"}))
    _use(monkeypatch, spark_settings, engine="arrow", schema_registry=str(schemas))
    settings = get_settings()
    SchemaRegistry.from_settings(settings).deploy("events")
    catalog = open_catalog(settings)
    append_raw(catalog, [raw_row("m1", event("k1"))])

    ran = CliRunner().invoke(main, ["run", "--topic", "events"])
    assert ran.exit_code == 0, ran.output
    assert _writer(catalog, TABLES.standardized) == "spark"
    assert _writer(catalog, TABLES.curated) == "spark"


def test_spark_runs_make_tables_of_an_older_version_fail_fast(spark, spark_settings):
    """A Standardized/Curated table an older version made keeps pyiceberg's and Iceberg Java's
    default blind commit retries, which rebase a stale append (a second copy of its rows): the
    Spark engine's runs, like the Arrow engine's, open their layer table fail-fast."""
    from pyiceberg.table import TableProperties

    from leanops_dagster.engines.choice import run_curate, run_standardize

    registry = SchemaRegistry.from_settings(spark_settings)
    registry.deploy("events")
    schema = registry.load("events")
    catalog = open_catalog(spark_settings)
    append_raw(catalog, [raw_row("m1", event("k1"))])
    run_standardize(catalog, TABLES, schema, engine="arrow")
    run_curate(catalog, TABLES, schema, engine="arrow", pii_key=b"k")
    for identifier in (TABLES.standardized, TABLES.curated):  # as an older version made them
        with catalog.load_table(identifier).transaction() as tx:
            tx.remove_properties(TableProperties.COMMIT_NUM_RETRIES)

    append_raw(catalog, [raw_row("m2", event("k2"))])
    assert run_standardize(catalog, TABLES, schema, engine="spark").rows_written == 1
    assert run_curate(catalog, TABLES, schema, engine="spark", pii_key=b"k").inserted == 1
    for identifier in (TABLES.standardized, TABLES.curated):
        properties = catalog.load_table(identifier).metadata.properties
        assert properties.get(TableProperties.COMMIT_NUM_RETRIES) == "0", identifier
        assert _writer(catalog, identifier) == "spark"
