"""`leanops watermarks` on a real LEANOPS_HOME and `leanops dlq replay` against SQS (moto)."""

from __future__ import annotations

import datetime as dt
import json

import boto3
from click.testing import CliRunner

from leanops_dagster.cli import main
from leanops_dagster.iceberg.history import consumer_tag
from leanops_dagster.pipeline.layout import TopicTables
from tests.dagster.conftest import append_raw, event, raw_row


def _watermarks(*args: str) -> list[dict]:
    result = CliRunner().invoke(main, ["watermarks", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _by_layer(rows: list[dict], topic: str) -> dict[str, dict]:
    return {row["layer"]: row for row in rows if row["topic"] == topic}


def _snapshot_time(catalog, identifier, snapshot_id: int) -> str:
    snapshot = catalog.load_table(identifier).snapshot_by_id(snapshot_id)
    return dt.datetime.fromtimestamp(snapshot.timestamp_ms / 1000, dt.UTC).isoformat(
        timespec="milliseconds")


def test_watermarks_follow_the_pipeline(settings, registry, catalog):
    assert _watermarks() == []
    empty = CliRunner().invoke(main, ["watermarks"])
    assert empty.exit_code == 0 and "no topic has a RAW table yet" in empty.output

    events = TopicTables("events")
    first = append_raw(catalog, [raw_row("m1", event("k1")), raw_row("m2", event("k2"))])
    append_raw(catalog, [raw_row("m3", event("k3"))])
    append_raw(catalog, [raw_row("s1", {"x": 1}, topic="sensor_readings")],
               topic="sensor_readings")

    # Day 1: nothing ran; every RAW row is pending behind a missing watermark
    before = _watermarks()
    assert {(r["topic"], r["layer"]) for r in before} == {
        ("events", "standardized"), ("sensor_readings", "standardized")}
    std = _by_layer(before, "events")["standardized"]
    assert (std["watermark_snapshot_id"], std["watermark_committed_at"]) == (None, None)
    assert (std["pending_rows"], std["pending_snapshots"]) == (3, 2)
    assert std["oldest_pending_at"] == _snapshot_time(catalog, events.raw, first)
    waited = (dt.datetime.now(dt.UTC)
              - dt.datetime.fromisoformat(std["oldest_pending_at"])).total_seconds()
    assert 0 < std["lag_seconds"] <= waited + 0.01
    table = CliRunner().invoke(main, ["watermarks"])
    assert "(never ran)" in table.output and "3 in 2" in table.output

    registry.deploy("events")
    assert CliRunner().invoke(main, ["run", "--topic", "events"]).exit_code == 0
    after = _by_layer(_watermarks("--topic", "events"), "events")
    raw_now = catalog.load_table(events.raw).current_snapshot().snapshot_id
    std_now = catalog.load_table(events.standardized).current_snapshot().snapshot_id
    assert after["standardized"]["watermark_snapshot_id"] == raw_now
    assert after["standardized"]["watermark_committed_at"] == _snapshot_time(
        catalog, events.raw, raw_now)
    assert after["curated"]["watermark_snapshot_id"] == std_now
    assert after["curated"]["upstream"] == "standardized.events"
    for layer in ("standardized", "curated"):
        assert (after[layer]["pending_rows"], after[layer]["lag_seconds"]) == (0, 0.0), layer

    newest = append_raw(catalog, [raw_row("m4", event("k4"))])
    behind = _by_layer(_watermarks("--topic", "events"), "events")
    assert behind["standardized"]["watermark_snapshot_id"] == raw_now  # unchanged
    assert behind["standardized"]["pending_rows"] == 1
    assert behind["standardized"]["oldest_pending_at"] == _snapshot_time(
        catalog, events.raw, newest)
    assert behind["curated"]["pending_rows"] == 0  # Standardized has not run again


def test_watermarks_refuse_an_unknown_or_invalid_topic(settings):
    unknown = CliRunner().invoke(main, ["watermarks", "--topic", "orders"])
    assert unknown.exit_code == 1 and "no RAW table" in unknown.output
    invalid = CliRunner().invoke(main, ["watermarks", "--topic", "Bad-Name"])
    assert invalid.exit_code == 2 and "invalid topic name" in invalid.output


def test_dlq_replay_moves_messages_back_per_topic(settings, aws, monkeypatch):
    monkeypatch.setenv("LEANOPS_ENVIRONMENT", "dev")  # AWS names, moto behind boto3
    sqs = boto3.client("sqs", region_name="us-east-1")
    dlq = sqs.create_queue(QueueName="lean-ops-dev-dlq")["QueueUrl"]
    queues = {t: sqs.create_queue(QueueName=f"lean-ops-dev-{t}-queue")["QueueUrl"]
              for t in ("events", "sensor_readings")}
    for topic, body in (("events", '{"a": 1}'), ("sensor_readings", '{"b": 2}'),
                        ("events", '{"a": 3}')):
        sqs.send_message(QueueUrl=dlq, MessageBody=body, MessageAttributes={
            "leanops_topic": {"DataType": "String", "StringValue": topic}})

    result = CliRunner().invoke(main, ["dlq", "replay", "--topic", "events"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "received": 3, "replayed": {"events": 2}, "skipped": {"sensor_readings": 1}}
    moved = sqs.receive_message(QueueUrl=queues["events"], MaxNumberOfMessages=10)["Messages"]
    assert sorted(m["Body"] for m in moved) == ['{"a": 1}', '{"a": 3}']
    left = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]
    assert int(left["ApproximateNumberOfMessagesNotVisible"]) == 1  # the other topic's stays


def test_dlq_replay_locally_needs_the_running_stack(settings):
    result = CliRunner().invoke(main, ["dlq", "replay"])
    assert result.exit_code == 1
    assert "no local stack is running" in result.output


def test_help_lists_the_runbook_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert "watermarks" in result.output and "dlq" in result.output
    replay_help = CliRunner().invoke(main, ["dlq", "replay", "--help"])
    assert "--topic" in replay_help.output and "--max-messages" in replay_help.output


def test_dlq_replay_job_does_the_same_work(aws):
    import dagster as dg

    from leanops_dagster.jobs import dlq_replay_job
    from leanops_dagster.resources.sqs import SqsResource

    sqs = boto3.client("sqs", region_name="us-east-1")
    dlq = sqs.create_queue(QueueName="lean-ops-dev-dlq")["QueueUrl"]
    queue = sqs.create_queue(QueueName="lean-ops-dev-events-queue")["QueueUrl"]
    sqs.send_message(QueueUrl=dlq, MessageBody='{"a": 1}', MessageAttributes={
        "leanops_topic": {"DataType": "String", "StringValue": "events"}})
    with dg.instance_for_test() as instance:
        result = dlq_replay_job.execute_in_process(
            instance=instance, resources={"sqs": SqsResource(environment="dev")})
    assert result.success
    (output,) = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert output.event_specific_data.metadata["replayed"].value == {"events": 1}
    moved = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in moved] == ['{"a": 1}']


def test_watermarks_report_a_watermark_that_is_not_in_the_history(settings, registry, catalog):
    registry.deploy("events")
    append_raw(catalog, [raw_row("m1", event("k1"))])
    assert CliRunner().invoke(main, ["run", "--topic", "events"]).exit_code == 0
    # the RAW snapshot under Standardized's watermark and the next one expired, its tag
    # removed first (by hand: maintenance keeps what the tag points to)
    watermark = catalog.load_table(TopicTables("events").raw).current_snapshot().snapshot_id
    append_raw(catalog, [raw_row("m2", event("k2"))])
    after = catalog.load_table(TopicTables("events").raw).current_snapshot().snapshot_id
    append_raw(catalog, [raw_row("m3", event("k3"))])
    raw = catalog.load_table(TopicTables("events").raw)
    raw.manage_snapshots().remove_tag(consumer_tag("standardized")).commit()
    raw.maintenance.expire_snapshots().by_ids([watermark, after]).commit()
    result = CliRunner().invoke(main, ["watermarks", "--topic", "events"])
    assert result.exit_code == 1
    assert f"snapshot {watermark}" in result.output
    assert "leanops recover --topic events" in result.output
