"""Tick durations as a metric: how long each sensor's and schedule's ticks take.

Dagster records every tick (start, end, status) in the instance; this sensor reads the ticks
that ended since its cursor and publishes, per sensor or schedule, the longest one as
``TickSeconds`` (dimension ``Instigator``; CloudWatch in AWS, the sensor's log locally). The
figure includes what Dagster does for the tick (submitting the runs it requested), not only the
sensor's own code. A schedule's tick starts at its scheduled time (Dagster records no other
start), so its figure also counts how late the scheduler got to it (e.g. a tick due while the
daemon was starting). One query per instigator (a fixed set), whatever the number of topics.
"""

from __future__ import annotations

import time

import dagster as dg

from leanops_dagster.resources.metrics import (
    INSTIGATOR_DIMENSION,
    TICK_SECONDS_METRIC,
    Metric,
    PipelineMetricsResource,
)

#: a tick still running when the cursor was taken is found on the next ticks up to this late
LATE_TICK_S = 300


def tick_durations(
    instance: dg.DagsterInstance, ended_after: float, ended_before: float | None = None
) -> dict[str, list[float]]:
    """Sensor or schedule name -> durations (s) of its ticks that ended in the interval."""
    durations: dict[str, list[float]] = {}
    for state in instance.all_instigator_state():
        ticks = instance.get_ticks(
            state.instigator_origin_id, state.selector_id, after=ended_after - LATE_TICK_S
        )
        for tick in ticks:
            end = tick.end_timestamp
            if end is None or end <= ended_after or (ended_before and end > ended_before):
                continue
            durations.setdefault(state.instigator_name, []).append(end - tick.timestamp)
    return durations


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Publishes each sensor's and schedule's longest tick of the last minute as the "
    "TickSeconds metric (ticks must stay short whatever the number of topics).",
)
def tick_metrics_sensor(
    context: dg.SensorEvaluationContext, metrics: PipelineMetricsResource
) -> dg.SensorResult:
    now = time.time()
    since = float(context.cursor) if context.cursor else now - 60
    found = tick_durations(context.instance, since, now)
    metrics.put(
        [Metric(TICK_SECONDS_METRIC, round(max(values), 3), "Seconds",
                {INSTIGATOR_DIMENSION: name})
         for name, values in sorted(found.items())],
        context.log,
    )
    if found:
        name, seconds = max(((n, max(v)) for n, v in found.items()), key=lambda item: item[1])
        context.log.info(f"slowest tick since the last: {name} {seconds:.2f} s")
    return dg.SensorResult(
        cursor=str(now), skip_reason=None if found else "no tick ended since the last one"
    )
