"""The Spark job entry point: one layer run of one topic, reported to Dagster through Pipes.

Runs wherever Spark runs the project's wheel, with the same code and the same result:

    spark-submit leanops_dagster/engines/spark/job.py      # a cluster, or local[*]
    python -m leanops_dagster.engines.spark.job             # a Pipes subprocess (local)

Dagster's Pipes client (``dg.PipesSubprocessClient`` here; ``PipesGlueClient`` or
``PipesEMRServerlessClient`` in AWS, ``resources/spark_launch.py``) passes the run's context
and these extras: ``topic``, ``layer`` (``standardized`` or ``curated``) and ``settings``, the
Dagster run's ``Settings.spark_job_settings()`` (catalog, namespaces, schema registry, launcher:
a job on Glue or EMR needs no ``LEANOPS_*`` environment); the rest is the job's own Settings.
The PII key never travels: the job has it in ``LEANOPS_PII_HASH_KEY`` (local) or reads it
from ``pii_hash_key_secret_arn`` (AWS). The job runs the Spark engine's layer run, then reports
the same materialization metadata and per-run check results the in-process asset returns (one
``pipeline.materialization.RunReport`` builds both), with ``report_asset_materialization`` and
``report_asset_check``. A check's explanation travels as its ``description`` metadata entry
(Pipes check reports carry no description field). The job imports ``dagster-pipes`` and the
core only, never Dagster itself: a Glue or EMR worker needs neither the webserver nor the
daemon.

How the Pipes parameters arrive (``open_pipes``): Glue passes them as the job run's
arguments (``--dagster-pipes-context``/``--dagster-pipes-messages`` on the command line:
``PipesCliArgsParamsLoader``), EMR Serverless and the subprocess as environment variables
(``PipesEnvVarParamsLoader``). The AWS launchers put the context in S3 and read the messages
from S3 (``PipesS3ContextLoader`` / ``PipesS3MessageWriter`` here), since Glue's
stdout-to-CloudWatch path drops lines; the subprocess uses the default file channels.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from leanops_dagster.pipeline.materialization import (
    RunReport,
    curated_report,
    standardized_report,
    text,
)
from leanops_dagster.settings import CLUSTER_SPARK_LAUNCHERS, Settings, get_settings

LAYERS = ("standardized", "curated")


def report(pipes, run: RunReport) -> None:
    """Send a layer run's report (``pipeline.materialization``) through ``pipes``: its metadata as
    the materialization, each check outcome as a check result. The metadata is already in
    Pipes' wire form; a check's explanation travels as its ``description`` entry (Pipes check
    reports have no description field)."""
    pipes.report_asset_materialization(metadata=run.metadata)
    for check in run.checks:
        pipes.report_asset_check(
            check_name=check.name, passed=check.passed, severity=check.severity,
            metadata={**check.metadata, "description": text(check.description)},
        )


def run_job_layer(topic: str, layer: str, settings: Settings) -> RunReport:
    """Run ``layer`` of ``topic`` on Spark; the run's report (what the asset would return)."""
    from leanops_dagster.engines.spark.session import cluster_spark_session, spark_session
    from leanops_dagster.iceberg.catalog import open_catalog
    from leanops_dagster.pipeline.known_drift import known_drift
    from leanops_dagster.pipeline.layout import TopicTables
    from leanops_dagster.schemas.registry import SchemaRegistry

    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; expected one of {LAYERS}")
    on_cluster = settings.spark_launcher in CLUSTER_SPARK_LAUNCHERS
    # on Glue / EMR: the platform's session (its master, jars, Python), catalog added
    spark = cluster_spark_session(settings) if on_cluster else spark_session(settings)
    catalog = open_catalog(settings)
    schema = SchemaRegistry.from_settings(settings).load(topic)
    tables = TopicTables(topic, settings.namespace_prefix)
    if layer == "standardized":
        from leanops_dagster.engines.spark.standardize import standardize_topic_spark

        result = standardize_topic_spark(
            spark, catalog, tables, schema, lease_ttl_s=settings.lease_ttl_seconds
        )
        return standardized_report(result, tables, catalog)
    from leanops_dagster.engines.spark.curate import curate_topic_spark

    result = curate_topic_spark(
        spark, catalog, tables, schema, pii_key=settings.pii_hash_key.get_secret_value().encode(),
        lease_ttl_s=settings.lease_ttl_seconds,
    )
    drift = known_drift(catalog, tables, schema.curated)
    return curated_report(result, tables, schema, drift, catalog)


def open_pipes(settings: Settings):
    """``open_dagster_pipes`` with the loader and writer the launcher's parameters call for:
    CLI arguments (Glue) or environment (EMR Serverless, subprocess); S3 when the context or
    message parameters name a bucket (the AWS launchers), the default file channels else."""
    from dagster_pipes import (
        PipesCliArgsParamsLoader,
        PipesDefaultContextLoader,
        PipesDefaultMessageWriter,
        PipesEnvVarParamsLoader,
        PipesS3ContextLoader,
        PipesS3MessageWriter,
        open_dagster_pipes,
    )

    cli = PipesCliArgsParamsLoader()
    params = cli if cli.is_dagster_pipes_process() else PipesEnvVarParamsLoader()
    if not params.is_dagster_pipes_process():  # run by hand: dagster-pipes' own warning
        return open_dagster_pipes(params_loader=params)
    in_s3 = ("bucket" in params.load_context_params(), "bucket" in params.load_messages_params())
    if any(in_s3):
        import boto3

        # the platform's region (Glue and EMR set AWS_REGION); a local S3 endpoint if set
        s3 = boto3.client("s3", endpoint_url=settings.aws_endpoint_url)
    return open_dagster_pipes(
        params_loader=params,
        context_loader=PipesS3ContextLoader(s3) if in_s3[0] else PipesDefaultContextLoader(),
        message_writer=PipesS3MessageWriter(s3, interval=settings.spark_pipes_poll_seconds)
        if in_s3[1] else PipesDefaultMessageWriter(),
    )


def job_settings(launched: Mapping[str, Any]) -> Settings:
    """The job's Settings: the Dagster run's ``launched`` fields over the job's environment;
    the PII key read from its Secrets Manager secret when one is named."""
    settings = get_settings(**launched)
    if settings.pii_hash_key_secret_arn:
        import boto3

        secrets = boto3.client(
            "secretsmanager", region_name=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
        )
        key = secrets.get_secret_value(SecretId=settings.pii_hash_key_secret_arn)["SecretString"]
        settings = settings.model_copy(update={"pii_hash_key": SecretStr(key)})
    return settings


def main() -> None:
    with open_pipes(get_settings()) as pipes:
        topic, layer = pipes.get_extra("topic"), pipes.get_extra("layer")
        settings = job_settings(pipes.extras.get("settings") or {})
        pipes.log.info(
            f"Spark engine: {layer} of {topic} ({settings.spark_launcher}, {sys.executable})"
        )
        report(pipes, run_job_layer(topic, layer, settings))


if __name__ == "__main__":
    main()
