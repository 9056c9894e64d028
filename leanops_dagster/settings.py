"""The one settings object. Nothing else in ``leanops_dagster`` reads the environment.

Local (embedded default): pyiceberg SQL catalog on SQLite and warehouse files under
``LEANOPS_HOME`` (default ``./.leanops``), schemas from the repository's ``schemas/`` folder, the
local stack's moto as the SQS/S3 endpoint and its ledger as the pre-RAW counts. AWS: set
``LEANOPS_CATALOG_TYPE=glue``, ``LEANOPS_WAREHOUSE=s3://...``,
``LEANOPS_SCHEMA_REGISTRY=s3://bucket/prefix`` and ``LEANOPS_ENVIRONMENT``; or, with the tables
in S3 Tables, ``LEANOPS_CATALOG_TYPE=s3tables`` and ``LEANOPS_WAREHOUSE=<table bucket ARN>``
(the Iceberg REST endpoint of S3 Tables, SigV4-signed: ``catalog_config``).
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from leanops_dagster import constants

REPO_ROOT = Path(__file__).resolve().parent.parent

#: The variable of ``Settings.pii_hash_key`` (prefix + field name). The pipeline resource takes
#: the key as ``dg.EnvVar`` of this name, so Dagster resolves it where the resource starts and
#: the UI shows the variable's name, never the key.
PII_HASH_KEY_ENV = "LEANOPS_PII_HASH_KEY"


#: Settings a Pipes-launched Spark job gets from the Dagster run (``spark_job_settings``), so
#: that a job on Glue or EMR Serverless needs no ``LEANOPS_*`` environment of its own.
SPARK_JOB_SETTINGS = (
    "environment", "namespace_prefix", "catalog_name", "catalog_type", "catalog_uri",
    "warehouse", "catalog_properties", "schema_registry", "aws_region", "aws_endpoint_url",
    "lease_ttl_seconds", "spark_launcher", "pii_hash_key_secret_arn",
)

#: Settings the layer runs of a Dagster run get from its definitions (``layer_run_settings``):
#: their process tuning and the in-process Spark session they start (``engines/choice.py``).
LAYER_RUN_SETTINGS = (
    *SPARK_JOB_SETTINGS, "home", "disable_thp", "spark_master", "spark_jars",
    "spark_jars_packages", "spark_jars_dir", "spark_conf",
)


#: the Spark launchers whose job runs on a cluster's own Spark session (resources/spark_launch.py)
CLUSTER_SPARK_LAUNCHERS = ("glue", "emr_serverless")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEANOPS_", extra="ignore", frozen=True)

    home: Path = Field(default=Path(".leanops"), description="All local state lives here.")
    environment: str = Field(default="local", pattern=r"^[a-z][a-z0-9]*$")
    namespace_prefix: str = Field(
        default="", description="Prepended to raw/standardized/curated, e.g. 'lean_ops_dev_'."
    )

    catalog_name: str = "leanops"
    catalog_type: Literal["sql", "glue", "rest", "s3tables"] = Field(
        default="sql",
        description="sql (embedded), glue (Glue Data Catalog), rest (an Iceberg REST server) or "
        "s3tables (the Iceberg REST endpoint of Amazon S3 Tables, SigV4-signed; the warehouse "
        "is the table bucket's ARN).",
    )
    catalog_uri: str | None = Field(
        default=None,
        description="SQL: a SQLAlchemy URL (default SQLite under home); REST: the server URL; "
        "s3tables: default https://s3tables.<bucket region>.amazonaws.com/iceberg.",
    )
    warehouse: str | None = Field(
        default=None,
        description="Default: file://<home>/warehouse; glue: s3://<bucket>; s3tables: the "
        "table bucket ARN (arn:aws:s3tables:<region>:<account>:bucket/<name>).",
    )
    catalog_properties: dict[str, str] = Field(
        default_factory=dict, description="Extra pyiceberg catalog properties (JSON)."
    )

    schema_registry: str = Field(
        default=str(REPO_ROOT / "schemas"),
        description="A directory of schema files, or s3://bucket/prefix in AWS.",
    )

    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = Field(
        default=None, description="Set to the local moto server; unset in AWS."
    )
    archive_bucket: str = Field(default="", description="DLQ archive bucket (default per env).")
    ingestion_counts: Literal["ledger", "cloudwatch"] = Field(  # default: see the validator
        description="Source of the pre-RAW balance's SQS-sent and Firehose-error counts: "
        "`cloudwatch` (SQS NumberOfMessagesSent per queue, the Firehose stream's failed rows) "
        "or `ledger` (the local stack's, under home; only the local definitions have it: the "
        "production definitions always read CloudWatch). Default: `ledger` in the `local` "
        "environment, `cloudwatch` elsewhere.",
    )

    pii_hash_key: SecretStr = Field(
        default=SecretStr("leanops-local-development-key"),
        description="Key of the HMAC used to mask PII columns in Curated.",
    )
    disable_thp: bool = Field(
        default=True,
        description="Turn transparent huge pages off in processes that run the layers "
        "(leanops_dagster/pipeline/process_tuning.py says why).",
    )
    engine: Literal["arrow", "spark"] = Field(
        default="arrow",
        description="Engine of the Standardized and Curated runs (a topic's schema may "
        "override it, see schemas/models.py `engine`).",
    )
    spark_master: str = Field(
        default="local[2]", description="Spark master of the local Spark engine session."
    )
    spark_jars: list[str] = Field(
        default_factory=list,
        description="Jars of the Spark session (JSON list of paths). Empty: the jars built "
        "from installed packages (engines/spark/jars.py), for machines without Maven.",
    )
    spark_jars_packages: str | None = Field(
        default=None,
        description="Maven coordinates for `spark.jars.packages` (machines with internet); "
        "replaces the locally built jars. e.g. engines.spark.jars.MAVEN_PACKAGES.",
    )
    spark_jars_dir: Path | None = Field(
        default=None, description="Cache of the locally built jars (default <home>/spark-jars)."
    )
    spark_job_python: str | None = Field(
        default=None, description="The interpreter of a pipes_subprocess job (e.g. a virtual "
        "environment with only the job artifact, infra/scripts/package_spark_job.py); default: "
        "the Dagster process's own.",
    )
    spark_launcher: Literal["session", "pipes_subprocess", "glue", "emr_serverless"] = Field(
        default="session",
        description="How a Spark-engine run starts: in the asset's process (session), or as a "
        "Dagster Pipes job running engines/spark/job.py: a local subprocess (pipes_subprocess), "
        "an AWS Glue job run (glue) or an EMR Serverless job run (emr_serverless); "
        "resources/spark_launch.py.",
    )
    # --- the AWS launchers (glue, emr_serverless): Terraform's modules/spark sets these --------
    spark_pipes_bucket: str = Field(
        default="", description="S3 bucket of the Pipes context and messages of Glue / EMR "
        "Serverless job runs (Terraform: the warehouse bucket)."
    )
    spark_pipes_prefix: str = Field(
        default="dagster-pipes/", pattern=r"^([A-Za-z0-9_.-]+/)*$",
        description="Key prefix of the Pipes context and messages in spark_pipes_bucket (the "
        "job roles may write only there); empty or ending in '/'.",
    )
    spark_pipes_poll_seconds: float = Field(
        default=10.0, gt=0, description="How often Dagster reads a running job's Pipes "
        "messages from S3 (and polls EMR Serverless for its state; Glue's is 5 s)."
    )
    spark_glue_job_name: str | None = Field(
        default=None, description="The Glue 5.1 job that runs engines/spark/job.py (glue)."
    )
    spark_emr_application_id: str | None = Field(
        default=None, description="The EMR Serverless application (emr_serverless)."
    )
    spark_emr_job_role_arn: str | None = Field(
        default=None, description="Execution role of the EMR Serverless job runs."
    )
    spark_job_script: str | None = Field(
        default=None, description="s3:// URI of engines/spark/job.py as uploaded by Terraform "
        "(EMR Serverless's entry point; the Glue job has it in its definition)."
    )
    spark_job_wheel: str | None = Field(
        default=None, description="s3:// URI of the job artifact, Glue's zip of wheels "
        "(infra/scripts/package_spark_job.py): each Glue run installs it "
        "(--additional-python-modules, --python-modules-installer-option --no-index)."
    )
    pii_hash_key_secret_arn: str | None = Field(
        default=None, description="Secrets Manager secret holding the PII key: a Spark job on "
        "Glue / EMR Serverless reads the key from it (the key itself never travels with a run)."
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict, description="Extra Spark configuration (JSON), applied last; "
        "the local session's spark.driver/executor.extraJavaOptions are appended to the "
        "engine's own (UTC, the quiet log configuration)."
    )
    backlog_threshold: int = Field(default=10_000, ge=1)
    freshness_minutes: int = Field(default=60, ge=1)
    lease_ttl_seconds: float = Field(
        default=600.0, ge=5.0,
        description="A layer run's per-topic lease expires this long after its last renewal "
        "(renewed every third of it), so a killed run blocks its topic at most this long.",
    )

    # --- operating it (alerts, metrics, schedules) --------------------------------------------
    alerts_sns_topic_arn: str | None = Field(
        default=None,
        description="SNS topic the alert sensors publish to (Terraform: the alarm topic); "
        "unset: alerts are log lines in the sensor ticks and the daemon's console.",
    )
    cloudwatch_metrics: bool = Field(
        default=False,
        description="Publish the pipeline metrics (Curated lag per topic, new drift columns) "
        "to CloudWatch; false: they are only logged.",
    )
    schedules_running: bool = Field(
        default=True,
        description="The accountability checks (every 15 minutes) and table maintenance "
        "(nightly) schedules start switched on; false leaves them off until turned on in the UI.",
    )

    # --- Snowflake (optional): refresh the analysts' Iceberg table after each Curated commit --
    snowflake_account: str | None = Field(
        default=None, description="Account identifier; with a token, enables the Snowflake "
        "refresh asset (docs/deploy.md, Snowflake)."
    )
    snowflake_token: SecretStr | None = Field(
        default=None, description="Programmatic access token (or OAuth token) for the SQL API."
    )
    snowflake_token_type: Literal["PROGRAMMATIC_ACCESS_TOKEN", "OAUTH", "KEYPAIR_JWT"] = (
        "PROGRAMMATIC_ACCESS_TOKEN"
    )
    snowflake_database: str | None = None
    snowflake_schema: str | None = None
    snowflake_table_template: str = Field(
        default="{topic}", description="Snowflake table name of a topic's Curated table."
    )
    snowflake_warehouse: str | None = None
    snowflake_role: str | None = None
    snowflake_url: str | None = Field(
        default=None, description="SQL API base URL (default https://<account>."
        "snowflakecomputing.com)."
    )

    @model_validator(mode="before")
    @classmethod
    def _default_ingestion_counts(cls, data: object) -> object:
        if isinstance(data, dict) and data.get("ingestion_counts") is None:
            local = data.get("environment", "local") == "local"
            data = {**data, "ingestion_counts": "ledger" if local else "cloudwatch"}
        return data

    @model_validator(mode="after")
    def _s3tables_warehouse_is_a_table_bucket(self) -> Settings:
        if self.catalog_type == "s3tables":
            s3tables_table_bucket(self.warehouse)  # raises ValueError with the expected form
        return self

    @model_validator(mode="after")
    def _snowflake_complete(self) -> Settings:
        given = {name: getattr(self, f"snowflake_{name}")
                 for name in ("account", "token", "database", "schema")}
        if any(given.values()) and not all(given.values()):
            missing = ", ".join(f"LEANOPS_SNOWFLAKE_{k.upper()}" for k, v in given.items()
                                if not v)
            raise ValueError(f"Snowflake is half configured: also set {missing}")
        return self

    def export_pii_hash_key(self) -> str:
        """Put this settings' PII key into ``PII_HASH_KEY_ENV`` of this process (and so of the
        processes it starts) and return the variable's name.

        Dagster resolves a ``dg.EnvVar`` from the environment of the process that initialises
        the resource and fails when it is unset; exporting here makes it resolve to the key
        these settings decided: the variable's own value in AWS (Secrets Manager), the
        embedded development key when nothing is set (``leanops demo``, ``leanops run``,
        ``dagster dev``), an explicit override in tests.
        """
        os.environ[PII_HASH_KEY_ENV] = self.pii_hash_key.get_secret_value()
        return PII_HASH_KEY_ENV

    @property
    def snowflake_configured(self) -> bool:
        return self.snowflake_account is not None and self.snowflake_token is not None

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, home: Path) -> Path:
        return home.expanduser().resolve()

    # --- derived names -------------------------------------------------------------------
    def namespace(self, zone: str) -> str:
        return constants.namespace(zone, self.namespace_prefix)

    @property
    def raw_namespace(self) -> str:
        return self.namespace(constants.RAW_ZONE)

    @property
    def standardized_namespace(self) -> str:
        return self.namespace(constants.STANDARDIZED_ZONE)

    @property
    def curated_namespace(self) -> str:
        return self.namespace(constants.CURATED_ZONE)

    def spark_job_settings(self) -> dict[str, object]:
        """The fields a Spark job launched through Pipes runs with (JSON values): the same
        catalog, namespaces, registry and lease as this process, never a secret."""
        return self.model_dump(mode="json", include=set(SPARK_JOB_SETTINGS))

    def layer_run_settings(self) -> dict[str, object]:
        """The fields the layer runs of a Dagster run are handed (JSON values, never a secret):
        the job's, the process tuning and what an in-process Spark session starts with."""
        return self.model_dump(mode="json", include=set(LAYER_RUN_SETTINGS))

    @property
    def spark_jars_cache(self) -> Path:
        return (self.spark_jars_dir or self.home / "spark-jars").expanduser().resolve()

    @property
    def spark_log_file(self) -> Path:
        """The local Spark session's log: its JVM's log4j2 lines, stdout and stderr
        (``engines/spark/session.py``); ``leanops run --verbose`` prints its path."""
        return self.home / "logs" / "spark.log"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def archive_bucket_name(self) -> str:
        return self.archive_bucket or constants.resource_name(self.environment, "dlq-archive")

    def queue_name(self, topic: str) -> str:
        return constants.queue_name(self.environment, topic)

    @property
    def dlq_name(self) -> str:
        return constants.dlq_name(self.environment)

    @property
    def firehose_stream_name(self) -> str:
        return constants.firehose_stream_name(self.environment)

    @cached_property
    def catalog_config(self) -> dict[str, str]:
        """pyiceberg catalog properties: the catalog is chosen by properties, not code paths."""
        if self.catalog_type == "s3tables":
            props = s3tables_catalog_properties(self.warehouse, self.catalog_uri)
            props.update(self.catalog_properties)
            return props
        props: dict[str, str] = {"type": self.catalog_type}
        if self.catalog_type == "sql":
            props["uri"] = self.catalog_uri or f"sqlite:///{self.home / 'catalog.db'}"
            props["warehouse"] = self.warehouse or (self.home / "warehouse").as_uri()
        else:
            if self.catalog_uri:
                props["uri"] = self.catalog_uri
            if self.warehouse:
                props["warehouse"] = self.warehouse
        if self.catalog_type == "glue":
            props.setdefault("glue.region", self.aws_region)
        props.update(self.catalog_properties)
        return props


