"""Alert sensors, one per kind: a failed run, a failed ERROR check, a stale topic, new drift.

Each event is published once (``AlertSink``: SNS in AWS, the sensor log locally) and never
again: every sensor keeps what it has reported in its cursor. Nothing passing alerts.

- ``run_failure_alert_sensor``: Dagster's run-failure sensor (its own cursor over run events).
  A run whose only failures are blocking checks is left to the check sensor, which has the
  numbers: one message per incident, not two.
- ``check_failure_alert_sensor``: asset-check evaluations that failed with ERROR severity (the
  per-run water balances and CDE rate, which block, and the all-time balances). Cursor: the
  check executions it has alerted, per check.
- ``stale_topic_alert_sensor``: a topic whose oldest data not yet in Curated is older than the
  freshness target; once per stale spell (cursor: the topics alerted and still stale). It also
  publishes each topic's Curated lag as a metric (the dashboard's freshness panel). Its cursor
  also keeps, per topic, the metadata locations of its three tables and what was pending: a
  topic none of whose tables changed is not read again (its lag is the same data, older).
- ``drift_alert_sensor``: new rows of the drift log, one message per topic with its new
  columns (cursor: the columns reported per topic); publishes the drift metric (the alarm).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import dagster as dg

from leanops_dagster import constants
from leanops_dagster._dagster_internals import (
    AssetCheckExecutionRecordStatus,
    SerializableErrorInfo,
)
from leanops_dagster.iceberg.catalog import metadata_locations
from leanops_dagster.partitions import topic_partitions
from leanops_dagster.pipeline.layout import TopicTables
from leanops_dagster.pipeline.status import oldest_pending
from leanops_dagster.resources.alerts import Alert, AlertKind, AlertSink
from leanops_dagster.resources.catalog import IcebergCatalogResource
from leanops_dagster.resources.metrics import (
    CURATED_LAG_METRIC,
    SCHEMA_DRIFT_METRIC,
    TOPIC_DIMENSION,
    Metric,
    PipelineMetricsResource,
)
from leanops_dagster.resources.pipeline import PipelineConfigResource

PARTITION_TAG = "dagster/partition"
#: A check sensor without a cursor (first start) reports failures of the last hour only, so
#: switching it on over an old instance does not replay its whole history as alerts.
FIRST_TICK_LOOKBACK_S = 3600
FAILED_EXECUTIONS_PER_CHECK = 50
CHECK_FAILED_ERROR = "DagsterAssetCheckFailedError"


def _layer(asset_path: Iterable[str]) -> str | None:
    first = next(iter(asset_path), None)
    return first if first in constants.ZONES else None


def _numbers_and_details(metadata: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """Scalar metadata become the alert's numbers; tables and JSON its details."""
    numbers: dict[str, Any] = {}
    details: list[str] = []
    for name, entry in metadata.items():
        value = getattr(entry, "value", entry)
        if isinstance(value, bool | int | float):
            numbers[name] = value
        elif isinstance(entry, dg.MarkdownMetadataValue):
            details.append(f"{name}:\n{value}")
        elif isinstance(entry, dg.JsonMetadataValue):
            details.append(f"{name}: {json.dumps(value, sort_keys=True, default=str)}")
        elif isinstance(value, str) and len(value) <= 80:
            numbers[name] = value
    return numbers, "\n\n".join(details)


def _deliver(
    items: list[tuple[Alert | None, Callable[[], None]]], sink: AlertSink, log
) -> tuple[int, str | None]:
    """Publish each alert (None: nothing to send), then run its cursor step, in order. Stops
    at the first failed publish so the cursor only covers what was sent: the next tick retries
    the rest. Returns the number of alerts sent and the error, if any."""
    sent = 0
    for alert, mark_done in items:
        if alert is not None:
            try:
                sink.publish(alert, log)
            except Exception as exc:  # any failure: keep the cursor true, retry next tick
                log.error(f"alert delivery to {sink.destination} failed: {exc!r}")
                return sent, f"alert delivery failed after {sent} sent: {exc}"
            sent += 1
        mark_done()
    return sent, None


