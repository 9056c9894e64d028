"""``leanops schema deploy|list|diff``: onboard a topic by deploying its schema."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from leanops_dagster.constants import InvalidTopicError, validate_topic
from leanops_dagster.schemas.compatibility import BreakingChangeError, breaking_changes
from leanops_dagster.schemas.loader import SchemaFileError, SchemaNotFoundError
from leanops_dagster.schemas.registry import SchemaRegistry, content_version


def _registry() -> SchemaRegistry:
    from leanops_dagster.settings import get_settings

    return SchemaRegistry.from_settings(get_settings())


def _topic(_ctx, _param, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return validate_topic(value)
    except InvalidTopicError as exc:
        raise click.BadParameter(str(exc)) from exc


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group("schema")
def schema_group() -> None:
    """Deploy, list and compare topic schemas (deploying a schema onboards the topic)."""


@schema_group.command("deploy")
@click.argument("topic", required=False, callback=_topic)
@click.option("--all", "deploy_all", is_flag=True, help="Deploy every topic in the source.")
@click.option(
    "--rebuild", is_flag=True,
    help="Rebuild TOPIC's Curated table from its whole Standardized history under the new "
    "schema, swap it in atomically, then publish: required for a breaking change, and the way "
    "to restate the table after a rule fix. Resumable: rerun after an interruption.",
)
@click.option(
    "--from-raw", is_flag=True,
    help="With --rebuild: rebuild Standardized from the whole RAW history first (automatic "
    "for a breaking change of standardized.json; use it to restate after a flattening fix).",
)
def deploy(topic: str | None, deploy_all: bool, rebuild: bool, from_raw: bool) -> None:
    """Validate TOPIC's schema files, apply them to its tables, publish them.

    A compatible change evolves the Curated table first (one Iceberg schema commit); a
    breaking change is refused, with the reasons, unless --rebuild (see docs/schemas.md)."""
    if bool(topic) == deploy_all:
        raise click.UsageError("give exactly one of TOPIC or --all")
    if from_raw and not rebuild:
        raise click.UsageError("--from-raw is an option of --rebuild")
    if rebuild and deploy_all:
        raise click.UsageError("--rebuild takes one TOPIC, not --all")
    from leanops_dagster.iceberg.catalog import open_catalog
    from leanops_dagster.pipeline.curated_evolution import SchemaMismatchError
    from leanops_dagster.pipeline.layout import TopicTables
    from leanops_dagster.pipeline.rebuild import RebuildError, deploy_schema
    from leanops_dagster.settings import get_settings

    settings = get_settings()
    registry = SchemaRegistry.from_settings(settings)
    try:
        topics = registry.check_all() if deploy_all else [topic]
        catalog = open_catalog(settings)
        for name in topics:
            outcome = deploy_schema(
                registry, catalog, TopicTables(name, settings.namespace_prefix),  # type: ignore[arg-type]
                rebuild=rebuild, from_raw=from_raw,
                pii_key=settings.pii_hash_key.get_secret_value().encode(),
                progress=click.echo,
            )
            _echo_outcome(outcome, registry.deployed_uri)
    except (SchemaFileError, SchemaNotFoundError, BreakingChangeError, SchemaMismatchError,
            RebuildError) as exc:
        raise _fail(exc) from None


def _echo_outcome(outcome, deployed_uri: str) -> None:
    result = outcome.deployed
    state = "deployed" if result.changed else "unchanged"
    click.echo(
        f"{result.topic}: {state} version {result.version} (deployed_at "
        f"{result.deployed_at}) -> {deployed_uri}"
    )
    if outcome.evolution is not None and outcome.evolution.committed:
        steps = "; ".join(outcome.evolution.plan.describe())
        click.echo(f"  curated table evolved in one schema commit: {steps}")
    rebuilt = outcome.rebuild
    if rebuilt is not None and rebuilt.from_raw:
        click.echo(
            f"  rebuilt Standardized from RAW: RAW rows read {rebuilt.raw_rows_read}, "
            f"Standardized rows {rebuilt.standardized_rows}, parse errors "
            f"{rebuilt.parse_errors}, duplicates {rebuilt.duplicates}"
        )
    if rebuilt is not None:
        click.echo(
            f"  rebuilt {rebuilt.rebuild_id}: Standardized rows read {rebuilt.rows_read}, "
            f"curated rows {rebuilt.curated_rows}, CDE error rows {rebuilt.cde_error_rows}, "
            f"balanced {rebuilt.balanced}; swap snapshot {rebuilt.swap_snapshot_id} replaced "
            f"{rebuilt.replaced_snapshot_id} (readable as {rebuilt.replaced_copy})"
        )


@schema_group.command("list")
def list_schemas() -> None:
    """Deployed and source topics: version, deployed_at, columns, status."""
    registry = _registry()
    table = Table(title=f"Schemas ({registry.deployed_uri})")
    for column in ("topic", "version", "deployed_at", "columns", "status"):
        table.add_column(column)
    for topic in sorted(set(registry.deployed_topics()) | set(registry.source_topics())):
        deployed = registry.deployed(topic)
        try:
            source_version = content_version(registry.load_source(topic))
        except SchemaNotFoundError:
            source_version = None
        except SchemaFileError:
            source_version = "invalid"
        if deployed is None:
            status = "not deployed"
        elif source_version is None:
            status = "deployed (no source)"
        elif source_version == "invalid":
            status = "source invalid"
        else:
            status = "up to date" if source_version == deployed.version else "source differs"
        table.add_row(
            topic,
            deployed.version if deployed else "-",
            deployed.deployed_at if deployed else "-",
            str(len(deployed.curated.columns)) if deployed else "-",
            status,
        )
    Console(width=140).print(table)


@schema_group.command("diff")
@click.argument("topic", callback=_topic)
def diff(topic: str) -> None:
    """Differences between TOPIC's deployed schema and its source files, each labelled
    compatible (deploy applies it) or breaking (deploy needs --rebuild), with the reason."""
    try:
        changes = _registry().changes(topic)
    except (SchemaFileError, SchemaNotFoundError) as exc:
        raise _fail(exc) from None
    if not changes:
        click.echo(f"{topic}: no differences (deployed = source)")
        return
    breaking = len(breaking_changes(changes))
    click.echo(
        f"{topic}: deployed -> source ({len(changes) - breaking} compatible, {breaking} "
        "breaking)"
    )
    for change in changes:
        click.echo(f"  {change.verdict.value:<10}  {change.what}")
        click.echo(f"  {'':<10}  {change.reason}")


@schema_group.command("check")
def check() -> None:
    """CI: classify every source topic's changes against what is deployed; a table of the
    changes; exit 1 on any breaking change or invalid schema file (deploy them with
    `leanops schema deploy TOPIC --rebuild`)."""
    registry = _registry()
    table = Table(title=f"Schema changes, deployed ({registry.deployed_uri}) -> source")
    for column in ("topic", "verdict", "change", "reason"):
        table.add_column(column, overflow="fold")
    failed: list[str] = []
    for topic in registry.source_topics():
        try:
            changes = registry.changes(topic)
        except SchemaFileError as exc:
            table.add_row(topic, "invalid", "source schema files", str(exc))
            failed.append(topic)
            continue
        if not changes:
            table.add_row(topic, "-", "no differences", "")
        for change in changes:
            table.add_row(topic, change.verdict.value, change.what, change.reason)
        if breaking_changes(changes):
            failed.append(topic)
    for topic in sorted(set(registry.deployed_topics()) - set(registry.source_topics())):
        table.add_row(topic, "-", "deployed, no source files", "deploy never removes a topic")
    Console(width=160).print(table)
    if failed:
        raise click.ClickException(
            f"breaking or invalid schema changes in: {', '.join(failed)}"
        )
    click.echo("no breaking changes")


def register(group: click.Group) -> None:
    group.add_command(schema_group)
