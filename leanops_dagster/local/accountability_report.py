"""Accountability report: the brief's equations per topic and layer, as a table or JSON."""

from __future__ import annotations

from pyiceberg.catalog import Catalog
from rich.table import Table

from leanops_dagster.iceberg.catalog import open_catalog
from leanops_dagster.pipeline import accountability
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.settings import Settings


def topic_equations(
    catalog: Catalog, tables: TopicTables, *, sent: int | None, firehose_errors: int
) -> list[accountability.Equation]:
    equations = []
    if sent is not None:
        equations.append(
            accountability.pre_raw_equation(catalog, tables, sent, firehose_errors)
        )
    equations.append(accountability.post_raw_equation(catalog, tables))
    equations.append(accountability.curated_equation(catalog, tables))
    return equations


def render(rows: list[tuple[str, accountability.Equation]], title: str) -> Table:
    table = Table(title=title)
    for column in ("topic", "layer", "left side", "=", "right side", "balanced", "pending"):
        table.add_column(column, justify="right" if column in ("=", "pending") else "left",
                         no_wrap=column != "right side")
    for topic, eq in rows:
        parts = " + ".join(f"{name} {value:,}" for name, value in eq.right.items())
        table.add_row(
            topic, eq.layer, f"{eq.left_name} {eq.left:,}", "=",
            f"{parts}  (= {eq.right_total:,})",
            "[green]yes[/green]" if eq.balanced else "[red]NO[/red]",
            f"{eq.pending:,}" if eq.pending else "",
        )
    table.caption = (
        "pending: upstream rows not consumed yet (e.g. RAW of a topic with no schema); "
        "quarantined: rows that made a run raise, in the error tables as internal:<Exception>"
    )
    return table


def unknown_topic_reason(settings: Settings, topic: str) -> str | None:
    """Why ``topic`` has nothing to report (no deployed schema, no table, nothing sent), or
    None: a report of such a topic would be a meaningless balanced ``0 = 0``."""
    from leanops_dagster.local.resources import counts_source
    from leanops_dagster.schemas.registry import SchemaRegistry

    if topic in SchemaRegistry.from_settings(settings).deployed_versions():
        return None
    if topic in counts_source(settings).sent():
        return None
    catalog = open_catalog(settings)
    tables = TopicTables(topic, settings.namespace_prefix)
    if any(catalog.table_exists(t) for t in (tables.raw, tables.standardized, tables.curated)):
        return None
    return (
        f"topic {topic!r} has no deployed schema, no tables and no messages sent: nothing to "
        f"report (deploy it with `leanops schema deploy {topic}`)"
    )


def accountability_rows(
    settings: Settings, topics: list[str]
) -> list[tuple[str, accountability.Equation]]:
    """Every equation of every topic; pre-RAW only for topics the count source knows
    (``Settings.ingestion_counts``: locally the stack's ledger, in AWS CloudWatch)."""
    from leanops_dagster.local.resources import counts_source

    catalog = open_catalog(settings)
    source = counts_source(settings)
    sent, failed = source.sent(), source.firehose_errors()
    return [
        (topic, eq)
        for topic in topics
        for eq in topic_equations(
            catalog, TopicTables(topic, settings.namespace_prefix),
            sent=sent.get(topic), firehose_errors=failed.get(topic, 0),
        )
    ]
