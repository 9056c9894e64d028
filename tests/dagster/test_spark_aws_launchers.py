"""The Glue and EMR Serverless launchers (resources/spark_launch.py) against moto.

moto records the job runs but never executes a script, so each test's Glue / EMR client is
moto's with one addition: ``start_job_run`` first runs the real job entry point
(``engines.spark.job.main``) with exactly what the launcher sent, the way the platform would
(Glue: the run's arguments on the command line; EMR Serverless: the ``driverEnv`` confs as
environment). The job's layer run is the Arrow engine's (no Spark here), so the round trip
Dagster -> S3 context -> job -> S3 messages -> Dagster carries real metadata and check results
into a real Dagster run.
"""

from __future__ import annotations

import re
import sys

import boto3
import dagster as dg
import pytest
from dagster_pipes import PipesContext, decode_param
from moto import mock_aws

from leanops_dagster.definitions import build_definitions
from leanops_dagster.engines.choice import run_curate, run_standardize
from leanops_dagster.engines.spark import job
from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.pipeline.known_drift import known_drift
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.materialization import curated_report, standardized_report
from leanops_dagster.resources import spark_launch as launch
from leanops_dagster.schemas.registry import SchemaRegistry
from leanops_dagster.settings import get_settings
from tests.dagster.conftest import append_raw, event, raw_row

BUCKET = "lean-ops-dev-warehouse"
PREFIX = "dagster-pipes/"
WHEEL = f"s3://{BUCKET}/spark/leanops_dagster_spark_job-0.1.0.gluewheels.zip"
SCRIPT = f"s3://{BUCKET}/spark/job.py"
JOB_NAME = "lean-ops-dev-spark-engine"
ROLE = "arn:aws:iam::123456789012:role/lean-ops-dev-spark-job"
PII_SECRET = "job-side-pii-key"


def arrow_layer(topic: str, layer: str, settings):
    """The job's layer run, on the Arrow engine (what ``job.run_job_layer`` does on Spark)."""
    catalog = open_catalog(settings)
    schema = SchemaRegistry.from_settings(settings).load(topic)
    tables = TopicTables(topic, settings.namespace_prefix)
    if layer == "standardized":
        return standardized_report(
            run_standardize(catalog, tables, schema, engine="arrow"), tables, catalog
        )
    result = run_curate(
        catalog,
        tables,
        schema,
        engine="arrow",
        pii_key=settings.pii_hash_key.get_secret_value().encode(),
    )
    return curated_report(
        result, tables, schema, known_drift(catalog, tables, schema.curated), catalog
    )


class Platform:
    """moto's Glue or EMR Serverless client whose ``start_job_run`` also runs the job."""

    def __init__(
        self, client, kind: str, monkeypatch, seen: list, *, fail: bool = False,
        interrupt: bool = False,
    ):
        self._client, self._kind, self._monkeypatch = client, kind, monkeypatch
        self.requests: list[dict] = []
        self._seen, self._fail, self._interrupt = seen, fail, interrupt
        #: (job run id) of each stop / cancel request the launcher sent
        self.stopped: list[str] = []
        #: the job run id of each run started
        self.started: list[str] = []
        self._polls = 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def start_job_run(self, **params):
        self.requests.append(params)
        if not (self._fail or self._interrupt):
            self._run_job(params)
        response = self._client.start_job_run(**params)
        self.started.append(response.get("JobRunId") or response["jobRunId"])
        if self._fail:
            self._mark_failed(response)
        return response

    def get_job_run(self, **params):
        """With ``interrupt``: the Dagster run is terminated while the client waits for the job
        (Dagster raises this in the step; Glue's client reads the run once before it waits)."""
        self._polls += 1
        if self._interrupt and self._polls >= (2 if self._kind == "glue" else 1):
            from dagster._core.errors import DagsterExecutionInterruptedError

            raise DagsterExecutionInterruptedError("the Dagster run was terminated")
        return self._client.get_job_run(**params)

    def batch_stop_job_run(self, JobName, JobRunIds):  # Glue
        self.stopped += JobRunIds
        return {"SuccessfulSubmissions": [{"JobName": JobName, "JobRunId": r} for r in JobRunIds],
                "Errors": []}

    def cancel_job_run(self, applicationId, jobRunId):  # EMR Serverless
        self.stopped.append(jobRunId)
        return self._client.cancel_job_run(applicationId=applicationId, jobRunId=jobRunId)

    def get_dashboard_for_job_run(self, **params):  # EMR Serverless; moto lacks it
        return {"url": f"https://dashboard.example/{params['jobRunId']}"}

    def _run_job(self, params: dict) -> None:
        argv = ["job.py"]
        if self._kind == "glue":
            for key, value in params["Arguments"].items():
                argv += [key, value]
        else:
            submit = params["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"]
            for name, value in re.findall(r"spark\.emr-serverless\.driverEnv\.(\w+)=(\S+)", submit):
                self._monkeypatch.setenv(name, value)
        self._monkeypatch.setattr(sys, "argv", argv)
        self._monkeypatch.setattr(PipesContext, "_instance", None)  # one job per process

        def layer(topic, layer, settings):
            self._seen.append(settings)
            return arrow_layer(topic, layer, settings)

        self._monkeypatch.setattr(job, "run_job_layer", layer)
        job.main()
        for name in ("DAGSTER_PIPES_CONTEXT", "DAGSTER_PIPES_MESSAGES"):
            self._monkeypatch.delenv(name, raising=False)

    def _mark_failed(self, response: dict) -> None:
        if self._kind == "glue":
            from moto.glue.models import glue_backends

            backend = glue_backends["123456789012"]["us-east-1"]
            run = backend.get_job_run(JOB_NAME, response["JobRunId"])
            run.status = "FAILED"
        else:
            from moto.emrserverless.models import emrserverless_backends

            backend = emrserverless_backends["123456789012"]["us-east-1"]
            backend.get_job_run(response["applicationId"], response["jobRunId"]).state = "FAILED"


