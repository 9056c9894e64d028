"""Ingestion commands: ``inject`` (through the local stack), ``raw`` and ``info``.

Every argument is validated before anything is started or written: an invalid topic name, an
unknown config or a missing file is one line on stderr and exit status 2.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from pathlib import Path

import click

from leanops_dagster import constants

SQS_MAX_BODY_BYTES = 256 * 1024
# Characters SQS refuses in a body (it accepts #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000+).
_SQS_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _fail(message: str) -> None:
    """One line on stderr, exit status 2, nothing written."""
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


def _settings():
    from leanops_dagster.settings import get_settings

    return get_settings()


def _check_topic(topic: str) -> str:
    try:
        return constants.validate_topic(topic)
    except constants.InvalidTopicError as exc:
        _fail(str(exc))
    raise AssertionError("unreachable")


def _read_lines(path: Path) -> tuple[list[str], int]:
    """Non-empty lines of ``path`` (each one SQS body, as-is) and the number of empty ones."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail(f"no such file: {path}")
    except IsADirectoryError:
        _fail(f"not a file: {path}")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"cannot read {path}: {exc}")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line
    bodies = [line for line in lines if line]
    for number, line in enumerate(lines, start=1):
        if len(line.encode("utf-8")) > SQS_MAX_BODY_BYTES:
            _fail(f"{path}:{number}: line exceeds SQS's {SQS_MAX_BODY_BYTES} byte body limit")
        if _SQS_FORBIDDEN.search(line):
            _fail(f"{path}:{number}: line holds a character SQS does not accept in a body")
    return bodies, len(lines) - len(bodies)


def _run_injection(
    plan: dict[str, list[str]], senders: int, timeout_s: float, as_json: bool,
    expected: dict[str, dict[str, int]] | None = None,
) -> None:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from leanops_dagster.local.stack import LocalStack

    settings = _settings()
    console = Console(stderr=True)
    total = sum(len(b) for b in plan.values())
    with LocalStack(settings) as stack, Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, disable=as_json, transient=False,
    ) as progress:
        tasks = {t: progress.add_task(f"send {t}", total=len(b)) for t, b in plan.items()}
        errors: list[BaseException] = []

        def send(topic: str, bodies: list[str]) -> None:
            try:
                stack.send(topic, bodies, progress=lambda n: progress.advance(tasks[topic], n))
            except BaseException as exc:  # reported after the threads joined
                errors.append(exc)

        work = [(t, b[i::senders]) for t, b in plan.items() for i in range(senders)]
        threads = [threading.Thread(target=send, args=w, daemon=True) for w in work]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        waiting = progress.add_task("wait until every message is in RAW or dlq_errors",
                                    total=None)
        report = stack.wait_until_quiet(timeout_s)
        progress.update(waiting, total=1, completed=1)
    result = {
        "sent": report.sent,
        "delivered": report.delivered,
        "firehose_errors": report.firehose_errors,
        "seconds": round(report.seconds, 1),
        "messages": total,
    }
    if expected is not None:
        result["expected"] = expected
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    from rich.table import Table

    table = Table(title=f"injected {total:,} messages (LEANOPS_HOME={settings.home})")
    for column in ("topic", "sent", "RAW rows", "dlq_errors rows", "Firehose errors"):
        table.add_column(column, justify="left" if column == "topic" else "right")
    dlq = report.delivered.get(constants.DLQ_ERRORS_TABLE, 0)
    for topic, sent in sorted(report.sent.items()):
        table.add_row(
            topic, f"{sent:,}", f"{report.delivered.get(constants.raw_table_name(topic), 0):,}",
            "", f"{report.firehose_errors.get(topic, 0):,}",
        )
    table.add_row("(all topics)", "", "", f"{dlq:,}", "")
    console.print(table)


@click.command()
@click.option("--config", "config_ref", help="A scenario: a JSON file or a name in tests/configs.")
@click.option("--topic", help="With --file: the topic whose queue gets the lines.")
@click.option("--file", "file_path", type=click.Path(path_type=Path),
              help="With --topic: a file whose every line is one SQS message body, sent as-is.")
@click.option("--timeout", "timeout_s", default=1800.0, show_default=True,
              help="Seconds to wait for every message to land.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON line.")
def inject(
    config_ref: str | None, topic: str | None, file_path: Path | None, timeout_s: float,
    as_json: bool,
) -> None:
    """Send messages through the local stack and wait until each is in RAW or in the DLQ records.

    Starts moto (SQS/S3), the pollers with the real Lambda handlers and the local Firehose for
    the duration of the command; the RAW tables and the ingestion ledger stay in LEANOPS_HOME.
    """
    if config_ref is not None:
        if topic is not None or file_path is not None:
            _fail("use either --config, or --topic with --file")
        from leanops_dagster.local.injector.config import ConfigError, load_config
        from leanops_dagster.local.injector.generators import generate

        try:
            config = load_config(config_ref)
        except ConfigError as exc:
            _fail(str(exc))
        _run_injection(generate(config), config.senders, timeout_s, as_json, config.expected())
        return
    if topic is None or file_path is None:
        _fail("give --config FILE, or --topic T with --file F.jsonl")
    topic = _check_topic(topic)
    bodies, empty = _read_lines(file_path)
    if empty:
        click.echo(f"note: {empty} empty line(s) skipped (an SQS body cannot be empty)", err=True)
    if not bodies:
        _fail(f"{file_path} holds no message bodies")
    _run_injection({topic: bodies}, 1, timeout_s, as_json)


@click.command()
@click.option("--topic", required=True, help="Topic whose RAW table to describe.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def raw(topic: str, as_json: bool) -> None:
    """Rows, snapshots and the latest snapshot id of RAW <topic>_staging."""
    topic = _check_topic(topic)
    settings = _settings()
    from leanops_dagster.local.inspect import catalog_exists, raw_table_summary

    if not catalog_exists(settings):
        _fail(f"no catalog under {settings.home} yet (run `leanops inject` first)")
    summary = raw_table_summary(settings, topic)
    if summary is None:
        _fail(f"no RAW table {settings.raw_namespace}.{constants.raw_table_name(topic)}")
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['table']}  ({summary['rows']:,} rows)")
    for column in ("snapshot id", "committed at (UTC)", "operation", "added rows", "total rows"):
        table.add_column(column, justify="right" if "rows" in column else "left")
    for snap in summary["snapshots"]:
        table.add_row(str(snap["snapshot_id"]), snap["committed_at"], snap["operation"],
                      f"{snap['added_records']:,}", f"{snap['total_records']:,}")
    console = Console()
    console.print(table)
    console.print(f"latest snapshot id: {summary['latest_snapshot_id']}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts and tools).")
def info(as_json: bool) -> None:
    """Catalog properties (name, uri, warehouse) and namespaces with their tables."""
    from leanops_dagster.local.inspect import catalog_info

    data = catalog_info(_settings())
    if as_json:
        click.echo(json.dumps(data, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    props = Table(title="catalog", show_header=False)
    for key in ("name", "type", "uri", "warehouse", "home"):
        props.add_row(key, str(data["catalog"].get(key, "")))
    console.print(props)
    tables = Table(title="namespaces")
    tables.add_column("namespace")
    tables.add_column("tables")
    for namespace, names in data["namespaces"].items():
        tables.add_row(namespace, ", ".join(names) or "-")
    console.print(tables)


def register(group: click.Group) -> None:
    for command in (inject, raw, info):
        group.add_command(command)