#: ``arn:<partition>:s3tables:<region>:<account>:bucket/<name>``: an S3 Tables table bucket
_TABLE_BUCKET_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):s3tables:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"bucket/(?P<name>[a-z0-9][a-z0-9-]{1,61}[a-z0-9])$"
)
#: pyiceberg's REST catalog properties for SigV4 (pyiceberg/catalog/rest/__init__.py: SIGV4,
#: SIGV4_SERVICE, SIGV4_REGION); Iceberg's Java REST catalog reads the same names
REST_SIGV4_ENABLED = "rest.sigv4-enabled"
REST_SIGNING_NAME = "rest.signing-name"
REST_SIGNING_REGION = "rest.signing-region"
S3TABLES_SIGNING_NAME = "s3tables"


def s3tables_table_bucket(warehouse: str | None) -> dict[str, str]:
    """The parts (partition, region, account, name) of a table bucket ARN; ValueError else."""
    match = _TABLE_BUCKET_ARN.match(warehouse or "")
    if match is None:
        raise ValueError(
            "catalog_type s3tables needs LEANOPS_WAREHOUSE = the table bucket's ARN "
            f"(arn:aws:s3tables:<region>:<account>:bucket/<name>), not {warehouse!r}"
        )
    return match.groupdict()


def s3tables_catalog_properties(warehouse: str | None, uri: str | None = None) -> dict[str, str]:
    """pyiceberg REST catalog properties of S3 Tables' Iceberg REST endpoint: requests signed
    with SigV4 for the service ``s3tables`` in the bucket's region, the warehouse being the
    table bucket's ARN (AWS: "Accessing tables using the Amazon S3 Tables Iceberg REST
    endpoint"). The endpoint is the bucket region's unless ``uri`` names another one."""
    bucket = s3tables_table_bucket(warehouse)
    region = bucket["region"]
    suffix = "amazonaws.com.cn" if bucket["partition"] == "aws-cn" else "amazonaws.com"
    return {
        "type": "rest",
        "uri": uri or f"https://s3tables.{region}.{suffix}/iceberg",
        "warehouse": str(warehouse),
        REST_SIGV4_ENABLED: "true",
        REST_SIGNING_NAME: S3TABLES_SIGNING_NAME,
        REST_SIGNING_REGION: region,
        # the FileIO's S3 client: the table files live in the bucket's region
        "s3.region": region,
    }


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment (``LEANOPS_*``), with explicit overrides for tests."""
    return Settings(**overrides)  # type: ignore[arg-type]
