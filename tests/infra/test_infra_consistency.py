"""Terraform agrees with itself and with the Python code.

- every module input without a default is supplied, every argument is declared, every
  ``var.x`` / ``local.x`` / ``module.m.output`` used exists;
- the visibility-timeout rule (>= 6 x Lambda timeout) holds in dev.tfvars and the prod example;
- each Lambda handler string names a real function of ``ingestion_lambdas``, and every
  environment variable Terraform sets is one that ``ingestion_lambdas/common/config.py`` reads;
- queue, stream, bucket, Glue database and table names Terraform creates for ``dev`` equal
  ``leanops_dagster.constants`` / ``Settings``; the RAW Glue columns equal ``tables.py``;
- the Firehose routing JQ implements docs/contracts.md (run with ``jq`` when installed);
- the pipeline metrics (namespace, names, dimension) Terraform alarms on and draws equal
  ``leanops_dagster.resources.metrics``; the Dagster tasks get the alarm topic as their alert
  topic and may write only that namespace;
- no IAM statement grants ``*`` resources except for actions AWS cannot scope.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from infra_support import (
    ENVIRONMENTS,
    MODULES,
    REPO_ROOT,
    TF_ROOT,
    first,
    module_blocks,
    module_text,
    parse,
    render,
    tfvars,
)
from pyiceberg.types import IntegerType, LongType, StringType, TimestamptzType

from leanops_dagster import constants
from leanops_dagster.iceberg.tables import DLQ_ERRORS_SCHEMA, RAW_STAGING_SCHEMA
from leanops_dagster.resources import metrics
from leanops_dagster.settings import Settings

META_ARGUMENTS = {"source", "version", "providers", "depends_on", "count", "for_each"}
MODULE_DIRS = [TF_ROOT, *sorted(p for p in MODULES.iterdir() if p.is_dir())]


def _resources(module_dir: Path, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in sorted(module_dir.glob("*.tf")):
        for block in parse(path).get("resource", []):
            for name, body in block.get(kind, {}).items():
                found[name] = body
    return found


def _data(module_dir: Path, kind: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for path in sorted(module_dir.glob("*.tf")):
        for block in parse(path).get("data", []):
            for name, body in block.get(kind, {}).items():
                found[name] = body
    return found


def _module_calls(module_dir: Path) -> dict[str, dict[str, Any]]:
    return module_blocks(module_dir, "module")


def _module_dir(caller: Path, call: dict[str, Any]) -> Path:
    return (caller / first(call["source"])).resolve()


def _call_context(name: str, root_context: dict[str, str]) -> dict[str, str]:
    """``var.x`` of module ``name`` rendered for dev, for the string arguments the root gives."""
    call = _module_calls(TF_ROOT)[name]
    context = {}
    for key, value in call.items():
        value = first(value)
        if key in META_ARGUMENTS or not isinstance(value, str):
            continue
        try:
            context[f"var.{key}"] = render(value, root_context)
        except KeyError:
            continue  # computed (ARNs, module outputs): not a name we compare
    return context


# --- wiring -----------------------------------------------------------------------------------
@pytest.mark.parametrize("caller", MODULE_DIRS, ids=lambda p: p.name)
def test_module_calls_supply_every_required_input(caller):
    for name, call in _module_calls(caller).items():
        variables = module_blocks(_module_dir(caller, call), "variable")
        required = {v for v, body in variables.items() if "default" not in body}
        given = set(call) - META_ARGUMENTS
        assert required <= given, f"module {name}: missing {sorted(required - given)}"
        assert given <= set(variables), (
            f"module {name}: undeclared {sorted(given - set(variables))}"
        )


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=lambda p: p.name)
def test_every_variable_local_and_module_output_used_is_declared(module_dir):
    text = module_text(module_dir)
    declared_vars = set(module_blocks(module_dir, "variable"))
    used_vars = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)", text))
    assert used_vars <= declared_vars, f"undeclared: {sorted(used_vars - declared_vars)}"

    declared_locals = set(module_blocks(module_dir, "locals"))
    used_locals = set(re.findall(r"\blocal\.([A-Za-z_][A-Za-z0-9_]*)", text))
    assert used_locals <= declared_locals, f"undefined: {sorted(used_locals - declared_locals)}"

    calls = _module_calls(module_dir)
    for module_name, output in re.findall(r"\bmodule\.(\w+)\.(\w+)", text):
        assert module_name in calls, f"no module {module_name}"
        outputs = module_blocks(_module_dir(module_dir, calls[module_name]), "output")
        assert output in outputs, f"module.{module_name} has no output {output}"


def test_every_variable_has_a_description():
    for module_dir in MODULE_DIRS:
        for name, body in module_blocks(module_dir, "variable").items():
            assert first(body.get("description")), f"{module_dir.name}: var.{name}"


# --- the visibility rule ------------------------------------------------------------------------
def _visibility_validation() -> str:
    variable = module_blocks(MODULES / "messaging", "variable")["visibility_timeout_seconds"]
    return first(first(variable["validation"])["condition"])


def test_messaging_refuses_visibility_below_six_lambda_timeouts():
    condition = _visibility_validation()
    assert re.fullmatch(
        r"\$\{var\.visibility_timeout_seconds >= 6 \* var\.lambda_timeout_seconds\}", condition
    ), condition
    messaging = _module_calls(TF_ROOT)["messaging"]
    compute = _module_calls(TF_ROOT)["compute"]
    # The rule is about the real Lambda timeout: both modules get the same root variable.
    assert first(messaging["lambda_timeout_seconds"]) == "${var.sqs_processor_timeout_seconds}"
    assert first(compute["sqs_processor_timeout_seconds"]) == "${var.sqs_processor_timeout_seconds}"
    function, settings = _lambda_block("sqs_processor")
    assert first(function["timeout"]) == "${each.value.timeout}"
    assert first(settings["timeout"]) == "${var.sqs_processor_timeout_seconds}"


@pytest.mark.parametrize("name", ["dev.tfvars", "prod.tfvars.example"])
def test_environment_files_respect_the_runtime_rules(name):
    values = tfvars(ENVIRONMENTS / name)
    visibility = values["sqs_visibility_timeout_seconds"]
    timeout = values["sqs_processor_timeout_seconds"]
    assert visibility >= 6 * timeout, f"{name}: {visibility} s < 6 x {timeout} s"
    reserved = values["sqs_processor_reserved_concurrency"]
    assert reserved >= values["sqs_maximum_concurrency"] * len(values["topics"])
    assert 2 <= values["sqs_maximum_concurrency"] <= 1000
    for topic in values["topics"]:
        constants.validate_topic(topic)


def test_dev_uses_the_seeds_numbers(dev_vars):
    assert (
        dev_vars["sqs_visibility_timeout_seconds"],
        dev_vars["sqs_processor_timeout_seconds"],
    ) == (
        300,
        30,
    )


def test_root_defaults_respect_the_visibility_rule():
    variables = module_blocks(TF_ROOT, "variable")
    visibility = first(variables["sqs_visibility_timeout_seconds"]["default"])
    timeout = first(variables["sqs_processor_timeout_seconds"]["default"])
    assert visibility >= 6 * timeout


# --- Lambdas ------------------------------------------------------------------------------------
def _functions() -> dict[str, dict[str, str]]:
    return first(module_blocks(MODULES / "compute", "locals")["functions"])


def _lambda_block(key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``aws_lambda_function`` block that deploys ``key`` and its entry of ``local.consumers``
    (the queue consumers share one for_each block; circuit_breaker has its own, no entry)."""
    functions = _resources(MODULES / "compute", "aws_lambda_function")
    if key in functions:
        return functions[key], {}
    consumer = functions["consumer"]
    assert first(consumer["for_each"]) == "${local.consumers}"
    return consumer, first(module_blocks(MODULES / "compute", "locals")["consumers"])[key]


