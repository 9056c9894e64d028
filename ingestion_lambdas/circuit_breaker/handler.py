"""circuit_breaker: disables / re-enables a topic's SQS event source mapping.

Handler string: ``ingestion_lambdas.circuit_breaker.handler.lambda_handler``. Invoke it on an
EventBridge schedule (e.g. every minute) and/or from a CloudWatch alarm via SNS; every
invocation evaluates every topic in ``CB_MAPPINGS`` (or only ``event["topic"]`` when given).

Per topic:

1. state from SSM Parameter Store, ``<CB_STATE_PARAMETER_PREFIX><topic>`` (JSON
   ``{"status", "since"}``; absent = closed). SSM rather than the mapping itself because the
   mapping cannot tell "half-open" from "closed", and an operator disabling a mapping by hand
   must not be mistaken for an open breaker;
2. the window's counts from CloudWatch ``get_metric_data``: per-topic ``MessagesFailed`` and
   ``MessagesReceived`` (namespace ``METRICS_NAMESPACE``, dimensions ``service=sqs_processor``,
   ``topic``) that sqs_processor publishes as EMF. One function serves all topic queues, so the
   function-level Lambda ``Errors``/``Invocations`` cannot say which topic fails, and with
   ``ReportBatchItemFailures`` a failing Firehose shows up as failed items, not Lambda errors;
3. ``breaker.decide``; on a transition, ``lambda.update_event_source_mapping(UUID, Enabled)``
   first, then the new state is saved (a failed update is retried on the next run), and the
   transition is logged as one structured line.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from aws_lambda_powertools import Logger

from ingestion_lambdas.circuit_breaker.breaker import (
    Action,
    BreakerState,
    Decision,
    Status,
    WindowStats,
    decide,
    window_start,
)
from ingestion_lambdas.common import constants as c
from ingestion_lambdas.common.clients import client
from ingestion_lambdas.common.config import Config, get_config

logger = Logger(service=c.CIRCUIT_BREAKER_SERVICE)


def state_parameter_name(config: Config, topic: str) -> str:
    return f"{config.breaker_state_parameter_prefix}{topic}"


def load_state(ssm: Any, name: str) -> BreakerState:
    try:
        value = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return BreakerState()
    return BreakerState.from_json(value)


def save_state(ssm: Any, name: str, state: BreakerState) -> None:
    ssm.put_parameter(Name=name, Value=state.to_json(), Type="String", Overwrite=True)


def read_window(
    cloudwatch: Any, *, topic: str, start: dt.datetime, end: dt.datetime, config: Config
) -> WindowStats:
    """Sum of the topic's received and failed messages in ``[start, end)``."""
    seconds = (end - start).total_seconds()
    if seconds < 1:
        return WindowStats(requests=0, errors=0)
    period = max(60, math.ceil(seconds / 60) * 60)
    dimensions = [
        {"Name": "service", "Value": c.SQS_PROCESSOR_SERVICE},
        {"Name": "topic", "Value": topic},
    ]

    def query(query_id: str, metric: str) -> dict[str, Any]:
        return {
            "Id": query_id,
            "MetricStat": {
                "Metric": {
                    "Namespace": config.metrics_namespace,
                    "MetricName": metric,
                    "Dimensions": dimensions,
                },
                "Period": period,
                "Stat": "Sum",
            },
            "ReturnData": True,
        }

    totals = {"received": 0.0, "failed": 0.0}
    kwargs: dict[str, Any] = {
        "MetricDataQueries": [
            query("received", c.METRIC_RECEIVED),
            query("failed", c.METRIC_FAILED),
        ],
        "StartTime": start,
        "EndTime": end,
    }
    while True:
        response = cloudwatch.get_metric_data(**kwargs)
        for result in response.get("MetricDataResults", []):
            if result.get("Id") in totals:
                totals[result["Id"]] += sum(result.get("Values", []))
        token = response.get("NextToken")
        if not token:
            break
        kwargs["NextToken"] = token
    return WindowStats(requests=int(totals["received"]), errors=int(totals["failed"]))


def evaluate_topic(
    topic: str,
    *,
    cloudwatch: Any,
    lambda_client: Any,
    ssm: Any,
    config: Config,
    now: dt.datetime,
) -> Decision:
    """Run the breaker once for one topic; returns the decision taken."""
    uuid = config.breaker_mappings[topic]
    parameter = state_parameter_name(config, topic)
    state = load_state(ssm, parameter)
    if state.status is Status.OPEN:
        window = WindowStats(requests=0, errors=0)  # the mapping is off; nothing to measure
    else:
        window = read_window(
            cloudwatch, topic=topic, start=window_start(state, now, config.breaker), end=now,
            config=config,
        )
    decision = decide(state, window, now, config.breaker)
    if not decision.transition:
        return decision
    if decision.action is not Action.NONE:
        lambda_client.update_event_source_mapping(
            UUID=uuid, Enabled=decision.action is Action.ENABLE
        )
    save_state(ssm, parameter, decision.state)
    log = logger.warning if decision.state.status is Status.OPEN else logger.info
    log(
        "circuit breaker transition",
        extra={
            "topic": topic,
            "from_state": decision.previous.value,
            "to_state": decision.state.status.value,
            "action": decision.action.value,
            "reason": decision.reason,
            "requests": window.requests,
            "errors": window.errors,
            "error_rate": round(window.error_rate, 4),
            "event_source_mapping": uuid,
        },
    )
    return decision


def evaluate(
    event: dict[str, Any] | None,
    *,
    cloudwatch: Any,
    lambda_client: Any,
    ssm: Any,
    config: Config,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Evaluate every configured topic (or ``event["topic"]``); returns a per-topic summary."""
    now = now or dt.datetime.now(dt.UTC)
    requested = (event or {}).get("topic") if isinstance(event, dict) else None
    topics = [requested] if requested in config.breaker_mappings else sorted(
        config.breaker_mappings
    )
    summary: dict[str, Any] = {}
    for topic in topics:
        try:
            decision = evaluate_topic(
                topic, cloudwatch=cloudwatch, lambda_client=lambda_client, ssm=ssm,
                config=config, now=now,
            )
        except Exception as exc:  # one topic's failure must not stop the others
            logger.exception("circuit breaker evaluation failed", extra={"topic": topic})
            summary[topic] = {"error": repr(exc)}
            continue
        summary[topic] = {
            "from": decision.previous.value,
            "to": decision.state.status.value,
            "action": decision.action.value,
            "reason": decision.reason,
        }
    return summary


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return evaluate(
        event, cloudwatch=client("cloudwatch"), lambda_client=client("lambda"),
        ssm=client("ssm"), config=get_config(),
    )
