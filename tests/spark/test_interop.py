"""Spark's Iceberg JDBC catalog and pyiceberg's SQL catalog share one SQLite database: each
reads what the other wrote, snapshot summary properties included."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from leanops_dagster.engines.spark._pyspark_internals import collect_arrow
from leanops_dagster.engines.spark.commits import append_with_properties, with_commit_properties
from leanops_dagster.engines.spark.session import jdbc_catalog_properties, spark_conf
from leanops_dagster.iceberg.catalog import ensure_table, open_catalog
from leanops_dagster.iceberg.tables import RAW_STAGING_PARTITION_SPEC, RAW_STAGING_SCHEMA
from leanops_dagster.iceberg.watermarks import read_watermark, watermark_key
from leanops_dagster.settings import get_settings

T0 = dt.datetime(2026, 1, 19, 10, 0, tzinfo=dt.UTC)


def test_sqlalchemy_urls_map_to_the_same_database(tmp_path):
    db = tmp_path / "catalog.db"
    assert jdbc_catalog_properties(f"sqlite:///{db}") == {
        "type": "jdbc", "uri": f"jdbc:sqlite:{db}",
        "jdbc.init-catalog-tables": "false", "jdbc.busy_timeout": "30000"}
    assert jdbc_catalog_properties("postgresql+psycopg2://me:pw@127.0.0.1:5432/test") == {
        "type": "jdbc", "uri": "jdbc:postgresql://127.0.0.1:5432/test",
        "jdbc.user": "me", "jdbc.password": "pw"}


def test_maven_coordinates_replace_the_local_jars(tmp_path):
    settings = get_settings(home=tmp_path, spark_jars_packages="org.example:runtime:1.0")
    conf = spark_conf(settings)
    assert conf["spark.jars.packages"] == "org.example:runtime:1.0"
    assert "spark.jars" not in conf
    assert conf["spark.sql.catalog.leanops.type"] == "jdbc"
    assert conf["spark.sql.catalog.leanops.warehouse"] == settings.catalog_config["warehouse"]


def test_user_jvm_options_are_added_to_the_engines_own(tmp_path):
    """A user's (or the tests') JVM options must not drop UTC and the quiet log set-up."""
    settings = get_settings(home=tmp_path, spark_conf={
        "spark.driver.extraJavaOptions": "-XX:+UseSerialGC",
        "spark.executor.extraJavaOptions": "-Xss4m", "spark.sql.shuffle.partitions": "1"})
    conf = spark_conf(settings)
    driver = conf["spark.driver.extraJavaOptions"].split()
    assert driver[0] == "-Duser.timezone=UTC" and driver[-1] == "-XX:+UseSerialGC"
    assert any(option.startswith("-Dlog4j2.configurationFile=") for option in driver)
    assert conf["spark.executor.extraJavaOptions"] == "-Duser.timezone=UTC -Xss4m"
    assert conf["spark.sql.shuffle.partitions"] == "1"  # any other key replaces


def test_spark_reads_what_pyiceberg_wrote(spark, spark_settings):
    catalog = open_catalog(spark_settings)
    raw = ensure_table(
        catalog, ("raw", "events_staging"), RAW_STAGING_SCHEMA, RAW_STAGING_PARTITION_SPEC
    )
    rows = pa.Table.from_pylist(
        [{"message_id": f"m{i}", "topic_name": "events", "json_payload": "{}",
          "publish_time": T0 + dt.timedelta(days=i), "ingestion_ts": T0} for i in range(3)],
        schema=RAW_STAGING_SCHEMA.as_arrow(),
    )
    raw.append(rows, snapshot_properties={watermark_key("probe"): "7"})
    name = f"{spark_settings.catalog_name}.raw.events_staging"

    read = collect_arrow(spark.table(name).orderBy("message_id"))
    assert read.column("message_id").to_pylist() == ["m0", "m1", "m2"]
    assert read.column("publish_time").cast(pa.timestamp("us", "UTC")).to_pylist() == [
        T0 + dt.timedelta(days=i) for i in range(3)]
    summary = spark.sql(f"SELECT summary FROM {name}.snapshots").collect()[0]["summary"]
    assert summary[watermark_key("probe")] == "7"


def test_pyiceberg_reads_what_spark_appended_and_merged(spark, spark_settings):
    name = f"{spark_settings.catalog_name}.curated.versions"
    spark.sql(f"CREATE TABLE {name} (k STRING, v BIGINT) USING iceberg")
    append_with_properties(
        spark.createDataFrame([("a", 1), ("b", 2)], "k STRING, v BIGINT").writeTo(name),
        {watermark_key("upstream"): "11"},
    )
    with_commit_properties(spark, {watermark_key("upstream"): "12"}, lambda: spark.sql(
        f"MERGE INTO {name} t USING (SELECT 'a' AS k, 5L AS v UNION ALL SELECT 'c', 7L) s "
        "ON t.k = s.k WHEN MATCHED AND s.v > t.v THEN UPDATE SET * "
        "WHEN NOT MATCHED THEN INSERT *"
    ))

    table = open_catalog(spark_settings).load_table(("curated", "versions"))
    assert sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["k"]) == [
        {"k": "a", "v": 5}, {"k": "b", "v": 2}, {"k": "c", "v": 7}]
    assert read_watermark(table, "upstream") == 12
    first = table.snapshots()[0]
    assert first.summary.additional_properties[watermark_key("upstream")] == "11"


def test_a_failing_statement_raises_and_commits_nothing(spark, spark_settings):
    from pyspark.errors import AnalysisException

    name = f"{spark_settings.catalog_name}.curated.failing"
    spark.sql(f"CREATE TABLE {name} (k STRING) USING iceberg")
    with pytest.raises(AnalysisException, match="UNRESOLVED_COLUMN"):
        with_commit_properties(spark, {"leanops.x": "1"}, lambda: spark.sql(
            f"MERGE INTO {name} t USING (SELECT 1 AS nope) s ON t.k = s.missing "
            "WHEN NOT MATCHED THEN INSERT *"))
    assert open_catalog(spark_settings).load_table(("curated", "failing")).snapshots() == []


def _whole_stage_generated(spark) -> bool:
    plan = spark.range(3).selectExpr("id * 2 AS x")._jdf.queryExecution().executedPlan()
    return "*(1) Project" in plan.toString()  # ``*(n)``: a whole-stage generated operator


def test_the_test_session_interprets(spark):
    assert not _whole_stage_generated(spark)


def test_production_codegen_gives_a_test_the_engines_code_generation(spark, production_codegen):
    assert _whole_stage_generated(spark)