@pytest.mark.parametrize("key", ["sqs_processor", "dlq_processor", "circuit_breaker"])
def test_handler_strings_name_real_functions(key):
    handler = _functions()[key]["handler"]
    assert handler == f"ingestion_lambdas.{key}.handler.lambda_handler"
    module_name, _, attribute = handler.rpartition(".")
    assert (REPO_ROOT / Path(*module_name.split("."))).with_suffix(".py").is_file()
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attribute))
    function, settings = _lambda_block(key)
    reference = "local.functions[each.key]" if settings else f"local.functions.{key}"
    assert first(function["handler"]) == f"${{{reference}.handler}}"
    assert first(function["function_name"]) == f"${{{reference}.name}}"


def _lambda_environment() -> dict[str, dict[str, str]]:
    """Function -> the environment variables Terraform sets (values unrendered)."""
    locals_ = module_blocks(MODULES / "compute", "locals")
    common = first(locals_["common_environment"])
    environments = first(locals_["environments"])

    def merged(expression: str) -> dict[str, str]:
        # merge(local.common_environment, {...}) as bc-python-hcl2 prints it
        extra = dict(re.findall(r"'([A-Z_]+)': '((?:[^'\\]|\\.)*)'", expression))
        return {**common, **extra}

    result = {key: merged(value) for key, value in environments.items()}
    result["circuit_breaker"] = merged(first(locals_["circuit_breaker_environment"]))
    return result


