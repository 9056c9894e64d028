"""Pipeline settings the assets need besides the catalog and the schema registry."""

from __future__ import annotations

import json

import dagster as dg
from pydantic import Field

from leanops_dagster.engines.choice import engine_for
from leanops_dagster.resources.spark_launch import PIPES_LAUNCHERS, SparkJobLaunch
from leanops_dagster.schemas.models import TopicSchema
from leanops_dagster.settings import Settings


class PipelineConfigResource(dg.ConfigurableResource):
    """Masking key, freshness target and engine (from Settings).

    The key is given as ``dg.EnvVar`` (``from_settings``): Dagster resolves it when the resource
    starts and the UI and the run config show only the variable's name.
    """

    pii_hash_key: str = Field(
        description="HMAC key for PII masking in Curated (a dg.EnvVar: LEANOPS_PII_HASH_KEY)"
    )
    freshness_minutes: int = Field(default=60, description="Curated may lag RAW this much")
    engine: str = Field(
        default="arrow",
        description="engine of the Standardized and Curated runs (LEANOPS_ENGINE: arrow or "
        "spark); a topic's curated schema may override it",
    )
    spark_launcher: str = Field(
        default="session",
        description="how a Spark-engine run starts (LEANOPS_SPARK_LAUNCHER): session (in "
        "process), or a Pipes job: pipes_subprocess, glue or emr_serverless "
        "(resources/spark_launch.py)",
    )
    spark_job: SparkJobLaunch = Field(
        default_factory=SparkJobLaunch,
        description="where a Pipes launcher starts the Spark job (LEANOPS_SPARK_*)",
    )
    lease_ttl_seconds: float = Field(
        default=600.0, description="expiry of a layer run's per-topic lease (iceberg/lease.py)"
    )
    layer_run_settings: str = Field(
        default="{}",
        description="JSON of Settings.layer_run_settings(): the layer runs' process tuning "
        "(LEANOPS_DISABLE_THP) and in-process Spark session (LEANOPS_SPARK_MASTER, jars, conf)",
    )

    @classmethod
    def from_settings(cls, settings: Settings) -> PipelineConfigResource:
        return cls(
            pii_hash_key=dg.EnvVar(settings.export_pii_hash_key()),
            freshness_minutes=settings.freshness_minutes,
            lease_ttl_seconds=settings.lease_ttl_seconds,
            engine=settings.engine,
            spark_launcher=settings.spark_launcher,
            spark_job=SparkJobLaunch.from_settings(settings),
            layer_run_settings=json.dumps(settings.layer_run_settings()),
        )

    def settings_of_layer_runs(self) -> Settings:
        """The ``Settings`` handed to the layer runs (``engines.choice``): those of the
        definitions, over this process's environment for the fields not carried."""
        return Settings(**json.loads(self.layer_run_settings))

    def launches_spark_job(self, schema: TopicSchema) -> bool:
        """True when ``schema``'s topic runs on Spark as a separate Pipes job."""
        return self.spark_launcher in PIPES_LAUNCHERS and engine_for(
            schema, self.engine
        ) == "spark"

    def pii_key_bytes(self) -> bytes:
        return self.pii_hash_key.encode()
