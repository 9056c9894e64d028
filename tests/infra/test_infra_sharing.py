"""Sharing the tables with other writers (sharing.tf, modules/table_maintenance, modules/s3tables)
agrees with the platform:

- no maintenance Terraform configures expires a snapshot younger than the consumers' lag, and
  that lag is the platform's own snapshot-age default on its tables;
- no orphan-file clean-up looks at files younger than two of the longest runs, and none looks
  where the key-index segments live;
- the optimizers and the S3 Tables maintenance cover the project's tables, named as in
  ``constants.py``;
- the optimizer role may do what AWS's "Table optimization prerequisites" ask, on the zones
  optimized only; the Dagster tasks and the Spark job may use the table bucket as their catalog,
  whose ARN Settings accepts.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from infra_support import ENVIRONMENTS, MODULES, TF_ROOT, first, module_blocks, module_text, tfvars
from test_infra_consistency import _data, _resources

from leanops_dagster import constants
from leanops_dagster.iceberg import key_index
from leanops_dagster.settings import Settings

MAINTENANCE = MODULES / "table_maintenance"
S3TABLES = MODULES / "s3tables"
#: Iceberg's own history.expire.max-snapshot-age-ms default (5 days), which the platform sets on
#: its tables where they have none (constants.DEFAULT_MAX_SNAPSHOT_AGE_MS, issue 18)
ICEBERG_MAX_SNAPSHOT_AGE_MS = 5 * 24 * 3600 * 1000


def _root_variables() -> dict:
    return module_blocks(TF_ROOT, "variable")


def _optional_defaults(variable: str) -> dict[str, object]:
    """``optional(type, default)`` defaults of an object variable's attributes."""
    type_expression = first(_root_variables()[variable]["type"])
    found = re.findall(r"'(\w+)': '\$\{optional\([^,]+(?:\([^)]*\))?,([^)]*)\)\}'", type_expression)
    values: dict[str, object] = {}
    for name, raw in found:
        raw = raw.strip()
        values[name] = raw == "True" if raw in ("True", "False") else (
            [] if raw == "[]" else float(raw)
        )
    return values


def _default(variable: str):
    return first(_root_variables()[variable]["default"])


def _conditions(variable: str) -> list[str]:
    return [first(v["condition"]) for v in _root_variables()[variable]["validation"]]


def _settings(path: Path, variable: str) -> dict[str, object]:
    given = tfvars(path).get(variable) or {}
    return {**_optional_defaults(variable), **given}


ENV_FILES = sorted(ENVIRONMENTS.glob("*.tfvars*"))


# --- retention against the consumers' lag ------------------------------------------------------
def test_the_consumers_lag_is_the_platforms_snapshot_age():
    platform = getattr(constants, "DEFAULT_MAX_SNAPSHOT_AGE_MS", ICEBERG_MAX_SNAPSHOT_AGE_MS)
    assert _default("max_consumer_lag_hours") * 3600 * 1000 == platform


def test_the_validations_compare_retention_with_the_lag_and_thresholds_with_the_run():
    glue = " ".join(_conditions("glue_table_optimizers"))
    optimizers = "var.glue_table_optimizers"
    assert f"{optimizers}.snapshot_retention_days * 24 >= var.max_consumer_lag_hours" in glue
    assert f"{optimizers}.orphan_file_retention_days * 24 >= 2 * var.longest_run_hours" in glue
    s3 = " ".join(_conditions("s3_tables"))
    assert "var.s3_tables.max_snapshot_age_hours >= var.max_consumer_lag_hours" in s3
    assert "var.s3_tables.unreferenced_days * 24 >= 2 * var.longest_run_hours" in s3


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_defaults_and_environments_keep_the_platform_exact(path):
    values = tfvars(path)
    lag = values.get("max_consumer_lag_hours", _default("max_consumer_lag_hours"))
    run = values.get("longest_run_hours", _default("longest_run_hours"))
    glue = _settings(path, "glue_table_optimizers")
    assert glue["snapshot_retention_days"] * 24 >= lag
    assert glue["snapshots_to_retain"] >= 1
    assert glue["clean_expired_files"] is True
    assert glue["orphan_file_retention_days"] * 24 >= max(72, 2 * run)
    s3 = _settings(path, "s3_tables")
    assert s3["max_snapshot_age_hours"] >= lag
    assert s3["unreferenced_days"] * 24 >= 2 * run
    assert s3["min_snapshots_to_keep"] >= 1


