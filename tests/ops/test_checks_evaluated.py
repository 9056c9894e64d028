"""After a topic run and the demo's all-topics step, every check of the definitions has a
result (none "Not evaluated" in the UI)."""

from __future__ import annotations

import dagster as dg
from rich.console import Console

from leanops_dagster.assets.keys import STANDARDIZED
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


def test_each_topic_gets_its_own_verdict(settings, catalog, tmp_schemas):
    """One topic losing rows fails its own partition's check; the other topic's passes."""
    import shutil

    from leanops_dagster.pipeline.layout import TopicTables
    from leanops_dagster.schemas.registry import SchemaRegistry
    from leanops_dagster.settings import get_settings

    shutil.copytree(tmp_schemas / "events", tmp_schemas / "clicks")  # a second topic
    settings = get_settings(home=settings.home, schema_registry=str(tmp_schemas))
    registry = SchemaRegistry.from_settings(settings)
    instance = get_instance(settings)
    definitions = build_local_definitions(settings)
    for topic in ("clicks", "events"):
        registry.deploy(topic)
        append_raw(catalog, [raw_row(f"{topic}-1", event("k1"), topic=topic),
                             raw_row(f"{topic}-2", event("k2"), topic=topic)], topic=topic)
        ledger.record(settings, ledger.SENT, {topic: 2})
    instance.add_dynamic_partitions("topics", ["clicks", "events"])
    for topic in ("clicks", "events"):
        assert definitions.resolve_job_def("topic_pipeline").execute_in_process(
            instance=instance, partition_key=topic).success
    # a Standardized row of events lost behind the pipeline's back
    catalog.load_table(TopicTables("events").standardized).delete("message_id = 'events-1'")

    console = Console(record=True, width=200)
    assert not evaluate_all_topics_checks(settings, console)
    output = console.export_text()
    assert "post_raw_balance_all_time: failed (events)" in output
    assert "post_raw_balance_all_time: passed (clicks)" in output
    assert "curated_balance_all_time: passed (events)" in output
    key = dg.AssetCheckKey(STANDARDIZED, "post_raw_balance_all_time")
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
    verdicts = {r.event.dagster_event.event_specific_data.partition:
                r.event.dagster_event.event_specific_data.passed for r in records}
    assert verdicts == {"events": False, "clicks": True}