def _config_reads() -> set[str]:
    source = (REPO_ROOT / "ingestion_lambdas" / "common" / "config.py").read_text()
    return set(re.findall(r"""(?:text|number|env\.get)\(\s*"([A-Z][A-Z0-9_]*)\"""", source))


def test_lambda_environment_is_what_the_lambda_config_reads():
    reads = _config_reads()
    assert {"FIREHOSE_STREAM_NAME", "DLQ_URL", "ARCHIVE_BUCKET", "QUEUE_NAME_PREFIX"} <= reads
    informational = {"RAW_NAMESPACE"}  # documented for operators; routing lives in the JQ
    for function, variables in _lambda_environment().items():
        unknown = {
            k for k in variables if not k.startswith("POWERTOOLS_") and k not in informational
        } - reads
        assert not unknown, f"{function} sets variables config.py never reads: {sorted(unknown)}"
    environment = _lambda_environment()
    for required in ("FIREHOSE_STREAM_NAME", "DLQ_URL", "QUEUE_NAME_PREFIX", "QUEUE_NAME_SUFFIX"):
        assert required in environment["sqs_processor"], required
    for required in ("FIREHOSE_STREAM_NAME", "ARCHIVE_BUCKET", "QUEUE_NAME_PREFIX"):
        assert required in environment["dlq_processor"], required
    assert {"CB_MAPPINGS", "CB_STATE_PARAMETER_PREFIX"} <= set(environment["circuit_breaker"])
    assert "RAW_NAMESPACE" in environment["sqs_processor"]


def test_lambda_queue_name_parts_rebuild_the_queue_names(root_context, dev_vars):
    context = _call_context("compute", root_context)
    variables = _lambda_environment()["sqs_processor"]
    prefix = render(variables["QUEUE_NAME_PREFIX"], context)
    suffix = variables["QUEUE_NAME_SUFFIX"]
    from ingestion_lambdas.common.config import Config

    config = Config.from_env({"QUEUE_NAME_PREFIX": prefix, "QUEUE_NAME_SUFFIX": suffix})
    for topic in dev_vars["topics"]:
        queue = f"{config.queue_name_prefix}{topic}{config.queue_name_suffix}"
        assert queue == constants.queue_name("dev", topic)


def test_event_source_mappings_report_batch_item_failures_with_bounded_concurrency():
    mappings = _resources(MODULES / "compute", "aws_lambda_event_source_mapping")
    assert set(mappings) == {"topic", "dlq"}
    for name, mapping in mappings.items():
        assert first(mapping["function_response_types"]) == ["ReportBatchItemFailures"], name
        assert "maximum_concurrency" in first(mapping["scaling_config"]), name
        assert "batch_size" in mapping and "maximum_batching_window_in_seconds" in mapping, name
    # The breaker owns `enabled` at run time; an apply must not undo it.
    ignored = first(first(mappings["topic"]["lifecycle"])["ignore_changes"])
    assert "enabled" in ignored or "${enabled}" in ignored


# --- names: Terraform == Python -------------------------------------------------------------------
def test_queue_and_dlq_names_equal_the_python_names(root_context, dev_vars):
    context = _call_context("messaging", root_context)
    queues = _resources(MODULES / "messaging", "aws_sqs_queue")
    settings = Settings(environment="dev")
    for topic in dev_vars["topics"]:
        name = render(first(queues["topic"]["name"]), {**context, "each.key": topic})
        assert name == constants.queue_name("dev", topic) == settings.queue_name(topic)
    assert render(first(queues["dlq"]["name"]), context) == settings.dlq_name == "lean-ops-dev-dlq"


