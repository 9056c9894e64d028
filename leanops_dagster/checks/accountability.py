"""The all-time checks: cumulative water balances and freshness, one result per topic.

Each check is partitioned like its asset (``partitions_def=topic_partitions``, Dagster 1.13's
partitioned asset checks, a preview feature): one evaluation covers one topic, is recorded for
that topic's partition, and the UI shows each topic's verdict and history. Dagster 1.13 does not
give a job of checks alone a partitions definition (it infers one from selected assets only), so
a run of ``accountability_checks`` names its topic with Dagster's partition run tag
(``jobs.topic_run_tags``): the schedule and the demo launch one run per onboarded topic. A topic
that is not onboarded has no partition, so no result; ``leanops report --topic`` computes its
equations.
"""


import datetime as dt
import warnings

import dagster as dg

from leanops_dagster import accountability
from leanops_dagster.assets.keys import CURATED, RAW_STAGING, STANDARDIZED
from leanops_dagster.partitions import topic_partitions
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.status import oldest_pending
from leanops_dagster.resources.catalog import IcebergCatalogResource
from leanops_dagster.resources.ingestion import IngestionCountsResource
from leanops_dagster.resources.pipeline import PipelineConfigResource


def equations_table(equations: list[tuple[str, accountability.Equation]]) -> dg.MetadataValue:
    lines = [
        "| topic | layer | left | right | parts | balanced |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for topic, eq in equations:
        parts = ", ".join(f"{k}={v}" for k, v in eq.right.items())
        lines.append(
            f"| {topic} | {eq.layer} | {eq.left_name}={eq.left} | {eq.right_total} | {parts} "
            f"| {'yes' if eq.balanced else '**NO**'} |"
        )
    return dg.MetadataValue.md("\n".join(lines))


def _equation_result(
    topic: str, equation: accountability.Equation, metadata: dict | None = None, **kwargs
) -> dg.AssetCheckResult:
    """The verdict of one topic's equation, with the equation as a one-row table."""
    return dg.AssetCheckResult(
        passed=equation.balanced,
        metadata={"equations": equations_table([(topic, equation)]), "topic": topic,
                  **(metadata or {})},
        **kwargs,
    )


def _balance_check(context, catalog: IcebergCatalogResource, build) -> dg.AssetCheckResult:
    topic = context.partition_key
    return _equation_result(
        topic, build(catalog.load(), TopicTables(topic, catalog.namespace_prefix))
    )


def topic_check(**kwargs):
    """``dg.asset_check`` partitioned by topic. Partitioned checks are a preview in Dagster
    1.13; its warning, printed by every process that loads the definitions (the CLI's output
    included), is silenced for these definitions only."""

    def decorate(fn):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)
            return dg.asset_check(partitions_def=topic_partitions, **kwargs)(fn)

    return decorate


@topic_check(
    asset=STANDARDIZED,
    description="Cumulative post-RAW balance per topic: RAW rows consumed up to the watermark "
    "= Standardized rows + parse errors + duplicates dropped + quarantined (rows the safety "
    "net took out of a run). Failing means data was lost "
    "or double-counted between RAW and Standardized.",
)
def post_raw_balance_all_time(
    context: dg.AssetCheckExecutionContext, catalog: IcebergCatalogResource
) -> dg.AssetCheckResult:
    return _balance_check(context, catalog, accountability.post_raw_equation)


@topic_check(
    asset=CURATED,
    description="Cumulative curated balance per topic: Standardized rows consumed = Curated "
    "rows + updates + superseded + CDE error rows + quarantined (rows the safety net took "
    "out of a run). Failing means the MERGE lost rows.",
)
def curated_balance_all_time(
    context: dg.AssetCheckExecutionContext, catalog: IcebergCatalogResource
) -> dg.AssetCheckResult:
    return _balance_check(context, catalog, accountability.curated_equation)


@topic_check(
    asset=RAW_STAGING,
    description="Pre-RAW balance per topic: SQS messages sent = RAW rows + DLQ error rows + "
    "Firehose error records. Failing means messages are in flight or were lost in ingestion. "
    "`counts_source` says where the sent and Firehose counts came from (CloudWatch in AWS, "
    "the local stack's ledger on a laptop).",
)
def pre_raw_balance(
    context: dg.AssetCheckExecutionContext,
    catalog: IcebergCatalogResource,
    ingestion_counts: IngestionCountsResource,
) -> dg.AssetCheckResult:
    topic = context.partition_key
    equation = accountability.pre_raw_equation(
        catalog.load(), TopicTables(topic, catalog.namespace_prefix),
        ingestion_counts.sent().get(topic, 0), ingestion_counts.firehose_errors().get(topic, 0),
    )
    return _equation_result(
        topic, equation, {"counts_source": ingestion_counts.describe()},
        severity=dg.AssetCheckSeverity.WARN,
    )


@topic_check(
    asset=CURATED,
    description="Freshness: the topic's oldest RAW snapshot not yet in Curated is younger than "
    "the freshness target. Failing means the pipeline is stalled or behind.",
)
def curated_freshness(
    context: dg.AssetCheckExecutionContext,
    catalog: IcebergCatalogResource,
    pipeline: PipelineConfigResource,
) -> dg.AssetCheckResult:
    topic = context.partition_key
    pending = oldest_pending(catalog.load(), TopicTables(topic, catalog.namespace_prefix))
    now_ms = dt.datetime.now(dt.UTC).timestamp() * 1000
    lag = (now_ms - pending.oldest.timestamp_ms) / 60_000 if pending else 0.0
    return dg.AssetCheckResult(
        passed=lag <= pipeline.freshness_minutes,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "lag_minutes": round(lag, 2),
            "target_minutes": pipeline.freshness_minutes,
            "topic": topic,
        },
    )


accountability_checks = [
    pre_raw_balance, post_raw_balance_all_time, curated_balance_all_time, curated_freshness,
]
