"""Launch the Spark job (``engines.spark.job``) from an asset, with Dagster Pipes.

``LEANOPS_SPARK_LAUNCHER`` chooses how a Spark-engine run starts:

- ``session`` (default): in the asset's own process, on its SparkSession (``local[*]``, or a
  cluster's session when the Dagster process runs on one); nothing here is used;
- ``pipes_subprocess``: ``python -m leanops_dagster.engines.spark.job`` as a Pipes
  subprocess (``dg.PipesSubprocessClient``) with the Dagster process's environment (its
  interpreter, or ``LEANOPS_SPARK_JOB_PYTHON``: e.g. a job-only virtual environment): its own
  JVM and session, the materialization metadata and check results reported back over Pipes.
  Cancelling the Dagster run terminates the subprocess, and with it the Spark job.
- ``glue``: a run of the Glue 5.1 job ``LEANOPS_SPARK_GLUE_JOB_NAME`` (its script is
  ``job.py``; ``glue_job_run`` builds the request) through dagster-aws's ``PipesGlueClient``;
- ``emr_serverless``: a job run on the EMR Serverless application
  ``LEANOPS_SPARK_EMR_APPLICATION_ID`` (entry point ``LEANOPS_SPARK_JOB_SCRIPT``,
  ``emr_serverless_job_run``) through ``PipesEMRServerlessClient``.

Both AWS launchers put the Pipes context in S3 (``PipesS3ContextInjector``) and read the job's
messages from S3 (``PipesS3MessageReader``) under ``LEANOPS_SPARK_PIPES_BUCKET`` /
``LEANOPS_SPARK_PIPES_PREFIX``: Glue's stdout-to-CloudWatch path is known to drop lines, and a
lost line would be a lost materialization or check result. The run waits for the job, fails
when the job ends in any state but success (Glue: ``FAILED``/``STOPPED``/``TIMEOUT``/``ERROR``;
EMR Serverless: ``FAILED``/``CANCELLED``), and returns the job's own reported
``MaterializeResult`` with the client's metadata (job run id, job or application) added.

Cancelling the Dagster run cancels the job: Dagster interrupts the step with
``DagsterExecutionInterruptedError``, which both clients catch while they wait
(``forward_termination=True``, set explicitly here) to call Glue's ``BatchStopJobRun`` or EMR
Serverless's ``CancelJobRun`` on the run they started before re-raising (dagster-aws 0.29,
``dagster_aws/pipes/clients/glue.py`` ``_terminate_job_run`` and ``emr_serverless.py``
``_terminate``). Terraform grants the Dagster run role exactly those calls on exactly that job
and application (``infra/terraform/modules/spark``).

Every Pipes launcher passes the job the Dagster run's ``Settings.spark_job_settings()`` as the
``settings`` extra, so the job reads the same catalog, namespaces and schemas.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from pydantic import Field

from leanops_dagster.settings import Settings

LAUNCHERS = ("session", "pipes_subprocess", "glue", "emr_serverless")
#: the launchers that run ``job.py`` as a separate Pipes job
PIPES_LAUNCHERS = LAUNCHERS[1:]
JOB_MODULE = "leanops_dagster.engines.spark.job"
#: the interpreter of the EMR Serverless image (infra/emr-serverless/Dockerfile installs it and
#: the job artifact's wheels into it)
EMR_PYTHON = "/usr/bin/python3.11"
#: the Iceberg runtime EMR releases ship (EMR Serverless enables it with spark.jars)
EMR_ICEBERG_JAR = "/usr/share/aws/iceberg/lib/iceberg-spark3-runtime.jar"


class SparkLaunchMisconfigured(ValueError):
    """A Pipes launcher lacks a setting it needs; the message names the variables."""


class SparkJobLaunch(dg.Config):
    """Where and how a Pipes launcher starts the Spark job (from Settings)."""

    launcher: str = Field(default="session", description="LEANOPS_SPARK_LAUNCHER")
    pipes_bucket: str = Field(default="", description="LEANOPS_SPARK_PIPES_BUCKET")
    pipes_prefix: str = Field(default="dagster-pipes/", description="LEANOPS_SPARK_PIPES_PREFIX")
    poll_seconds: float = Field(default=10.0, description="LEANOPS_SPARK_PIPES_POLL_SECONDS")
    glue_job_name: str | None = Field(default=None, description="LEANOPS_SPARK_GLUE_JOB_NAME")
    emr_application_id: str | None = Field(
        default=None, description="LEANOPS_SPARK_EMR_APPLICATION_ID"
    )
    emr_job_role_arn: str | None = Field(default=None, description="LEANOPS_SPARK_EMR_JOB_ROLE_ARN")
    job_script: str | None = Field(default=None, description="LEANOPS_SPARK_JOB_SCRIPT")
    job_wheel: str | None = Field(default=None, description="LEANOPS_SPARK_JOB_WHEEL")
    job_python: str | None = Field(default=None, description="LEANOPS_SPARK_JOB_PYTHON")
    aws_region: str = Field(default="us-east-1", description="LEANOPS_AWS_REGION")
    aws_endpoint_url: str | None = Field(default=None, description="LEANOPS_AWS_ENDPOINT_URL")
    job_settings: str = Field(
        default="{}", description="JSON of Settings.spark_job_settings(): the job's settings"
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> SparkJobLaunch:
        return cls(
            launcher=settings.spark_launcher,
            pipes_bucket=settings.spark_pipes_bucket,
            pipes_prefix=settings.spark_pipes_prefix,
            poll_seconds=settings.spark_pipes_poll_seconds,
            glue_job_name=settings.spark_glue_job_name,
            emr_application_id=settings.spark_emr_application_id,
            emr_job_role_arn=settings.spark_emr_job_role_arn,
            job_script=settings.spark_job_script,
            job_wheel=settings.spark_job_wheel,
            job_python=settings.spark_job_python,
            aws_region=settings.aws_region,
            aws_endpoint_url=settings.aws_endpoint_url,
            job_settings=json.dumps(settings.spark_job_settings()),
        )

    def require(self, *names: str) -> None:
        missing = [n for n in names if not getattr(self, n)]
        if missing:
            variables = ", ".join(f"LEANOPS_SPARK_{n.upper()}" for n in missing)
            raise SparkLaunchMisconfigured(
                f"the {self.launcher} launcher needs {variables} (Terraform's "
                "dagster_settings_environment output has them)"
            )


class WholeLineFileMessageReader(dg.PipesMessageReader):
    """Dagster's temporary-file message reader, but it parses a message only once its line is
    whole. Dagster's own (``PipesFileMessageReader``, through ``tail_file``) parses whatever
    ``readline`` returns, and on a busy machine that is at times the first part of a line the
    job is still writing: the message is lost (``JSONDecodeError`` in the reader thread) and
    the step fails for an output it never received."""

    @contextmanager
    def read_messages(self, handler) -> Iterator[dict]:
        done = threading.Event()
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "messages")
            open(path, "w", encoding="utf-8").close()
            thread = threading.Thread(target=self._read, args=(path, handler, done), daemon=True)
            thread.start()
            try:
                yield {"path": path}  # the default writer's parameter (a file of JSON lines)
            finally:
                done.set()
                thread.join()

    @classmethod
    def _read(cls, path: str, handler, done: threading.Event) -> None:
        try:
            cls._read_lines(path, handler, done)
        except Exception:  # as Dagster's reader: reported to the run, then the thread ends
            handler.report_pipes_framework_exception(f"{cls.__name__} reader thread",
                                                     sys.exc_info())
            raise

    @staticmethod
    def _read_lines(path: str, handler, done: threading.Event) -> None:
        partial = ""
        with open(path, encoding="utf-8") as stream:
            while True:
                line = stream.readline()
                if line.endswith("\n"):
                    handler.handle_message(json.loads(partial + line))
                    partial = ""
                elif line:
                    partial += line  # the rest is being written
                elif done.is_set():
                    if partial.strip():
                        handler.handle_message(json.loads(partial))
                    return
                else:
                    time.sleep(0.01)

    def no_messages_debug_text(self) -> str:
        return "Attempted to read messages from a local temporary file."


def launch_spark_job(
    context: dg.AssetExecutionContext, topic: str, layer: str
) -> dg.MaterializeResult:
    """Run ``layer`` of ``topic`` as a Pipes job with the launcher of the asset's ``pipeline``
    resource; the materialization (metadata and check results) the job reported."""
    launch: SparkJobLaunch = context.resources.pipeline.spark_job
    extras = {"topic": topic, "layer": layer, "settings": json.loads(launch.job_settings)}
    if launch.launcher == "pipes_subprocess":
        invocation = dg.PipesSubprocessClient(message_reader=WholeLineFileMessageReader()).run(
            context=context, command=[launch.job_python or sys.executable, "-m", JOB_MODULE],
            extras=extras,
        )
    elif launch.launcher == "glue":
        invocation = _run_on_glue(context, launch, extras)
    elif launch.launcher == "emr_serverless":
        invocation = _run_on_emr_serverless(context, launch, topic, layer, extras)
    else:
        raise ValueError(f"launcher {launch.launcher!r} does not start a Pipes job")
    # with the client's own metadata (job run id, name, console URL) beside the job's figures
    return invocation.get_materialize_result()


# --- the requests ---------------------------------------------------------------------------
def glue_job_run(launch: SparkJobLaunch) -> dict[str, Any]:
    """``glue.start_job_run`` parameters (``PipesGlueClient`` adds the Pipes arguments).

    The run's own ``--additional-python-modules`` is the job artifact of this deployment
    (``infra/scripts/package_spark_job.py``: Glue's zip of wheels, the job's modules and the
    dependencies Glue 5.1 does not ship), installed with ``--no-index``, so a job run has the
    code of the Dagster image that started it and needs no package index; ``--datalake-formats
    iceberg`` loads Glue 5.1's Iceberg 1.10 runtime (all three also in the job's Terraform
    defaults)."""
    launch.require("glue_job_name", "pipes_bucket")
    arguments = {"--datalake-formats": "iceberg"}
    if launch.job_wheel:
        arguments["--additional-python-modules"] = launch.job_wheel
        arguments["--python-modules-installer-option"] = "--no-index"
    return {"JobName": launch.glue_job_name, "Arguments": arguments}


def emr_serverless_job_run(launch: SparkJobLaunch, topic: str, layer: str) -> dict[str, Any]:
    """``emr-serverless.start_job_run`` parameters (``PipesEMRServerlessClient`` adds the
    Pipes parameters as ``spark.emr-serverless.driverEnv.*``): the job script on the
    application's image (the job artifact's wheels installed for ``EMR_PYTHON``), with EMR's
    Iceberg runtime."""
    launch.require("emr_application_id", "emr_job_role_arn", "job_script", "pipes_bucket")
    conf = {
        "spark.jars": EMR_ICEBERG_JAR,
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": EMR_PYTHON,
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": EMR_PYTHON,
        "spark.executorEnv.PYSPARK_PYTHON": EMR_PYTHON,
    }
    return {
        "applicationId": launch.emr_application_id,
        "executionRoleArn": launch.emr_job_role_arn,
        "name": f"leanops-{layer}-{topic}",
        "jobDriver": {
            "sparkSubmit": {
                "entryPoint": launch.job_script,
                "sparkSubmitParameters": " ".join(f"--conf {k}={v}" for k, v in conf.items()),
            }
        },
    }


# --- the clients ----------------------------------------------------------------------------
def _boto3(launch: SparkJobLaunch, service: str):
    import boto3

    return boto3.client(
        service, region_name=launch.aws_region, endpoint_url=launch.aws_endpoint_url
    )


def _s3_pipes(launch: SparkJobLaunch):
    """Context injector and message reader, both under the Pipes prefix of the bucket."""
    from dagster_aws.pipes import PipesS3ContextInjector, PipesS3MessageReader

    class PrefixedS3MessageReader(PipesS3MessageReader):
        """dagster-aws's reader with its chunks under ``pipes_prefix`` (its own choice is a
        random top-level key, outside what the job roles may write)."""

        @contextmanager
        def get_params(self) -> Iterator[dict[str, Any]]:
            with super().get_params() as params:
                yield {**params, "key_prefix": f"{launch.pipes_prefix}{params['key_prefix']}"}

    s3 = _boto3(launch, "s3")
    return (
        PipesS3ContextInjector(
            bucket=launch.pipes_bucket, client=s3, key_prefix=launch.pipes_prefix
        ),
        PrefixedS3MessageReader(
            bucket=launch.pipes_bucket, client=s3, interval=launch.poll_seconds
        ),
    )


def _run_on_glue(context, launch: SparkJobLaunch, extras: dict[str, Any]):
    from dagster_aws.pipes import PipesGlueClient

    params = glue_job_run(launch)
    injector, reader = _s3_pipes(launch)
    client = PipesGlueClient(
        context_injector=injector,
        message_reader=reader,
        client=_boto3(launch, "glue"),
        forward_termination=True,
    )
    return client.run(context=context, start_job_run_params=params, extras=extras)


def _run_on_emr_serverless(
    context, launch: SparkJobLaunch, topic: str, layer: str, extras: dict[str, Any]
):
    from dagster_aws.pipes import PipesEMRServerlessClient

    params = emr_serverless_job_run(launch, topic, layer)
    injector, reader = _s3_pipes(launch)
    # the client warns that a non-CloudWatch reader gets no messages: that is about its
    # CloudWatch log tailing only; the S3 reader runs for the whole Pipes session
    client = PipesEMRServerlessClient(
        client=_boto3(launch, "emr-serverless"),
        context_injector=injector,
        message_reader=reader,
        forward_termination=True,
        poll_interval=launch.poll_seconds,
    )
    return client.run(context=context, start_job_run_params=params, extras=extras)
