"""Cumulative water balance per topic and freshness, as asset checks over all topics."""


import datetime as dt

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


def _topics(context: dg.AssetCheckExecutionContext) -> list[str]:
    return sorted(context.instance.get_dynamic_partitions(topic_partitions.name))


def _balance_check(context, catalog: IcebergCatalogResource, build) -> dg.AssetCheckResult:
    iceberg = catalog.load()
    rows = [
        (topic, build(iceberg, TopicTables(topic, catalog.namespace_prefix)))
        for topic in _topics(context)
    ]
    return dg.AssetCheckResult(
        passed=all(eq.balanced for _, eq in rows),
        metadata={"equations": equations_table(rows), "topics": len(rows)},
    )


@dg.asset_check(
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


@dg.asset_check(
    asset=CURATED,
    description="Cumulative curated balance per topic: Standardized rows consumed = Curated "
    "rows + updates + superseded + CDE error rows + quarantined (rows the safety net took "
    "out of a run). Failing means the MERGE lost rows.",
)
def curated_balance_all_time(
    context: dg.AssetCheckExecutionContext, catalog: IcebergCatalogResource
) -> dg.AssetCheckResult:
    return _balance_check(context, catalog, accountability.curated_equation)


@dg.asset_check(
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
    sent = ingestion_counts.sent()
    failed = ingestion_counts.firehose_errors()
    topics = sorted(set(sent) | set(_topics(context)))
    iceberg = catalog.load()
    rows = [
        (
            topic,
            accountability.pre_raw_equation(
                iceberg, TopicTables(topic, catalog.namespace_prefix),
                sent.get(topic, 0), failed.get(topic, 0),
            ),
        )
        for topic in topics
    ]
    return dg.AssetCheckResult(
        passed=all(eq.balanced for _, eq in rows),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"equations": equations_table(rows), "topics": len(rows),
                  "counts_source": ingestion_counts.describe()},
    )


@dg.asset_check(
    asset=CURATED,
    description="Freshness: the oldest RAW snapshot not yet in Curated is younger than the "
    "freshness target. Failing means the pipeline is stalled or behind.",
)
def curated_freshness(
    context: dg.AssetCheckExecutionContext,
    catalog: IcebergCatalogResource,
    pipeline: PipelineConfigResource,
) -> dg.AssetCheckResult:
    iceberg = catalog.load()
    now_ms = dt.datetime.now(dt.UTC).timestamp() * 1000
    lags: dict[str, float] = {}
    for topic in _topics(context):
        pending = oldest_pending(iceberg, TopicTables(topic, catalog.namespace_prefix))
        lags[topic] = (now_ms - pending.oldest.timestamp_ms) / 60_000 if pending else 0.0
    worst = max(lags.values(), default=0.0)
    return dg.AssetCheckResult(
        passed=worst <= pipeline.freshness_minutes,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "worst_lag_minutes": round(worst, 2),
            "target_minutes": pipeline.freshness_minutes,
            "lag_by_topic": dg.MetadataValue.json({k: round(v, 2) for k, v in lags.items()}),
        },
    )


accountability_checks = [
    pre_raw_balance, post_raw_balance_all_time, curated_balance_all_time, curated_freshness,
]
