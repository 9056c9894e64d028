"""The one place that chooses the engine of a Standardized or Curated run.

``arrow`` (default): ``pipeline.standardize`` / ``pipeline.curate`` in this process.
``spark``: ``engines.spark`` on the process's SparkSession (``engines.spark.session``), the
same tables, watermarks and results. A topic's schema may name its engine (``curated.json``
``"engine"``); otherwise ``LEANOPS_ENGINE`` decides. Both engines continue from the same
watermarks, so a topic can switch between runs.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Literal

from pyiceberg.catalog import Catalog

from leanops_dagster.iceberg.lease import DEFAULT_TTL_S
from leanops_dagster.pipeline import curate, standardize
from leanops_dagster.pipeline.curate import CurateResult
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.standardize import StandardizeResult
from leanops_dagster.schemas.models import TopicSchema

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from leanops_dagster.settings import Settings

EngineName = Literal["arrow", "spark"]
ENGINES: tuple[EngineName, ...] = ("arrow", "spark")


def engine_for(schema: TopicSchema, default: str) -> EngineName:
    """The topic's own engine if its schema names one, else ``default`` (LEANOPS_ENGINE)."""
    chosen = schema.curated.engine or default
    if chosen not in ENGINES:
        raise ValueError(f"unknown engine {chosen!r}; expected one of {ENGINES}")
    return chosen  # type: ignore[return-value]


def _spark(catalog: Catalog, settings: Settings | None) -> SparkSession:
    """The session ``settings`` start (or the process's running one), ``catalog`` on it."""
    from pyspark.sql import SparkSession

    from leanops_dagster.engines.spark.session import register_catalog_of, spark_session

    if settings is not None:
        spark = spark_session(settings)
    elif (spark := SparkSession.getActiveSession()) is None:
        raise ValueError(
            "a Spark run in a process without a Spark session needs the settings to start one"
        )
    register_catalog_of(spark, catalog)
    return spark


def _disable_thp(settings: Settings | None) -> bool:
    return True if settings is None else settings.disable_thp


def _at(now: dt.datetime | None) -> dict[str, dt.datetime]:
    """``now`` only when given: the layer functions default it to the commit time."""
    return {} if now is None else {"now": now}


def run_standardize(
    catalog: Catalog, tables: TopicTables, schema: TopicSchema, *, engine: str,
    now: dt.datetime | None = None, lease_ttl_s: float | None = DEFAULT_TTL_S,
    settings: Settings | None = None,
) -> StandardizeResult:
    """RAW -> Standardized of one topic on the chosen engine, under the topic's lease.

    ``settings``: the run's process tuning (``disable_thp``) and the Spark session to start
    when the topic runs on Spark and the process has none yet; handed in by the ring that runs
    the layers (None: the defaults, and the process's running Spark session)."""
    if engine_for(schema, engine) == "spark":
        from leanops_dagster.engines.spark.standardize import standardize_topic_spark

        return standardize_topic_spark(
            _spark(catalog, settings), catalog, tables, schema, now=now, lease_ttl_s=lease_ttl_s
        )
    return standardize.standardize_topic(
        catalog, tables, schema, lease_ttl_s=lease_ttl_s, disable_thp=_disable_thp(settings),
        **_at(now),
    )


def run_curate(
    catalog: Catalog, tables: TopicTables, schema: TopicSchema, *, engine: str,
    pii_key: bytes, now: dt.datetime | None = None, lease_ttl_s: float | None = DEFAULT_TTL_S,
    settings: Settings | None = None,
) -> CurateResult:
    """Standardized -> Curated of one topic on the chosen engine, under the topic's lease
    (``settings``: as ``run_standardize``)."""
    if engine_for(schema, engine) == "spark":
        from leanops_dagster.engines.spark.curate import curate_topic_spark

        return curate_topic_spark(
            _spark(catalog, settings), catalog, tables, schema, pii_key=pii_key, now=now,
            lease_ttl_s=lease_ttl_s,
        )
    return curate.curate_topic(
        catalog, tables, schema, pii_key=pii_key, lease_ttl_s=lease_ttl_s,
        disable_thp=_disable_thp(settings), **_at(now),
    )
