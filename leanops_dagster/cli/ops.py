"""``leanops watermarks | dlq replay | recover``: the runbook's inspection and repair
commands."""

from __future__ import annotations

import datetime as dt
import json
import sys

import click
from rich.console import Console
from rich.table import Table

from leanops_dagster.constants import InvalidTopicError, validate_topic
from leanops_dagster.iceberg.history import HistoryLost
from leanops_dagster.settings import get_settings

console = Console(width=None if sys.stdout.isatty() else 150)


def _optional_topic(_ctx, _param, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return validate_topic(value)
    except InvalidTopicError as exc:
        raise click.BadParameter(str(exc)) from exc


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="milliseconds") if value is not None else None


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@click.command()
@click.option("--topic", callback=_optional_topic, help="Only this topic (default: every "
              "topic with a RAW table, onboarded or not).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def watermarks(topic: str | None, as_json: bool) -> None:
    """Per topic and layer: the watermark, rows pending behind it and the lag.

    The watermark of Standardized is the RAW snapshot it has consumed up to; that of Curated is
    the Standardized snapshot. For each: the snapshot id and its commit time, the rows appended
    upstream since (pending), and how long the oldest of them has waited (lag; 0 when none
    waits). A layer that never ran has no watermark and everything upstream is pending.
    """
    from leanops_dagster.iceberg.catalog import open_catalog
    from leanops_dagster.pipeline.layout import TopicTables
    from leanops_dagster.pipeline.status import layer_watermarks, topics_in_raw

    settings = get_settings()
    catalog = open_catalog(settings)
    known = topics_in_raw(catalog, settings.namespace_prefix)
    if topic is not None and topic not in known:
        raise click.ClickException(f"topic {topic!r} has no RAW table yet: nothing to report")
    now = dt.datetime.now(dt.UTC)
    marks = []
    for name in [topic] if topic else known:
        try:
            marks += layer_watermarks(catalog, TopicTables(name, settings.namespace_prefix))
        except HistoryLost as exc:  # a watermark's snapshot is gone: say so, do not guess
            raise click.ClickException(str(HistoryLost(exc.table, exc.snapshot_id, name))) from exc
        except ValueError as exc:
            raise click.ClickException(f"topic {name!r}: {exc}") from exc
    if as_json:
        click.echo(json.dumps([
            {
                "topic": m.topic,
                "layer": m.layer,
                "upstream": m.upstream,
                "watermark_snapshot_id": m.snapshot_id,
                "watermark_committed_at": _iso(m.committed_at),
                "pending_rows": m.pending_rows,
                "pending_snapshots": m.pending_snapshots,
                "oldest_pending_at": _iso(m.oldest_pending_at),
                "lag_seconds": round(m.lag_seconds(now), 3),
            }
            for m in marks
        ], indent=2))
        return
    table = Table(title=f"Watermarks at {_iso(now)}")
    for column in ("topic", "layer", "reads", "watermark snapshot", "committed at",
                   "pending rows", "lag"):
        table.add_column(column, justify="right" if column in ("pending rows", "lag") else "left")
    for m in marks:
        table.add_row(
            m.topic, m.layer, m.upstream,
            str(m.snapshot_id) if m.snapshot_id is not None else "(never ran)",
            _iso(m.committed_at) or "-",
            f"{m.pending_rows:,}" + (f" in {m.pending_snapshots} snapshots"
                                     if m.pending_snapshots > 1 else ""),
            _duration(m.lag_seconds(now)),
        )
    console.print(table if marks else "no topic has a RAW table yet")


@click.group()
def dlq() -> None:
    """The centralized dead-letter queue (runbook)."""


@dlq.command("replay")
@click.option("--topic", callback=_optional_topic,
              help="Only this topic's messages (others stay in the DLQ, counted as skipped).")
@click.option("--max-messages", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Stop after receiving this many DLQ messages.")
def replay(topic: str | None, max_messages: int) -> None:
    """Move DLQ messages back to their source queue (what dlq_replay_job does).

    Each message is deleted from the DLQ only after it was re-sent. Messages of unknown origin
    (or of another topic, with --topic) stay in the DLQ. Locally this needs the running local
    stack (`leanops demo` or `leanops inject`); in AWS, the environment's queues. Prints JSON:
    received, replayed per topic, skipped per topic.
    """
    from leanops_dagster.local.resources import sqs_resource
    from leanops_dagster.pipeline.dlq_replay import describe

    sqs = sqs_resource(get_settings())
    try:
        result = sqs.replay_dlq(topic=topic, max_messages=max_messages)
    except RuntimeError as exc:  # no local stack running: say what to start
        raise click.ClickException(str(exc)) from exc
    click.echo(describe(result))


@click.command()
@click.option("--topic", required=True, callback=_optional_topic, help="The topic to re-read.")
def recover(topic: str) -> None:
    """Re-read a topic from RAW when a run stopped with "snapshot ... expired": another
    writer removed RAW or Standardized snapshots its layers had not read yet (and the tag
    that protected them), so what they had consumed can no longer be proven.

    Rebuilds Standardized and Curated from every live RAW row under the deployed schema, with
    the FIFO and LIFO rules over the whole history (`leanops schema deploy TOPIC --rebuild
    --from-raw`, without a schema change): staged, the accountability equations over the
    whole history checked, then swapped in one commit per table, watermarks and running
    totals restated. The next runs continue incrementally from there.
    """
    from leanops_dagster.iceberg.catalog import open_catalog
    from leanops_dagster.pipeline.layout import TopicTables
    from leanops_dagster.pipeline.rebuild import RebuildError, deploy_schema
    from leanops_dagster.schemas.registry import SchemaRegistry

    settings = get_settings()
    registry = SchemaRegistry.from_settings(settings)
    if topic not in registry.deployed_versions():
        raise click.ClickException(f"topic {topic!r} has no deployed schema: nothing to recover")
    if registry.changes(topic):
        raise click.ClickException(
            f"topic {topic!r}: its schema file differs from the deployed version; deploy and "
            f"re-read in one step with `leanops schema deploy {topic} --rebuild --from-raw`")
    try:
        outcome = deploy_schema(
            registry, open_catalog(settings), TopicTables(topic, settings.namespace_prefix),
            from_raw=True, pii_key=settings.pii_hash_key.get_secret_value().encode(),
            progress=click.echo,
        )
    except RebuildError as exc:
        raise click.ClickException(f"topic {topic!r}: {exc}") from exc
    rebuilt = outcome.rebuild
    assert rebuilt is not None  # from_raw always rebuilds
    click.echo(
        f"{topic}: re-read {rebuilt.raw_rows_read} RAW rows -> Standardized "
        f"{rebuilt.standardized_rows} (parse errors {rebuilt.parse_errors}, duplicates "
        f"{rebuilt.duplicates}), Curated {rebuilt.curated_rows} (CDE error rows "
        f"{rebuilt.cde_error_rows}); balanced {rebuilt.balanced}"
    )


def register(group: click.Group) -> None:
    for command in (watermarks, dlq, recover):
        group.add_command(command)
