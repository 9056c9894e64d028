"""``leanops demo | run | report | dev``: the Dagster side of the command line."""

from __future__ import annotations

import json
import os
import sys

import click
from rich.console import Console

from leanops_dagster.constants import InvalidTopicError, validate_topic
from leanops_dagster.settings import REPO_ROOT, get_settings

# Reports are tables: keep them readable when piped to a file or CI log.
console = Console(width=None if sys.stdout.isatty() else 150)


def _topic(_ctx, _param, value: str) -> str:
    try:
        return validate_topic(value)
    except InvalidTopicError as exc:
        raise click.BadParameter(str(exc)) from exc


def _deployed_schema(settings, topic: str):
    from leanops_dagster.schemas.registry import SchemaRegistry

    registry = SchemaRegistry.from_settings(settings)
    if topic not in registry.deployed_versions():
        raise click.ClickException(
            f"topic {topic!r} has no deployed schema: run `leanops schema deploy {topic}`"
        )
    return registry


@click.command()
@click.option("--topic", required=True, callback=_topic, help="Topic to materialize.")
def run(topic: str) -> None:
    """Materialize Standardized and Curated of one topic now (in process).

    With LEANOPS_SNOWFLAKE_* set, the run ends with the Snowflake refresh of that topic.
    """
    from leanops_dagster.definitions import build_definitions
    from leanops_dagster.instance import get_instance
    from leanops_dagster.partitions import topic_partitions

    settings = get_settings()
    _deployed_schema(settings, topic)
    instance = get_instance(settings)
    if not instance.has_dynamic_partition(topic_partitions.name, topic):
        instance.add_dynamic_partitions(topic_partitions.name, [topic])
    job = build_definitions(settings).resolve_job_def("topic_pipeline")
    result = job.execute_in_process(instance=instance, partition_key=topic, raise_on_error=False)
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        values = {k: v.value for k, v in mat.metadata.items() if k in _SHOWN}
        console.print(f"[bold]{mat.asset_key.to_user_string()}[/bold] {values}")
    if not result.success:
        raise click.ClickException(f"run {result.run_id} failed; see `leanops dev` for logs")


_SHOWN = {
    "rows_read", "rows_written", "parse_errors", "duplicates", "inserted", "updated",
    "superseded", "cde_error_rows", "watermark_from", "watermark_to",
}


@click.command()
@click.option("--topic", required=True, callback=_topic)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def report(topic: str, as_json: bool) -> None:
    """Print the accountability equations of one topic and whether each balances."""
    from leanops_dagster.report import accountability_rows

    rows = accountability_rows(get_settings(), [topic])
    if as_json:
        click.echo(json.dumps([{"topic": t, **eq.as_dict()} for t, eq in rows], indent=2))
    else:
        from leanops_dagster.report import render

        console.print(render(rows, f"Accountability: {topic}"))
    if not all(eq.balanced for _, eq in rows):
        sys.exit(1)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("dagster_args", nargs=-1, type=click.UNPROCESSED)
def dev(dagster_args: tuple[str, ...]) -> None:
    """Open the Dagster UI (`dagster dev -w workspace.yaml`) on the local instance."""
    from leanops_dagster.instance import prepare_dagster_home

    prepare_dagster_home(get_settings())
    cmd = [sys.executable, "-m", "dagster", "dev", "-w", str(REPO_ROOT / "workspace.yaml")]
    os.execvpe(cmd[0], [*cmd, *dagster_args], os.environ)  # nosec B606 - fixed argv


@click.command()
@click.option("--timeout", default=900, show_default=True, help="Seconds to wait for quiet.")
def demo(timeout: int) -> None:
    """The local demo: stack, Day 1 / Day 2 schema gate, sensors and runs, accountability.

    Starts the local stack (moto SQS/S3, the real Lambda handlers, the Firehose stand-in) and
    the Dagster daemon on LEANOPS_HOME, deploys only the `events` schema, injects a mix
    (happy, malformed, duplicates, out-of-order corrections, drift, poison) for `events` and
    `sensor_readings`, waits until sensors and runs are quiet, prints the accountability per
    topic and layer, then deploys `sensor_readings` and shows its buffered RAW processed.
    """
    from leanops_dagster.demo import run_demo

    ok = run_demo(get_settings(), console=console, timeout_s=timeout)
    if not ok:
        sys.exit(1)


def register(group: click.Group) -> None:
    for command in (demo, run, report, dev):
        group.add_command(command)


