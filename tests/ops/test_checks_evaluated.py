"""After a topic run and the demo's all-topics step, every check of the definitions has a
result (none "Not evaluated" in the UI)."""

from __future__ import annotations

import dagster as dg
from rich.console import Console

from leanops_dagster.assets.keys import STANDARDIZED
from leanops_dagster.instance import get_instance
from leanops_dagster.local import ledger
from leanops_dagster.local.definitions import build_local_definitions
from leanops_dagster.local.demo import evaluate_all_topics_checks
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


def test_thirty_topics_in_one_run_get_the_verdicts_of_one_run_per_topic(
    settings, catalog, tmp_schemas
):
    """The one-run evaluation (``accountability_checks`` now) against what the schedule did
    before: one run of the partitioned checks per topic. Same verdict for every check and
    topic, with passing and failing ones of each kind among them."""
    import shutil

    from leanops_dagster.definitions import build_definitions
    from leanops_dagster.jobs import ALL_TOPICS_CHECKS
    from leanops_dagster.local.resources import local_resources
    from leanops_dagster.pipeline.layout import TopicTables
    from leanops_dagster.resources.pipeline import PipelineConfigResource
    from leanops_dagster.schemas.registry import SchemaRegistry
    from leanops_dagster.settings import get_settings

    topics = [f"t{i:02d}" for i in range(30)]
    processed = topics[:4]
    for topic in processed:
        shutil.copytree(tmp_schemas / "events", tmp_schemas / topic)
    settings = get_settings(home=settings.home, schema_registry=str(tmp_schemas))
    registry = SchemaRegistry.from_settings(settings)
    instance = get_instance(settings)
    instance.add_dynamic_partitions("topics", topics)
    for i, topic in enumerate(topics):
        rows = [raw_row(f"{topic}-{n}", event(f"k{n}"), topic=topic) for n in range(1 + i % 3)]
        append_raw(catalog, rows, topic=topic)
        ledger.record(settings, ledger.SENT, {topic: len(rows) + i % 2})  # odd: one in flight
    definitions = build_local_definitions(settings)
    for topic in processed:
        registry.deploy(topic)
        assert definitions.resolve_job_def("topic_pipeline").execute_in_process(
            instance=instance, partition_key=topic).success
    catalog.load_table(TopicTables("t01").standardized).delete("message_id = 't01-0'")
    catalog.load_table(TopicTables("t02").curated).delete("idempotency_key = 'k0'")

    # a target of 0 minutes: a topic with unprocessed RAW data fails freshness
    pipeline = PipelineConfigResource(pii_hash_key="unused by the checks", freshness_minutes=0)
    definitions = build_definitions(settings, resources={**local_resources(settings),
                                                         "pipeline": pipeline})
    one_run = definitions.resolve_job_def("accountability_checks").execute_in_process(
        instance=instance)
    assert one_run.success
    per_topic_job = dg.define_asset_job(
        "per_topic_checks", selection=dg.AssetSelection.checks(*ALL_TOPICS_CHECKS))
    before = dg.Definitions.merge(definitions, dg.Definitions(jobs=[per_topic_job]))
    per_topic = [
        evaluation
        for topic in topics
        for evaluation in before.resolve_job_def("per_topic_checks").execute_in_process(
            instance=instance, tags={"dagster/partition": topic}).get_asset_check_evaluations()
    ]

    def verdicts(evaluations) -> dict:
        return {
            (e.asset_key, e.check_name, e.partition): (
                e.passed, e.severity,
                e.metadata["equations"].value if "equations" in e.metadata else None)
            for e in evaluations
        }

    together, apart = verdicts(one_run.get_asset_check_evaluations()), verdicts(per_topic)
    assert len(together) == 4 * 30
    assert together == apart
    failed = {(name, topic) for (_, name, topic), (passed, *_) in together.items() if not passed}
    for name in ("pre_raw_balance", "post_raw_balance_all_time", "curated_balance_all_time",
                 "curated_freshness"):
        assert any(n == name for n, _ in failed), f"no failing {name}: the test proves little"
    assert ("post_raw_balance_all_time", "t01") in failed
    assert ("curated_balance_all_time", "t02") in failed
    assert ("curated_freshness", "t00") not in failed and ("curated_freshness", "t10") in failed
