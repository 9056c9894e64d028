"""``leanops demo | run | report | dev | spark-jars``: the Dagster side of the command line."""

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


def _open_instance(settings):
    """The local Dagster instance, or a one-line error saying how to repair a broken home."""
    from leanops_dagster.instance import BrokenDagsterHome, get_instance

    try:
        return get_instance(settings)
    except BrokenDagsterHome as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@click.option("--topic", required=True, callback=_topic, help="Topic to materialize.")
@click.option(
    "--verbose", is_flag=True,
    help="Also print Dagster's full event log (with the stack trace of a step that raised) "
    "and, after a Spark-engine run, the path of the Spark/JVM log and its lines of this run.",
)
def run(topic: str, verbose: bool) -> None:
    """Materialize Standardized and Curated of one topic now (in process).

    Prints one table of what each layer did (rows read, written, errors, duplicates,
    quarantined) and one of the run's checks with the numbers behind each verdict (the same
    sentence the Dagster UI shows). Exits 1 with one line per failed check or raised step
    (e.g. `cde_error_rate 8.5 % > 5 % threshold: 40 of 470 rows; ...`); a warning (schema
    drift) or another run holding the topic's lease exits 0. With LEANOPS_SNOWFLAKE_* set, the
    run ends with the Snowflake refresh of that topic. On the Spark engine, Spark's and the
    JVM's own logs go to $LEANOPS_HOME/logs/spark.log, not to the terminal.
    """
    from leanops_dagster.cli.run_output import (
        LAYER_LEGEND,
        QUIET_RUN_CONFIG,
        render_checks,
        render_layers,
        summarize,
    )
    from leanops_dagster.local.definitions import build_local_definitions
    from leanops_dagster.partitions import topic_partitions

    settings = get_settings()
    _deployed_schema(settings, topic)
    instance = _open_instance(settings)
    if not instance.has_dynamic_partition(topic_partitions.name, topic):
        instance.add_dynamic_partitions(topic_partitions.name, [topic])
    job = build_local_definitions(settings).resolve_job_def("topic_pipeline")
    spark_log = settings.spark_log_file
    spark_log_start = spark_log.stat().st_size if spark_log.exists() else 0
    result = job.execute_in_process(
        instance=instance, partition_key=topic, raise_on_error=False,
        run_config=None if verbose else QUIET_RUN_CONFIG,
    )
    summary = summarize(result, topic)
    if verbose:
        _show_spark_log(spark_log, spark_log_start)
    console.print(render_layers(summary))
    console.print(LAYER_LEGEND, style="dim", highlight=False)
    if summary.checks:
        console.print(render_checks(summary))
    for line in summary.busy:
        click.echo(line)
    for line in summary.failures:
        click.echo(line, err=True)
    if summary.failures or not result.success:
        if not summary.failures:  # a failure the summary does not know how to name
            click.echo(f"run {result.run_id} failed; rerun with --verbose for Dagster's log",
                       err=True)
        sys.exit(1)


def _show_spark_log(path, start: int) -> None:
    """What the run's Spark JVM wrote to its log (from byte ``start``), under its path; nothing
    when no Spark ran (the file did not grow)."""
    if not path.exists() or path.stat().st_size <= start:
        return
    with path.open("rb") as log:
        log.seek(start)
        lines = log.read().decode("utf-8", "replace")
    click.echo(f"Spark/JVM log: {path}", err=True)
    click.echo(lines.rstrip("\n"), err=True)


@click.command()
@click.option("--topic", required=True, callback=_topic)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def report(topic: str, as_json: bool) -> None:
    """Print the accountability equations of one topic and whether each balances.

    Exits 1 if one does not balance, or if the topic has no deployed schema, no tables and no
    messages sent (there is nothing to report)."""
    from leanops_dagster.local.accountability_report import (
        accountability_rows,
        unknown_topic_reason,
    )

    settings = get_settings()
    reason = unknown_topic_reason(settings, topic)
    if reason is not None:
        raise click.ClickException(reason)
    rows = accountability_rows(settings, [topic])
    if as_json:
        click.echo(json.dumps([{"topic": t, **eq.as_dict()} for t, eq in rows], indent=2))
    else:
        from leanops_dagster.local.accountability_report import render

        console.print(render(rows, f"Accountability: {topic}"))
    if not all(eq.balanced for _, eq in rows):
        sys.exit(1)


def dg_dev_command(dg_args: tuple[str, ...] = ()) -> list[str]:
    """``dg dev`` on the project (pyproject.toml's ``[tool.dg]``: the local definitions, as
    ``workspace.yaml``), run by this interpreter so it serves this environment's code."""
    return [
        sys.executable, "-m", "dagster_dg_cli.cli", "dev",
        "--target-path", str(REPO_ROOT), *dg_args,
    ]


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("dg_args", nargs=-1, type=click.UNPROCESSED)
def dev(dg_args: tuple[str, ...]) -> None:
    """Open the Dagster UI (`dg dev`: the local definitions) on the local instance.

    Extra arguments go to `dg dev` (e.g. `leanops dev --port 3001`)."""
    _open_instance(get_settings())  # created once, or refused with a repair hint; DAGSTER_HOME
    env = dict(os.environ)
    if sys.prefix != sys.base_prefix:  # dg resolves the project's venv from VIRTUAL_ENV
        env["VIRTUAL_ENV"] = sys.prefix
    cmd = dg_dev_command(dg_args)
    os.execvpe(cmd[0], cmd, env)  # nosec B606 - fixed argv


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
    from leanops_dagster.instance import BrokenDagsterHome
    from leanops_dagster.local.demo import run_demo

    try:
        ok = run_demo(get_settings(), console=console, timeout_s=timeout)
    except BrokenDagsterHome as exc:
        raise click.ClickException(str(exc)) from exc
    if not ok:
        sys.exit(1)


@click.command("spark-jars")
def spark_jars() -> None:
    """Build the local Spark engine's missing jars and print every jar (`make setup`).

    Exits 1 naming the missing piece (a Debian package, Java) when it cannot."""
    import subprocess

    from leanops_dagster.engines.spark import jars

    try:
        found = jars.local_jars(
            get_settings().spark_jars_cache, jdbc=(jars.SQLITE_JDBC_JAR, jars.POSTGRESQL_JDBC_JAR)
        )
    except (jars.SparkJarsMissing, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or ""
        click.echo(f"local Spark jars: {error} {detail}".strip(), err=True)
        sys.exit(1)
    for jar in found:
        click.echo(str(jar))


def register(group: click.Group) -> None:
    for command in (demo, run, report, dev, spark_jars):
        group.add_command(command)