def test_dev_compacts_raw_where_firehose_writes_small_files(dev_vars):
    assert "raw" in dev_vars["glue_table_optimizers"]["compaction"]


def test_the_longest_run_covers_the_spark_jobs_timeout():
    spark_variables = module_blocks(MODULES / "spark", "variable")
    spark_timeout = first(spark_variables["job_timeout_minutes"]["default"])
    assert _default("longest_run_hours") * 60 >= spark_timeout


# --- what the optimizers touch --------------------------------------------------------------
def _optimizer():
    return _resources(MAINTENANCE, "aws_glue_catalog_table_optimizer")["table"]


def test_orphan_deletion_looks_only_at_data_files_not_at_the_key_index():
    configuration = first(_optimizer()["configuration"])
    dynamic = {k: v for block in configuration["dynamic"] for k, v in block.items()}
    orphan = first(dynamic["orphan_file_deletion_configuration"]["content"])
    location = first(first(orphan["iceberg_configuration"])["location"])
    assert location.endswith(".db/${each.value.table}/data")
    # the key-index segments sit under <table>/metadata/, outside that location
    segment = key_index.write_segment.__doc__ or ""
    assert "<location>/metadata/" in segment
    assert not location.endswith("/metadata")


def test_retention_uses_the_validated_settings_and_removes_expired_files():
    text = module_text(MAINTENANCE)
    for argument, setting in [
        ("snapshot_retention_period_in_days", "snapshot_retention_days"),
        ("number_of_snapshots_to_retain", "snapshots_to_retain"),
        ("clean_expired_files", "clean_expired_files"),
        ("orphan_file_retention_period_in_days", "orphan_file_retention_days"),
    ]:
        assert re.search(rf"{argument}\s*=\s*var\.optimizers\.{setting}\b", text), argument
    assert first(_optimizer()["type"]) == "${each.value.type}"
    assert "role_arn = aws_iam_role.optimizer[0].arn" in text


@pytest.mark.parametrize("module_dir", [MAINTENANCE, S3TABLES], ids=lambda p: p.name)
def test_the_maintained_tables_are_the_projects(module_dir):
    zone_tables = first(module_blocks(module_dir, "locals")["zone_tables"])
    standardized = re.findall(r"'(\w+)'", zone_tables["standardized"])
    curated = re.findall(r"'(\w+)'", zone_tables["curated"])
    assert standardized == [constants.PARSE_ERRORS_TABLE]
    assert curated == [constants.CURATED_ERRORS_TABLE, constants.DRIFT_LOG_TABLE]
    raw = zone_tables["raw"]
    assert "dlq_errors" in raw or "var.dlq_errors_table_name" in raw
    if module_dir == S3TABLES:
        assert f"${{t}}{constants.RAW_TABLE_SUFFIX}" in raw
        assert f"'{constants.DLQ_ERRORS_TABLE}'" in raw
    # the lease tables are never maintained
    assert constants.LEASE_TABLE not in str(zone_tables)


# --- IAM --------------------------------------------------------------------------------------
def _statements(module_dir: Path, document: str) -> dict[str, dict]:
    body = _data(module_dir, "aws_iam_policy_document")[document]
    statements = list(body.get("statement", []))
    for dynamic in body.get("dynamic", []):
        statements.extend(dynamic["statement"]["content"])
    return {first(s["sid"]): s for s in statements}


def _actions(statement: dict) -> set[str]:
    return set(first(statement["actions"]))