@pytest.fixture
def aws(tmp_path, monkeypatch):
    """moto for S3, Glue, EMR Serverless, Secrets Manager; a deployed topic with RAW rows."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        glue = boto3.client("glue", region_name="us-east-1")
        glue.create_job(
            Name=JOB_NAME,
            Role=ROLE,
            GlueVersion="5.1",
            Command={"Name": "glueetl", "ScriptLocation": SCRIPT, "PythonVersion": "3"},
        )
        emr = boto3.client("emr-serverless", region_name="us-east-1")
        application = emr.create_application(
            name="lean-ops-dev-spark-engine", releaseLabel="emr-7.12.0", type="SPARK"
        )
        # moto accepts only "SPARK" but AWS answers GetApplication with "Spark", the one
        # spelling dagster-aws's client reads
        from moto.emrserverless.models import emrserverless_backends

        emrserverless_backends["123456789012"]["us-east-1"].applications[
            application["applicationId"]
        ].type = "Spark"
        secret = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="lean-ops-dev/dagster/pii-hash-key", SecretString=PII_SECRET
        )
        for name, value in {
            "HOME": str(tmp_path / "home"),
            "ENGINE": "spark",
            "SPARK_PIPES_BUCKET": BUCKET,
            "SPARK_PIPES_PREFIX": PREFIX,
            "SPARK_PIPES_POLL_SECONDS": "0.2",
            "SPARK_GLUE_JOB_NAME": JOB_NAME,
            "SPARK_JOB_WHEEL": WHEEL,
            "SPARK_JOB_SCRIPT": SCRIPT,
            "SPARK_EMR_JOB_ROLE_ARN": ROLE,
            "SPARK_EMR_APPLICATION_ID": application["applicationId"],
            "PII_HASH_KEY_SECRET_ARN": secret["ARN"],
        }.items():
            monkeypatch.setenv(f"LEANOPS_{name}", value)
        settings = get_settings()
        SchemaRegistry.from_settings(settings).deploy("events")
        append_raw(
            open_catalog(settings),
            [
                raw_row("m1", event("k1")),
                raw_row("m2", event("k1", minutes=3)),
                raw_row("m2", event("k1", minutes=3)),
                raw_row("x", "oops"),
            ],
        )
        yield s3


def _platform(monkeypatch, kind: str, **kwargs) -> tuple[Platform, list]:
    if kwargs.get("fail") or kwargs.get("interrupt"):
        # a job that failed or was stopped before it ran never sends Pipes' closed message:
        # Dagster's message reader then waits 10 s for late chunks, which here cannot come
        monkeypatch.setattr("dagster._core.pipes.utils.WAIT_FOR_LOGS_AFTER_EXECUTION_INTERVAL", 0)
    seen: list = []
    real = launch._boto3
    service = {"glue": "glue", "emr_serverless": "emr-serverless"}[kind]
    platform: dict = {}

    def clients(launch_, name):
        client = real(launch_, name)
        if name != service:
            return client
        platform.setdefault("it", Platform(client, kind, monkeypatch, seen, **kwargs))
        return platform["it"]

    monkeypatch.setattr(launch, "_boto3", clients)
    monkeypatch.setenv("LEANOPS_SPARK_LAUNCHER", kind)
    return platform, seen


def _run_pipeline():
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("topics", ["events"])
    job_def = build_definitions(get_settings()).resolve_job_def("topic_pipeline")
    return job_def.execute_in_process(
        instance=instance, partition_key="events", raise_on_error=False
    )


def _materializations(result) -> dict[str, dict]:
    return {
        m.asset_key.to_user_string(): {k: v.value for k, v in m.metadata.items()}
        for m in (
            e.step_materialization_data.materialization
            for e in result.get_asset_materialization_events()
        )
    }


def _assert_reported(result) -> dict[str, dict]:
    """The job's figures and checks arrived in the Dagster run, the tables hold its rows."""
    assert result.success
    metadata = _materializations(result)
    std, cur = metadata["standardized/records"], metadata["curated/records"]
    assert (std["rows_read"], std["rows_written"], std["parse_errors"], std["duplicates"]) == (
        4,
        2,
        1,
        1,
    )
    assert (cur["rows_read"], cur["inserted"], cur["superseded"]) == (2, 1, 1)
    assert std["dagster/table_name"] == "standardized.events"  # a text value kept its type over S3
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["post_raw_water_balance"].passed
    assert checks["curated_water_balance"].passed and checks["cde_error_rate"].passed
    assert "description" in checks["post_raw_water_balance"].metadata
    catalog = open_catalog(get_settings())
    assert len(catalog.load_table(TopicTables("events").curated).scan().to_arrow()) == 1
    return metadata


