"""The job-only artifact (infra/scripts/package_spark_job.py) in a clean virtual environment:
installed with the library versions AWS documents for Glue 5.1 (infra/spark-job/platforms.toml)
and nothing of Dagster, it runs the job's entry point against the local Spark session through
Dagster Pipes, with the figures the Arrow engine gets from the same RAW rows.

The environment is what a Glue 5.1 worker has plus the artifact: Python 3.11, the job wheel,
``requirements-emr.txt`` (the job's whole closure at Glue's pins; Glue ships part of it, EMR's
image installs all of it) and pyspark (the platform's Spark; here the locked 3.5.7 beside AWS's
3.5.6). Installing needs the package index or uv's cache (the wheel itself is built here)."""

from __future__ import annotations

import importlib.util
import json
import subprocess

import dagster as dg
import pytest

from leanops_dagster.definitions import build_definitions
from leanops_dagster.engines.spark import jars
from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.schemas.registry import SchemaRegistry
from leanops_dagster.settings import REPO_ROOT, get_settings
from tests.dagster.conftest import append_raw, event, raw_row
from tests.spark.conftest import JARS_CACHE, TEST_SPARK_CONF

ROWS = [
    raw_row("m1", event("k1")), raw_row("m2", event("k1", minutes=3)),
    raw_row("m2", event("k1", minutes=3)), raw_row("m3", event("k2", minutes=1)),
    raw_row("x", "not json"),
]
#: the figures each layer reports, whatever the engine
FIGURES = ("rows_read", "rows_written", "parse_errors", "duplicates", "quarantined", "inserted",
           "updated", "superseded", "cde_error_rows", "dagster/row_count")


def _packaging():
    spec = importlib.util.spec_from_file_location(
        "package_spark_job", REPO_ROOT / "infra" / "scripts" / "package_spark_job.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def job_venv(tmp_path_factory):
    """A Python 3.11 venv with the artifact and the platform's libraries, nothing else."""
    packaging = _packaging()
    out = tmp_path_factory.mktemp("artifact")
    made = packaging.build(out, wheels=False)
    venv = tmp_path_factory.mktemp("job-venv") / "venv"
    uv = packaging._uv()
    python = packaging.platforms()["glue"]["python"]
    subprocess.run([uv, "venv", "--quiet", "--python", python, str(venv)], check=True)
    pyspark = f"pyspark=={packaging.locked_versions()['pyspark']}"
    subprocess.run(  # nosec B603: fixed argv
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
         str(made["wheel"]), "-r", str(made["requirements_emr_serverless"]), pyspark],
        check=True, timeout=900,
    )
    return venv / "bin" / "python", made, packaging


def _installed(python) -> dict[str, str]:
    listing = subprocess.run([str(python), "-c", (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))"
    )], check=True, capture_output=True, text=True).stdout
    return json.loads(listing)


def test_the_artifact_is_the_job_its_dependencies_and_the_platforms_versions(job_venv):
    python, made, packaging = job_venv
    installed = _installed(python)
    glue = {packaging.requirement_name(p): p.split("==")[1]
            for p in packaging.platforms()["glue"]["provided"]}
    for name in ("pyarrow", "pandas", "numpy", "boto3", "botocore", "orjson"):
        assert installed[name] == glue[name], name  # Glue 5.1's own, not a second copy
    assert installed["dagster-pipes"] == packaging.locked_versions()["dagster-pipes"]
    assert not {"dagster", "dagster-aws", "dagster-webserver", "moto"} & set(installed)
    # Glue gets only what it does not ship: no pyarrow, pandas, numpy, boto3 in its list
    glue_list = made["requirements_glue"].read_text()
    for shipped in ("pyarrow==", "pandas==", "numpy==", "boto3==", "pyspark"):
        assert f"\n{shipped}" not in glue_list
    assert "\npyiceberg==" in glue_list and "\ndagster-pipes==" in glue_list
    # the job wheel carries the modules the job imports, none of the Dagster ring
    import zipfile

    with zipfile.ZipFile(made["wheel"]) as wheel:
        names = set(wheel.namelist())
    assert "leanops_dagster/engines/spark/job.py" in names
    assert "leanops_dagster/pipeline/layer_run.py" in names
    assert not [n for n in names if n.startswith(("leanops_dagster/assets/",
                                                  "leanops_dagster/local/",
                                                  "leanops_dagster/cli/"))]
    assert "leanops_dagster/resources/spark_launch.py" not in names
    # the job's own imports resolve in it (the core ring, dagster_pipes, pyspark)
    subprocess.run([str(python), "-c", "import leanops_dagster.engines.spark.job"], check=True)


def _run_topic(settings) -> tuple[dg.ExecuteInProcessResult, dg.DagsterInstance]:
    SchemaRegistry.from_settings(settings).deploy("events")
    append_raw(open_catalog(settings), ROWS)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("topics", ["events"])
    job = build_definitions(settings).resolve_job_def("topic_pipeline")
    return job.execute_in_process(instance=instance, partition_key="events"), instance


def _figures(result) -> dict[str, dict]:
    out = {}
    for event_ in result.get_asset_materialization_events():
        materialization = event_.step_materialization_data.materialization
        metadata = {k: v.value for k, v in materialization.metadata.items()}
        out[materialization.asset_key.to_user_string()] = {
            k: metadata[k] for k in FIGURES if k in metadata}
    return out


def _checks(result) -> dict[str, bool]:
    return {f"{e.asset_key.to_user_string()}:{e.check_name}": e.passed
            for e in result.get_asset_check_evaluations()}


def test_the_job_in_the_artifacts_venv_reports_the_arrow_engines_figures_over_pipes(
    spark_installed, job_venv, tmp_path, monkeypatch
):
    python, _, _ = job_venv
    arrow, _ = _run_topic(get_settings(home=tmp_path / "arrow", engine="arrow"))
    assert arrow.success

    local_jars = [str(p) for p in jars.local_jars(JARS_CACHE, jdbc=(jars.SQLITE_JDBC_JAR,))]
    for name, value in {  # what the job subprocess reads of its own environment
        "HOME": str(tmp_path / "spark"), "SPARK_JARS": json.dumps(local_jars),
        "SPARK_CONF": json.dumps(TEST_SPARK_CONF),
    }.items():
        monkeypatch.setenv(f"LEANOPS_{name}", value)
    spark, instance = _run_topic(get_settings(
        home=tmp_path / "spark", engine="spark", spark_launcher="pipes_subprocess",
        spark_job_python=str(python),
    ))
    assert spark.success

    figures = _figures(spark)
    assert figures == _figures(arrow)
    assert figures["standardized/records"]["rows_read"] == 5
    assert figures["curated/records"]["superseded"] == 1
    assert _checks(spark) == _checks(arrow) and all(_checks(spark).values())
    # the job that reported them ran in the venv's interpreter (its log line says which), on
    # Spark
    logs = [entry.user_message for entry in instance.all_logs(spark.run_id)]
    assert [m for m in logs if m.startswith("Spark engine: ") and m.endswith(f", {python})")]
    catalog = open_catalog(get_settings(home=tmp_path / "spark"))
    table = catalog.load_table(TopicTables("events").curated)
    assert table.current_snapshot().summary.additional_properties["engine-name"] == "spark"