def test_firehose_and_archive_names_equal_the_python_names(root_context):
    settings = Settings(environment="dev")
    ingestion = {**_call_context("ingestion", root_context)}
    stream = render(first(module_blocks(MODULES / "ingestion", "locals")["stream_name"]), ingestion)
    assert stream == settings.firehose_stream_name == "lean-ops-dev-raw-firehose"
    catalog = _call_context("catalog", root_context)
    assert catalog["var.archive_bucket_name"] == settings.archive_bucket_name
    assert catalog["var.archive_bucket_name"] == "lean-ops-dev-dlq-archive"


def test_glue_databases_and_raw_tables_equal_the_python_names(root_context, dev_vars):
    context = _call_context("catalog", root_context)
    database = _resources(MODULES / "catalog", "aws_glue_catalog_database")["zone"]
    names = {
        zone: render(first(database["name"]), {**context, "each.key": zone})
        for zone in constants.ZONES
    }
    for zone, name in names.items():
        assert name == constants.glue_database_name("dev", zone)

    # Settings in ECS get LEANOPS_NAMESPACE_PREFIX from Terraform: namespaces = Glue databases.
    orchestration = _call_context("orchestration", root_context)
    leanops = first(module_blocks(MODULES / "orchestration", "locals")["leanops_environment"])
    prefix = render(leanops["LEANOPS_NAMESPACE_PREFIX"], orchestration)
    settings = Settings(
        environment=render(leanops["LEANOPS_ENVIRONMENT"], orchestration), namespace_prefix=prefix
    )
    assert settings.raw_namespace == names["raw"]
    assert settings.standardized_namespace == names["standardized"]
    assert settings.curated_namespace == names["curated"]

    catalog_text = module_text(MODULES / "catalog")
    assert f'"${{topic}}{constants.RAW_TABLE_SUFFIX}"' in catalog_text
    catalog_locals = module_blocks(MODULES / "catalog", "locals")
    assert first(catalog_locals["dlq_errors_table_name"]) == constants.DLQ_ERRORS_TABLE
    for topic in dev_vars["topics"]:
        assert constants.raw_table_name(topic) == f"{topic}_staging"


def test_dagster_task_settings_are_real_settings_fields():
    leanops = first(module_blocks(MODULES / "orchestration", "locals")["leanops_environment"])
    fields = set(Settings.model_fields)
    for key in leanops:
        assert key.startswith("LEANOPS_") and key.removeprefix("LEANOPS_").lower() in fields, key
    assert leanops["LEANOPS_CATALOG_TYPE"] == "glue"


# --- operations: alerts and pipeline metrics ----------------------------------------------------
def test_pipeline_metric_names_equal_the_python_names():
    names = first(module_blocks(TF_ROOT, "locals")["pipeline_metrics"])
    assert names == {
        "namespace": metrics.METRIC_NAMESPACE,
        "curated_lag": metrics.CURATED_LAG_METRIC,
        "schema_drift": metrics.SCHEMA_DRIFT_METRIC,
        "topic_dimension": metrics.TOPIC_DIMENSION,
        "tick_seconds": metrics.TICK_SECONDS_METRIC,
        "instigator_dimension": metrics.INSTIGATOR_DIMENSION,
    }
    calls = _module_calls(TF_ROOT)
    assert first(calls["observability"]["pipeline_metrics"]) == "${local.pipeline_metrics}"
    assert first(calls["orchestration"]["pipeline_metric_namespace"]) == (
        "${local.pipeline_metrics.namespace}")


def test_schema_drift_alarm_and_freshness_panel_read_the_published_metrics():
    alarms = first(module_blocks(MODULES / "observability", "locals")["single_metric_alarms"])
    drift = alarms["schema_drift"]
    assert (drift["namespace"], drift["metric_name"], drift["dimensions"]) == (
        "${var.pipeline_metrics.namespace}", "${var.pipeline_metrics.schema_drift}", None)
    # the sensor publishes the drift count without dimensions, so the alarm's must be none
    alarm = _resources(MODULES / "observability", "aws_cloudwatch_metric_alarm")["single_metric"]
    assert first(alarm["for_each"]) == "${local.single_metric_alarms}"
    text = module_text(MODULES / "observability")
    assert ("[local.metrics.namespace, local.metrics.curated_lag, local.metrics.topic_dimension, "
            "topic," in text)
    assert 'resource "aws_cloudwatch_dashboard" "main"' in text


