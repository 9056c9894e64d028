"""After a topic run and the demo's all-topics step, every check of the definitions has a
result (none "Not evaluated" in the UI)."""

from __future__ import annotations

from rich.console import Console

from leanops_dagster.demo import evaluate_all_topics_checks
from leanops_dagster.instance import get_instance
from leanops_dagster.local import ledger
from leanops_dagster.local.definitions import build_local_definitions
from tests.dagster.conftest import append_raw, event, raw_row


def test_every_check_is_evaluated_after_a_run_and_the_all_topics_step(settings, registry,
                                                                      catalog):
    registry.deploy("events")
    append_raw(catalog, [raw_row("m1", event("k1")), raw_row("m2", event("k2"))])
    ledger.record(settings, ledger.SENT, {"events": 2})  # what the local stack would record
    definitions = build_local_definitions(settings)
    instance = get_instance(settings)
    instance.add_dynamic_partitions("topics", ["events"])
    run = definitions.resolve_job_def("topic_pipeline").execute_in_process(
        instance=instance, partition_key="events")
    assert run.success
    all_checks = list(definitions.resolve_asset_graph().asset_check_keys)
    per_run = set(definitions.resolve_job_def("topic_pipeline").asset_layer.asset_graph
                  .asset_check_keys)
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(all_checks)
    assert set(latest) == per_run and len(per_run) < len(all_checks)  # the run's own only

    console = Console(record=True, width=200)
    assert evaluate_all_topics_checks(settings, console)
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(all_checks)
    assert set(latest) == set(all_checks)  # nothing left "Not evaluated"
    output = console.export_text()
    for name in ("pre_raw_balance", "post_raw_balance_all_time", "curated_balance_all_time",
                 "curated_freshness"):
        assert f"{name}: passed" in output


def test_a_failing_all_topics_check_makes_the_step_report_a_problem(settings, registry, catalog):
    registry.deploy("events")
    append_raw(catalog, [raw_row("m1", event("k1"))])
    ledger.record(settings, ledger.SENT, {"events": 5})  # 4 messages unaccounted for
    get_instance(settings).add_dynamic_partitions("topics", ["events"])
    console = Console(record=True, width=200)
    assert not evaluate_all_topics_checks(settings, console)
    assert "pre_raw_balance: warning" in console.export_text()
