"""The all-time checks: cumulative water balances and freshness, one result per topic.

Each check is partitioned like its asset (``partitions_def=topic_partitions``, Dagster 1.13's
partitioned asset checks, a preview feature): one evaluation covers one topic, is recorded for
that topic's partition, and the UI shows each topic's verdict and history.

They are evaluated for every onboarded topic in ONE in-process run of the
``accountability_checks`` job (``jobs.evaluate_all_time_checks``, on its schedule and at the end
of the demo), which records each topic's verdict as an ``AssetCheckEvaluation`` of the topic's
partition: the cost is one run per period, not one per topic, and no process per check (brief
rule 10). The check definitions below stay executable on their own (the UI's "Execute" for a
partition runs them for that topic); both paths compute the verdict with the same functions
(``verdicts``). A topic that is not onboarded has no partition, so no result; ``leanops report
--topic`` computes its equations.
"""


import datetime as dt
import warnings
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
from pyiceberg.catalog import Catalog

from leanops_dagster.assets.keys import CURATED, RAW_STAGING, STANDARDIZED
from leanops_dagster.partitions import topic_partitions
from leanops_dagster.pipeline import accountability
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


@dataclass(frozen=True)
class Verdict:
    """One check's outcome for one topic, before Dagster's wrapping (result or evaluation)."""

    passed: bool
    metadata: dict[str, Any]
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR

    def result(self) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=self.passed, metadata=self.metadata,
                                   severity=self.severity)

    def evaluation(self, check_key: dg.AssetCheckKey, topic: str) -> dg.AssetCheckEvaluation:
        return dg.AssetCheckEvaluation(
            asset_key=check_key.asset_key, check_name=check_key.name, passed=self.passed,
            metadata=self.metadata, severity=self.severity, partition=topic,
        )


@dataclass(frozen=True)
class IngestionCounts:
    """The pre-RAW counts of every topic, fetched once per evaluation (one CloudWatch query for
    all topics, not one per topic)."""

    sent: dict[str, int] = field(default_factory=dict)
    firehose_errors: dict[str, int] = field(default_factory=dict)
    source: str = ""

    @classmethod
    def fetch(cls, resource: IngestionCountsResource) -> "IngestionCounts":
        return cls(resource.sent(), resource.firehose_errors(), resource.describe())


def _equation(topic: str, equation: accountability.Equation,
              extra: dict | None = None, **kwargs) -> Verdict:
    """The verdict of one topic's equation, with the equation as a one-row table."""
    return Verdict(
        equation.balanced,
        {"equations": equations_table([(topic, equation)]), "topic": topic, **(extra or {})},
        **kwargs,
    )


def post_raw_verdict(catalog: Catalog, tables: TopicTables) -> Verdict:
    return _equation(tables.topic, accountability.post_raw_equation(catalog, tables))


def curated_verdict(catalog: Catalog, tables: TopicTables) -> Verdict:
    return _equation(tables.topic, accountability.curated_equation(catalog, tables))


def pre_raw_verdict(catalog: Catalog, tables: TopicTables, counts: IngestionCounts) -> Verdict:
    equation = accountability.pre_raw_equation(
        catalog, tables, counts.sent.get(tables.topic, 0),
        counts.firehose_errors.get(tables.topic, 0),
    )
    return _equation(tables.topic, equation, {"counts_source": counts.source},
                     severity=dg.AssetCheckSeverity.WARN)


def freshness_verdict(
    catalog: Catalog, tables: TopicTables, freshness_minutes: int, now: dt.datetime
) -> Verdict:
    pending = oldest_pending(catalog, tables)
    lag = pending.age_seconds(now) / 60 if pending else 0.0
    return Verdict(
        lag <= freshness_minutes,
        {"lag_minutes": round(lag, 2), "target_minutes": freshness_minutes,
         "topic": tables.topic},
        severity=dg.AssetCheckSeverity.WARN,
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


def _tables(context, catalog: IcebergCatalogResource) -> TopicTables:
    return TopicTables(context.partition_key, catalog.namespace_prefix)


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
    return post_raw_verdict(catalog.load(), _tables(context, catalog)).result()


@topic_check(
    asset=CURATED,
    description="Cumulative curated balance per topic: Standardized rows consumed = Curated "
    "rows + updates + superseded + CDE error rows + quarantined (rows the safety net took "
    "out of a run). Failing means the MERGE lost rows.",
)
def curated_balance_all_time(
    context: dg.AssetCheckExecutionContext, catalog: IcebergCatalogResource
) -> dg.AssetCheckResult:
    return curated_verdict(catalog.load(), _tables(context, catalog)).result()


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
    counts = IngestionCounts.fetch(ingestion_counts)
    return pre_raw_verdict(catalog.load(), _tables(context, catalog), counts).result()


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
    return freshness_verdict(
        catalog.load(), _tables(context, catalog), pipeline.freshness_minutes,
        dt.datetime.now(dt.UTC),
    ).result()


def verdicts(
    catalog: Catalog, tables: TopicTables, counts: IngestionCounts, freshness_minutes: int,
    now: dt.datetime,
) -> dict[dg.AssetCheckKey, Verdict]:
    """Every all-time check's verdict for one topic: what the checks above return, one key
    each (the one-run evaluation, ``jobs.evaluate_all_time_checks``, calls this per topic)."""
    return {
        pre_raw_balance.check_key: pre_raw_verdict(catalog, tables, counts),
        post_raw_balance_all_time.check_key: post_raw_verdict(catalog, tables),
        curated_balance_all_time.check_key: curated_verdict(catalog, tables),
        curated_freshness.check_key: freshness_verdict(catalog, tables, freshness_minutes, now),
    }


accountability_checks = [
    pre_raw_balance, post_raw_balance_all_time, curated_balance_all_time, curated_freshness,
]