def test_the_raw_sensor_tick_alarm_reads_the_published_tick_metric():
    """tick_metrics_sensor publishes TickSeconds per instigator; the alarm names the sensor
    that triggers every topic run, by the name Dagster records its ticks under."""
    from leanops_dagster.sensors.raw_snapshots import raw_snapshot_sensor

    alarms = first(module_blocks(MODULES / "observability", "locals")["single_metric_alarms"])
    tick = alarms["raw_sensor_tick_seconds"]
    assert (tick["namespace"], tick["metric_name"], tick["statistic"]) == (
        "${var.pipeline_metrics.namespace}", "${var.pipeline_metrics.tick_seconds}", "Maximum")
    assert tick["dimensions"] == {
        "var.pipeline_metrics.instigator_dimension": raw_snapshot_sensor.name}
    assert "local.metrics.tick_seconds" in module_text(MODULES / "observability")


def test_dagster_tasks_alert_to_the_alarm_topic_and_publish_only_their_namespace():
    leanops = first(module_blocks(MODULES / "orchestration", "locals")["leanops_environment"])
    assert leanops["LEANOPS_ALERTS_SNS_TOPIC_ARN"] == "${var.alerts_sns_topic_arn}"
    assert leanops["LEANOPS_CLOUDWATCH_METRICS"] == "true"
    assert Settings(cloudwatch_metrics=leanops["LEANOPS_CLOUDWATCH_METRICS"]).cloudwatch_metrics
    orchestration = _module_calls(TF_ROOT)["orchestration"]
    assert first(orchestration["alerts_sns_topic_arn"]) == "${module.observability.alarm_topic_arn}"
    statements = {
        first(s["sid"]): s
        for s in _data(MODULES / "orchestration", "aws_iam_policy_document")["alerts"]["statement"]
    }
    assert first(statements["PublishAlerts"]["actions"]) == ["sns:Publish"]
    assert first(statements["PublishAlerts"]["resources"]) == ["${var.alerts_sns_topic_arn}"]
    condition = first(statements["PublishPipelineMetrics"]["condition"])
    assert (first(condition["variable"]), first(condition["values"])) == (
        "cloudwatch:namespace", ["${var.pipeline_metric_namespace}"])
    policies = _resources(MODULES / "orchestration", "aws_iam_role_policy")
    # the daemon evaluates the sensors: its role (control) carries the policy
    assert first(policies["control_alerts"]["role"]) == "${aws_iam_role.control.id}"


def test_run_tasks_read_the_ingestion_metrics_of_the_pre_raw_check():
    """resources/ingestion.CloudWatchIngestionCounts calls ListMetrics and GetMetricData."""
    (statement,) = _data(MODULES / "orchestration", "aws_iam_policy_document")[
        "ingestion_counts"]["statement"]
    assert set(first(statement["actions"])) == {"cloudwatch:GetMetricData",
                                                "cloudwatch:ListMetrics"}
    policy = _resources(MODULES / "orchestration", "aws_iam_role_policy")["run_ingestion_counts"]
    assert first(policy["role"]) == "${aws_iam_role.run.id}"
    assert first(policy["policy"]) == "${data.aws_iam_policy_document.ingestion_counts.json}"


def test_every_leanops_variable_terraform_sets_is_a_settings_field():
    """Also the optional ones (Snowflake) and the secrets: a misspelt name would be ignored."""
    names = set(re.findall(r"\bLEANOPS_[A-Z_]+\b", module_text(MODULES / "orchestration")))
    assert {"LEANOPS_SNOWFLAKE_ACCOUNT", "LEANOPS_SNOWFLAKE_TOKEN", "LEANOPS_PII_HASH_KEY"} <= names
    unknown = {n for n in names if n.removeprefix("LEANOPS_").lower() not in Settings.model_fields}
    assert not unknown, sorted(unknown)


_GLUE_TYPES = {
    StringType: "string",
    TimestamptzType: "timestamp",
    IntegerType: "int",
    LongType: "bigint",
}


@pytest.mark.parametrize(
    ("local_name", "schema"),
    [("raw_staging_columns", RAW_STAGING_SCHEMA), ("dlq_errors_columns", DLQ_ERRORS_SCHEMA)],
)
def test_raw_glue_columns_equal_the_iceberg_schemas(local_name, schema):
    columns = first(module_blocks(MODULES / "catalog", "locals")[local_name])
    expected = [{"name": f.name, "type": _GLUE_TYPES[type(f.field_type)]} for f in schema.fields]
    assert [{"name": c["name"], "type": c["type"]} for c in columns] == expected
    # Same order => Glue assigns field ids 1..n exactly as tables.py declares them.
    assert [f.field_id for f in schema.fields] == list(range(1, len(schema.fields) + 1))