def _pipes_objects(s3) -> list[str]:
    listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return [o["Key"] for o in listed]


# --- the requests -----------------------------------------------------------------------------
def test_the_glue_request_names_the_job_its_wheel_and_iceberg():
    launch_ = launch.SparkJobLaunch(
        launcher="glue", glue_job_name=JOB_NAME, job_wheel=WHEEL, pipes_bucket=BUCKET
    )
    assert launch.glue_job_run(launch_) == {
        "JobName": JOB_NAME,
        "Arguments": {"--datalake-formats": "iceberg", "--additional-python-modules": WHEEL,
                      "--python-modules-installer-option": "--no-index"},
    }


def test_the_emr_request_names_application_role_script_and_iceberg():
    launch_ = launch.SparkJobLaunch(
        launcher="emr_serverless",
        emr_application_id="app1",
        emr_job_role_arn=ROLE,
        job_script=SCRIPT,
        pipes_bucket=BUCKET,
    )
    request = launch.emr_serverless_job_run(launch_, "events", "curated")
    assert (request["applicationId"], request["executionRoleArn"], request["name"]) == (
        "app1",
        ROLE,
        "leanops-curated-events",
    )
    submit = request["jobDriver"]["sparkSubmit"]
    assert submit["entryPoint"] == SCRIPT
    assert f"--conf spark.jars={launch.EMR_ICEBERG_JAR}" in submit["sparkSubmitParameters"]
    assert f"PYSPARK_PYTHON={launch.EMR_PYTHON}" in submit["sparkSubmitParameters"]


@pytest.mark.parametrize("launcher", ["glue", "emr_serverless"])
def test_a_launcher_missing_its_settings_names_them(launcher):
    launch_ = launch.SparkJobLaunch(launcher=launcher)
    with pytest.raises(launch.SparkLaunchMisconfigured, match="LEANOPS_SPARK_PIPES_BUCKET"):
        if launcher == "glue":
            launch.glue_job_run(launch_)
        else:
            launch.emr_serverless_job_run(launch_, "events", "curated")


