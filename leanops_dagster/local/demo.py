"""The main job: the local demo on embedded defaults (``leanops demo``).

Real components only: moto as SQS/S3, the real Lambda handlers behind the local event-source
poller, the Firehose stand-in writing Iceberg RAW, and the Dagster daemon evaluating the real
sensors and launching real runs against LEANOPS_HOME.
"""

from __future__ import annotations

import time

from rich.console import Console

from leanops_dagster.local.daemon import LocalDaemon, start_daemon
from leanops_dagster.settings import Settings

FIRST_TOPIC = "events"
SECOND_TOPIC = "sensor_readings"


def pending_work(settings: Settings, topics: list[str]) -> dict[str, str]:
    """Topics whose Standardized or Curated watermark is behind its upstream table."""
    from leanops_dagster.iceberg.catalog import open_catalog
    from leanops_dagster.pipeline.layout import TopicTables
    from leanops_dagster.pipeline.status import oldest_pending

    catalog = open_catalog(settings)
    behind = {
        topic: oldest_pending(catalog, TopicTables(topic, settings.namespace_prefix))
        for topic in topics
    }
    return {topic: f"{p.layer} behind" for topic, p in behind.items() if p is not None}


def wait_for_pipeline(
    settings: Settings, topics: list[str], console: Console, timeout_s: float,
    daemon: LocalDaemon | None = None,
) -> bool:
    """Wait until no topic has pending work and no run is queued or in progress."""
    import dagster as dg

    from leanops_dagster.instance import get_instance

    instance = get_instance(settings)
    active = [
        dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
    ]
    deadline = time.monotonic() + timeout_s
    quiet_since: float | None = None
    with console.status("waiting for sensors and runs") as status:
        while time.monotonic() < deadline:
            if daemon is not None and daemon.poll() is not None:
                log = settings.dagster_home / "daemon.log"
                console.print(f"[red]the Dagster daemon exited ({daemon.returncode}); see {log}")
                return False
            runs = instance.get_runs(filters=dg.RunsFilter(statuses=active))
            behind = pending_work(settings, topics)
            finished = instance.get_runs_count(
                filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS])
            )
            status.update(
                f"runs active: {len(runs)}, finished: {finished}; pending: "
                + (", ".join(f"{t} ({why})" for t, why in behind.items()) or "none")
            )
            if not runs and not behind:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since > 5:  # stays quiet across a sensor tick
                    return True
            else:
                quiet_since = None
            time.sleep(2)
    return False


def evaluate_all_topics_checks(settings: Settings, console: Console) -> bool:
    """Run the all-time checks once (one run of ``accountability_checks`` over every onboarded
    topic), so that every check in the UI has a result when the demo ends: their schedule's
    first tick may be 20 minutes away. Prints each topic's verdict of each check."""
    import dagster as dg

    from leanops_dagster.instance import get_instance
    from leanops_dagster.local.definitions import build_local_definitions

    job = build_local_definitions(settings).resolve_job_def("accountability_checks")
    instance = get_instance(settings)
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # the verdicts only
    result = job.execute_in_process(instance=instance, run_config=quiet, raise_on_error=False)
    evaluations = result.get_asset_check_evaluations()
    for evaluation in evaluations:
        verdict = "[green]passed[/green]" if evaluation.passed else (
            "[yellow]warning[/yellow]" if evaluation.severity == dg.AssetCheckSeverity.WARN
            else "[red]failed[/red]")
        console.print(f"check {evaluation.asset_key.to_user_string()} "
                      f"{evaluation.check_name}: {verdict} ({evaluation.partition})")
    return result.success and bool(evaluations) and all(e.passed for e in evaluations)


def run_demo(settings: Settings, *, console: Console, timeout_s: float = 900) -> bool:
    from leanops_dagster.local.accountability_report import accountability_rows, render
    from leanops_dagster.local.injector.demo_mix import demo_mix
    from leanops_dagster.local.stack import LocalStack
    from leanops_dagster.schemas.registry import SchemaRegistry

    registry = SchemaRegistry.from_settings(settings)
    topics = [FIRST_TOPIC, SECOND_TOPIC]
    console.rule("Lean-Ops demo")
    console.print(f"LEANOPS_HOME = {settings.home}")
    daemon = start_daemon(settings)
    ok = True
    try:
        with LocalStack(settings) as stack:
            console.print(f"Day 1: deploying only the [bold]{FIRST_TOPIC}[/bold] schema")
            registry.deploy(FIRST_TOPIC)
            for topic, bodies in demo_mix(seed=7).items():
                console.print(f"injecting {len(bodies):,} messages into {topic}")
                stack.send(topic, bodies)
            stack.wait_until_quiet()
            console.print("ingestion quiet: every message is in RAW or in the DLQ records")
            ok &= wait_for_pipeline(settings, [FIRST_TOPIC], console, timeout_s, daemon)
            rows = accountability_rows(settings, topics)
            console.print(render(rows, "Accountability after Day 1 "
                                 f"({SECOND_TOPIC} buffered in RAW, no schema)"))

            console.print(f"Day 2: deploying the [bold]{SECOND_TOPIC}[/bold] schema")
            registry.deploy(SECOND_TOPIC)
            ok &= wait_for_pipeline(settings, topics, console, timeout_s, daemon)
            rows = accountability_rows(settings, topics)
            console.print(render(rows, "Accountability after Day 2"))
            ok &= all(eq.balanced for _, eq in rows)
            console.print("evaluating the all-time checks of every topic (accountability_checks)")
            ok &= evaluate_all_topics_checks(settings, console)
    finally:
        daemon.stop()
    console.print("[green]demo complete[/green]" if ok else "[red]demo found a problem[/red]")
    console.print("Open the UI on the same state with: [bold]make dev[/bold]")
    return ok