def test_the_optimizer_role_has_what_glue_asks_for_on_the_optimized_zones_only():
    assume = first(_data(MAINTENANCE, "aws_iam_policy_document")["assume"]["statement"])
    assert first(first(assume["principals"])["identifiers"]) == ["glue.amazonaws.com"]
    statements = _statements(MAINTENANCE, "optimizer")
    files = _actions(statements["ZoneTableFiles"])
    assert files >= {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    assert first(statements["ZoneTableFiles"]["resources"]) == "${local.table_objects}"
    assert {"s3:ListBucket"} <= _actions(statements["WarehouseBucket"])
    assert _actions(statements["ZoneTables"]) == {"glue:GetTable", "glue:UpdateTable"}
    assert {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"} == _actions(
        statements["OptimizerLogs"]
    )
    assert {"kms:Decrypt", "kms:GenerateDataKey"} == _actions(statements["WarehouseKey"])
    module_locals = module_blocks(MAINTENANCE, "locals")
    assert "local.zones_optimized" in first(module_locals["table_objects"])
    log_groups = first(module_locals["log_groups"])
    for kind in ("iceberg-compaction", "iceberg-retention", "iceberg-orphan-file-deletion"):
        assert kind in log_groups


S3TABLES_CATALOG_ACTIONS = {
    "s3tables:GetTableBucket", "s3tables:GetNamespace", "s3tables:ListNamespaces",
    "s3tables:GetTable", "s3tables:ListTables", "s3tables:CreateTable",
    "s3tables:GetTableMetadataLocation", "s3tables:UpdateTableMetadataLocation",
    "s3tables:GetTableData", "s3tables:PutTableData",
}


@pytest.mark.parametrize(("module", "document"), [("orchestration", "data"), ("spark", "job")])
def test_dagster_and_the_spark_job_may_use_the_table_bucket(module, document):
    statement = _statements(MODULES / module, document)["TableBucket"]
    assert _actions(statement) >= S3TABLES_CATALOG_ACTIONS
    assert first(statement["resources"]) == [
        "${var.s3tables_bucket_arn}", "${var.s3tables_bucket_arn}/table/*"
    ]


def test_s3_tables_maintenance_may_use_the_key():
    text = (TF_ROOT / "main.tf").read_text()
    assert 'Principal = { Service = "maintenance.s3tables.amazonaws.com" }' in text


def test_the_table_bucket_arn_terraform_hands_dagster_is_one_settings_accepts(root_context):
    root_locals = module_blocks(TF_ROOT, "locals")
    name = first(root_locals["s3tables_bucket_name"])
    assert name == "${local.name_prefix}-tables"
    assert first(module_blocks(S3TABLES, "variable")["name_prefix"]["description"])
    bucket = first(_resources(S3TABLES, "aws_s3tables_table_bucket")["this"]["name"])
    assert bucket == "${var.name_prefix}-tables"
    arn = first(root_locals["s3tables_bucket_arn"])
    rendered = (
        arn.replace("${local.partition}", "aws").replace("${local.region}", "us-east-1")
        .replace("${local.account_id}", "123456789012")
        .replace("${local.s3tables_bucket_name}", root_context["local.name_prefix"] + "-tables")
    )
    settings = Settings(catalog_type="s3tables", warehouse=rendered)
    assert settings.catalog_config["uri"] == "https://s3tables.us-east-1.amazonaws.com/iceberg"
    environment = first(root_locals["catalog_environment"])
    assert "'LEANOPS_CATALOG_TYPE': 's3tables'" in environment
    assert "'LEANOPS_WAREHOUSE': '${local.s3tables_bucket_arn}'" in environment


def test_adopted_s3_tables_are_never_destroyed_by_terraform():
    table = _resources(S3TABLES, "aws_s3tables_table")["adopted"]
    lifecycle = first(table["lifecycle"])
    assert first(lifecycle["prevent_destroy"]) is True
    maintenance = first(table["maintenance_configuration"])
    snapshot = maintenance["iceberg_snapshot_management"]["settings"]
    assert snapshot["max_snapshot_age_hours"] == "${var.settings.max_snapshot_age_hours}"