# --- round trips through moto -------------------------------------------------------------------
def test_a_dagster_run_on_glue_gets_the_jobs_reports_through_s3(aws, monkeypatch):
    platform, seen = _platform(monkeypatch, "glue")
    metadata = _assert_reported(_run_pipeline())

    requests = platform["it"].requests
    assert [r["JobName"] for r in requests] == [JOB_NAME, JOB_NAME]  # Standardized, Curated
    for request in requests:
        arguments = request["Arguments"]
        assert arguments["--datalake-formats"] == "iceberg"
        assert arguments["--additional-python-modules"] == WHEEL
        assert arguments["--python-modules-installer-option"] == "--no-index"
        context = decode_param(arguments["--dagster-pipes-context"])
        messages = decode_param(arguments["--dagster-pipes-messages"])
        assert context["bucket"] == messages["bucket"] == BUCKET
        assert context["key"].startswith(PREFIX) and messages["key_prefix"].startswith(PREFIX)
    # what the job ran with: the Dagster run's settings, its own PII key from the secret
    assert [s.spark_launcher for s in seen] == ["glue", "glue"]
    assert {s.pii_hash_key.get_secret_value() for s in seen} == {PII_SECRET}
    assert metadata["curated/records"]["AWS Glue Job Name"] == JOB_NAME
    # the context files are gone; only message chunks stay, all under the prefix
    keys = _pipes_objects(aws)
    assert keys and all(k.startswith(PREFIX) and k.endswith(".json") for k in keys)
    assert not any(k.endswith("context.json") for k in keys)


def test_a_dagster_run_on_emr_serverless_gets_the_jobs_reports_through_s3(aws, monkeypatch):
    platform, seen = _platform(monkeypatch, "emr_serverless")
    metadata = _assert_reported(_run_pipeline())

    requests = platform["it"].requests
    assert len(requests) == 2
    for request in requests:
        assert request["executionRoleArn"] == ROLE
        assert request["jobDriver"]["sparkSubmit"]["entryPoint"] == SCRIPT
        assert (
            "spark.emr-serverless.driverEnv.DAGSTER_PIPES_CONTEXT="
            in (request["jobDriver"]["sparkSubmit"]["sparkSubmitParameters"])
        )
        assert request["tags"]["dagster/run-id"]  # the client tags the run with Dagster's
    assert [s.spark_launcher for s in seen] == ["emr_serverless", "emr_serverless"]
    assert "AWS EMR Serverless Job Run ID" in metadata["standardized/records"]
    assert all(k.startswith(PREFIX) for k in _pipes_objects(aws))


@pytest.mark.parametrize("launcher", ["glue", "emr_serverless"])
def test_a_failed_job_fails_the_dagster_run_and_commits_nothing(aws, monkeypatch, launcher):
    _platform(monkeypatch, launcher, fail=True)
    result = _run_pipeline()

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key.startswith("standardized")
    assert "FAILED" in str(failure.event_specific_data.error) or "failed" in str(
        failure.event_specific_data.error
    )
    assert not result.get_asset_materialization_events()
    catalog = open_catalog(get_settings())
    assert not catalog.table_exists(TopicTables("events").standardized)


@pytest.mark.parametrize("launcher", ["glue", "emr_serverless"])
def test_terminating_the_dagster_run_stops_the_job_run(aws, monkeypatch, launcher):
    """Cancelling the Dagster run while it waits for the job stops exactly that job run
    (Glue ``BatchStopJobRun``, EMR Serverless ``CancelJobRun``) and commits nothing."""
    platform, _ = _platform(monkeypatch, launcher, interrupt=True)
    result = _run_pipeline()

    assert not result.success
    started = platform["it"].started
    assert len(started) == 1  # Standardized was waiting; Curated never started
    assert platform["it"].stopped == started
    assert not result.get_asset_materialization_events()
    catalog = open_catalog(get_settings())
    assert not catalog.table_exists(TopicTables("events").standardized)


def test_a_cluster_session_gets_only_what_the_engine_needs_not_the_local_sessions_setup():
    """On Glue / EMR the platform gives master, jars and Python (job.run_job_layer's
    cluster_spark_session); the catalog, Iceberg's extensions and UTC come from the engine."""
    from leanops_dagster.engines.spark.session import engine_conf, spark_conf

    settings = get_settings(
        catalog_type="glue", warehouse=f"s3://{BUCKET}", spark_jars=["/opt/iceberg.jar"]
    )
    cluster, local = engine_conf(settings), spark_conf(settings)
    assert not {"spark.master", "spark.jars", "spark.pyspark.python"} & set(cluster)
    assert cluster["spark.sql.session.timeZone"] == "UTC"
    assert cluster["spark.sql.catalog.leanops.type"] == "glue"
    assert cluster.items() <= local.items()  # the local session is the same plus its setup
    assert local["spark.jars"] == "/opt/iceberg.jar"