def test_max_receive_count_and_dlq_retention():
    variables = module_blocks(MODULES / "messaging", "variable")
    assert first(variables["max_receive_count"]["default"]) == constants.SQS_MAX_RECEIVE_COUNT
    assert first(variables["dlq_retention_seconds"]["default"]) == 14 * 24 * 3600
    for name, queue in _resources(MODULES / "messaging", "aws_sqs_queue").items():
        assert first(queue["sqs_managed_sse_enabled"]) is True, name


# --- Firehose routing -----------------------------------------------------------------------------
ROUTING_JQ = MODULES / "ingestion" / "routing.jq"


def test_firehose_loads_the_routing_file_and_configures_every_table():
    locals_ = module_blocks(MODULES / "ingestion", "locals")
    assert 'file("${path.module}/routing.jq")' in first(locals_["routing_query"])
    stream = _resources(MODULES / "ingestion", "aws_kinesis_firehose_delivery_stream")["raw"]
    iceberg = first(stream["iceberg_configuration"])
    processors = first(first(iceberg["processing_configuration"])["processors"])
    assert first(processors["type"]) == "MetadataExtraction"
    parameters = {
        first(p["parameter_name"]): first(p["parameter_value"]) for p in processors["parameters"]
    }
    assert parameters["JsonParsingEngine"] == "JQ-1.6"
    assert parameters["MetadataExtractionQuery"] == "${local.routing_query}"
    assert "destination_table_configuration" in str(iceberg.get("dynamic"))
    static = first(iceberg["destination_table_configuration"])
    assert first(static["table_name"]) == "${var.dlq_errors_table_name}"
    assert first(static["unique_keys"]) == ["dlq_message_id"]
    assert "dlq_message_id" in {f.name for f in DLQ_ERRORS_SCHEMA.fields}
    assert "error_output_prefix" in first(iceberg["s3_configuration"])


@pytest.mark.skipif(shutil.which("jq") is None, reason="no jq binary to run routing.jq")
@pytest.mark.parametrize(
    ("record", "table", "operation"),
    [
        (
            {"message_id": "m1", "topic_name": "events", "json_payload": "{}"},
            "events_staging",
            "insert",
        ),
        (
            {"message_id": "m2", "topic_name": "sensor_readings", "json_payload": "not json"},
            "sensor_readings_staging",
            "insert",
        ),
        (
            {"dlq_message_id": "d1", "topic_name": "events", "_leanops_table": "dlq_errors"},
            "dlq_errors",
            "update",
        ),
    ],
)
def test_routing_jq_follows_the_contract(record, table, operation):
    query = ROUTING_JQ.read_text().replace("@RAW_DATABASE@", "lean_ops_dev_raw")
    result = subprocess.run(  # fixed argv, no shell
        ["jq", "-c", query], input=json.dumps(record), capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == {
        "destinationDatabaseName": "lean_ops_dev_raw",
        "destinationTableName": table,
        "operation": operation,
    }


# --- IAM ---------------------------------------------------------------------------------------
# Actions AWS offers no resource-level permission for (a "*" resource is the narrowest possible).
UNSCOPABLE_ACTIONS = {
    "cloudwatch:GetMetricData",
    "cloudwatch:ListMetrics",
    "cloudwatch:PutMetricData",  # scoped by the cloudwatch:namespace condition instead
    "ecr:GetAuthorizationToken",
    "ecs:DescribeTaskDefinition",
    "ec2:DescribeNetworkInterfaces",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
}


@pytest.mark.parametrize("module_dir", MODULE_DIRS, ids=lambda p: p.name)
def test_no_wildcard_resource_where_aws_allows_a_narrower_one(module_dir):
    for name, document in _data(module_dir, "aws_iam_policy_document").items():
        for statement in document.get("statement", []):
            effect = first(statement.get("effect", "Allow"))
            resources = first(statement.get("resources", [[]]))
            actions = set(first(statement.get("actions", [[]])))
            if effect == "Deny" or "*" not in resources:
                continue
            assert actions <= UNSCOPABLE_ACTIONS, f"{module_dir.name}/{name}: {sorted(actions)}"