# --- failed runs ------------------------------------------------------------------------------
def run_failure_alert(context: dg.RunFailureSensorContext) -> Alert | None:
    """The alert for a failed run, or None when only blocking checks failed it."""
    run = context.dagster_run
    failures = context.get_step_failure_events()
    errors = [event.step_failure_data.error for event in failures]
    if errors and all(e is not None and e.cls_name == CHECK_FAILED_ERROR for e in errors):
        return None
    steps = sorted({event.step_key for event in failures if event.step_key})
    layers = sorted({layer for s in steps if (layer := _layer(s.split("__")))})
    messages = [_root_cause(e) for e in errors if e is not None][:3]
    return Alert(
        kind=AlertKind.RUN_FAILED,
        title=f"Dagster run failed: {run.job_name}",
        topic=run.tags.get(PARTITION_TAG),
        layer=", ".join(layers) or None,
        numbers={
            "failed_steps": len(steps),
            "retry_number": int(run.tags.get("dagster/retry_number", 0)),
        },
        details="\n".join(messages) or (context.failure_event.message or ""),
        run_id=run.run_id,
    )


def _root_cause(error: SerializableErrorInfo) -> str:
    """The user code's exception, not Dagster's wrapper around it ("Error occurred while...")."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


@dg.run_failure_sensor(
    name="run_failure_alert_sensor",
    monitor_all_code_locations=True,  # also runs started in process (`leanops run`)
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One alert per failed run (job, topic, layer, failed steps, error). Runs "
    "failed only by a blocking check are alerted by check_failure_alert_sensor.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alerts: AlertSink) -> None:
    alert = run_failure_alert(context)
    if alert is None:
        context.log.info(f"run {context.dagster_run.run_id}: failed by a blocking check only")
        return
    # None keeps the sensor going over every failed run of this tick (a value would stop it).
    alerts.publish(alert, context.log)


# --- failed checks ----------------------------------------------------------------------------
def unbalanced_topics(metadata: Mapping[str, Any]) -> list[str]:
    """Topics whose row of an all-topics check's equations table is not balanced (the table
    of ``checks/accountability.equations_table``: first cell topic, last cell yes / **NO**)."""
    entry = metadata.get("equations")
    if not isinstance(entry, dg.MarkdownMetadataValue):
        return []
    topics = []
    for line in (entry.value or "").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 1 and cells[-1] == "**NO**":
            topics.append(cells[0])
    return sorted(set(topics))


def check_failure_alert(
    evaluation: dg.AssetCheckEvaluation, run: dg.DagsterRun | None, run_id: str
) -> Alert:
    numbers, details = _numbers_and_details(evaluation.metadata)
    kind = "blocking check" if evaluation.blocking else "check"
    # a per-run check names its partition; an all-topics check, the topics that fail it
    topic = evaluation.partition or (run.tags.get(PARTITION_TAG) if run else None)
    return Alert(
        kind=AlertKind.CHECK_FAILED,
        title=f"{kind} failed: {evaluation.asset_key.to_user_string()} {evaluation.check_name}",
        topic=topic or ", ".join(unbalanced_topics(evaluation.metadata)) or None,
        layer=_layer(evaluation.asset_key.path),
        check=evaluation.check_name,
        numbers=numbers,
        details=details,
        run_id=run_id,
    )


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One alert per asset-check evaluation that failed with ERROR severity (water "
    "balances, CDE error rate), with the check's numbers.",
)
def check_failure_alert_sensor(
    context: dg.SensorEvaluationContext, alerts: AlertSink
) -> dg.SensorResult | dg.SkipReason:
    if context.repository_def is None:
        raise dg.DagsterInvariantViolationError("check_failure_alert_sensor needs its definitions")
    cursor = json.loads(context.cursor) if context.cursor else {
        "since": time.time() - FIRST_TICK_LOOKBACK_S, "alerted": {}}
    alerted: dict[str, list[int]] = cursor["alerted"]
    storage = context.instance.event_log_storage
    items: list[tuple[Alert | None, Callable[[], None]]] = []
    for check_key in sorted(context.repository_def.asset_graph.asset_check_keys, key=str):
        name = check_key.to_user_string()
        # newest first; execution ids follow run starts, not completions, so the cursor keeps
        # the ids it alerted rather than a high-water mark (a slower run may finish later)
        records = storage.get_asset_check_execution_history(
            check_key, limit=FAILED_EXECUTIONS_PER_CHECK,
            status={AssetCheckExecutionRecordStatus.FAILED},
        )
        window = {record.id for record in records}
        done = [i for i in alerted.get(name, []) if i in window]  # older ids are never refetched
        alerted[name] = done
        for record in reversed(records):
            evaluation = record.event.dagster_event.event_specific_data if record.event else None
            if (record.id in done or evaluation is None
                    or evaluation.severity != dg.AssetCheckSeverity.ERROR
                    or record.event.timestamp < cursor["since"]):
                continue

            def mark(name: str = name, execution_id: int = record.id) -> None:
                alerted[name].append(execution_id)

            alert = check_failure_alert(
                evaluation, context.instance.get_run_by_id(record.run_id), record.run_id)
            items.append((alert, mark))
    sent, error = _deliver(items, alerts, context.log)
    return dg.SensorResult(
        cursor=json.dumps(cursor, sort_keys=True),
        skip_reason=error or (None if sent else "no new failed ERROR check"),
    )


# --- stale topics ----------------------------------------------------------------------------
@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One alert when a topic's oldest data not yet in Curated is older than the "
    "freshness target (again only after it was fresh); publishes each topic's Curated lag.",
)
def stale_topic_alert_sensor(
    context: dg.SensorEvaluationContext,
    catalog: IcebergCatalogResource,
    pipeline: PipelineConfigResource,
    alerts: AlertSink,
    metrics: PipelineMetricsResource,
) -> dg.SensorResult | dg.SkipReason:
    topics = sorted(context.instance.get_dynamic_partitions(topic_partitions.name))
    if not topics:
        return dg.SkipReason("no onboarded topic")
    state = json.loads(context.cursor) if context.cursor else {}
    if "alerted" not in state:  # the cursor before "seen": the alerted topics only
        state = {"alerted": state, "seen": {}}
    alerted: dict[str, int] = state["alerted"]
    seen: dict[str, dict] = state["seen"]
    iceberg = catalog.load()
    locations = _zone_locations(iceberg, catalog)
    now = dt.datetime.now(dt.UTC)
    target_s = pipeline.freshness_minutes * 60
    lags: list[Metric] = []
    pending: list[tuple[Alert | None, Callable[[], None]]] = []
    for topic in topics:
        tables = TopicTables(topic, catalog.namespace_prefix)
        stamp = _tables_stamp(locations, tables)
        known = seen.get(topic)
        if stamp is None or known is None or known["stamp"] != stamp:
            # a table of the topic changed (or no listing): read where it stands
            behind = oldest_pending(iceberg, tables)
            known = {"stamp": stamp, "layer": behind.layer if behind else None,
                     "snapshot_id": behind.oldest.snapshot_id if behind else None,
                     "ts_ms": behind.oldest.timestamp_ms if behind else None}
            seen[topic] = known
        # unchanged tables: what was pending is still pending, only older (nothing read)
        lag = max(0.0, now.timestamp() - known["ts_ms"] / 1000) if known["ts_ms"] else 0.0
        lags.append(Metric(CURATED_LAG_METRIC, lag, "Seconds", {TOPIC_DIMENSION: topic}))
        if lag <= target_s:
            alerted.pop(topic, None)  # fresh again: a later stale spell alerts anew
            continue
        if topic in alerted:
            continue
        snapshot_id = known["snapshot_id"] or 0

        def mark(topic: str = topic, snapshot_id: int = snapshot_id) -> None:
            alerted[topic] = snapshot_id

        pending.append((Alert(
            kind=AlertKind.STALE_TOPIC,
            title=f"topic stale: Curated {round(lag / 60, 1)} min behind",
            topic=topic,
            layer=known["layer"],
            check="curated_freshness",
            numbers={"lag_minutes": round(lag / 60, 1),
                     "target_minutes": pipeline.freshness_minutes,
                     "oldest_pending_snapshot_id": snapshot_id},
        ), mark))
    for topic in set(seen) - set(topics):
        del seen[topic]
    metrics.put(lags, context.log)
    sent, error = _deliver(pending, alerts, context.log)
    return dg.SensorResult(
        cursor=json.dumps({"alerted": alerted, "seen": seen}, sort_keys=True),
        skip_reason=error or (None if sent else "no topic newly stale"),
    )


def _zone_locations(iceberg, catalog: IcebergCatalogResource) -> dict[str, dict[str, str]] | None:
    """Zone namespace -> {table name: metadata location}, from the catalog alone (None: the
    catalog has no listing, every topic's tables are read)."""
    out: dict[str, dict[str, str]] = {}
    for zone in (constants.RAW_ZONE, constants.STANDARDIZED_ZONE, constants.CURATED_ZONE):
        namespace = catalog.namespace(zone)
        listed = metadata_locations(iceberg, namespace)
        if listed is None:
            return None
        out[namespace] = listed
    return out


def _tables_stamp(locations: dict[str, dict[str, str]] | None, tables: TopicTables) -> str | None:
    """The metadata locations of a topic's RAW, Standardized and Curated tables, as one string
    that changes with any commit to any of them (None: unknown)."""
    if locations is None:
        return None
    return "|".join(
        locations.get(namespace, {}).get(name, "")
        for namespace, name in (tables.raw, tables.standardized, tables.curated)
    )


# --- schema drift ----------------------------------------------------------------------------
@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One alert per topic with new drift-log entries (columns the curated schema "
    "does not declare); publishes the count of new drift columns (the schema-drift alarm).",
)
def drift_alert_sensor(
    context: dg.SensorEvaluationContext,
    catalog: IcebergCatalogResource,
    alerts: AlertSink,
    metrics: PipelineMetricsResource,
) -> dg.SensorResult | dg.SkipReason:
    cursor = json.loads(context.cursor) if context.cursor else {"snapshot_id": None,
                                                                 "reported": {}}
    reported: dict[str, list[str]] = cursor["reported"]
    iceberg = catalog.load()
    identifier = (catalog.namespace(constants.CURATED_ZONE), constants.DRIFT_LOG_TABLE)
    if not iceberg.table_exists(identifier):
        return dg.SkipReason("no drift log yet")
    log_table = iceberg.load_table(identifier)
    snapshot = log_table.current_snapshot()
    if snapshot is None or snapshot.snapshot_id == cursor["snapshot_id"]:
        return dg.SkipReason("no new drift-log entry")
    rows = log_table.scan(
        selected_fields=("topic_name", "column_name", "rows_seen", "standardized_snapshot_id")
    ).to_arrow().to_pylist()
    new: dict[str, dict[str, dict]] = {}  # topic -> column -> its first log row
    for row in rows:
        if row["column_name"] not in reported.get(row["topic_name"], ()):
            # two runs racing may log a column twice: it is one new column
            new.setdefault(row["topic_name"], {}).setdefault(row["column_name"], row)
    pending: list[tuple[Alert | None, Callable[[], None]]] = []
    for topic, by_column in sorted(new.items()):
        columns, entries = sorted(by_column), list(by_column.values())

        def mark(topic: str = topic, columns: list[str] = columns) -> None:
            reported[topic] = sorted({*reported.get(topic, []), *columns})

        pending.append((Alert(
            kind=AlertKind.SCHEMA_DRIFT,
            title=f"schema drift: {len(columns)} new column(s)",
            topic=topic,
            layer=constants.CURATED_ZONE,
            check="schema_drift",
            numbers={"new_columns": len(columns),
                     "rows_seen": sum(e["rows_seen"] or 0 for e in entries)},
            # column names only: sample values may hold personal data (they stay in the log)
            details="columns not in the curated schema (samples in "
            f"{'.'.join(identifier)}): " + ", ".join(columns),
        ), mark))
    sent, error = _deliver(pending, alerts, context.log)
    drift_metric = sum(len(new[t]) for t, _ in sorted(new.items())[:sent])
    if drift_metric:
        metrics.put([Metric(SCHEMA_DRIFT_METRIC, drift_metric, "Count")], context.log)
    if error is None:
        cursor["snapshot_id"] = snapshot.snapshot_id
    return dg.SensorResult(
        cursor=json.dumps({"snapshot_id": cursor["snapshot_id"], "reported": reported},
                          sort_keys=True),
        skip_reason=error or (None if sent else "no new drift column"),
    )


alert_sensors = [
    run_failure_alert_sensor, check_failure_alert_sensor, stale_topic_alert_sensor,
    drift_alert_sensor,
]
