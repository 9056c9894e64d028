# Glue Data Catalog table optimizers on the project's Iceberg tables (issue 18): compaction of
# Firehose's small files in RAW, snapshot retention and orphan-file deletion, each on the zones
# the root variable glue_table_optimizers lists, with settings that keep the platform exact:
#
# - retention never expires a snapshot younger than the root's max_consumer_lag_hours (a root
#   validation), and snapshots a consumer's tag points to are referenced, which Iceberg's
#   snapshot expiry keeps; the platform's own state is in table properties, which no expiry
#   removes;
# - orphan-file deletion looks only under <table>/data/ and only at files older than
#   orphan_file_retention_days (>= 2 x the longest run, a root validation), so a run's files
#   written but not committed yet are not touched, and the key-index segments under
#   <table>/metadata/ (referenced from table state, not from Iceberg's manifests) are kept;
# - a compaction commits a `replace` snapshot: the platform does not read it as new data, and
#   a run whose commit meets it re-reads (a conflict), never commits over it.
#
# The Standardized and Curated tables are created by the first run of a topic: list those zones
# only after that run (an optimizer on a missing table fails the apply).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # Zone -> the project's tables in it (leanops_dagster/constants.py names; the per-zone lease
  # tables `_run_leases` are left alone: they hold no data, and a rewrite would only make
  # lease commits conflict).
  zone_tables = {
    raw          = concat(values(var.raw_table_names), [var.dlq_errors_table_name])
    standardized = concat(var.topics, ["parse_errors"])
    curated      = concat(var.topics, ["errors", "drift_log"])
  }
  types = {
    compaction           = var.optimizers.compaction
    retention            = var.optimizers.retention
    orphan_file_deletion = var.optimizers.orphan_file_deletion
  }
  table_optimizers = merge([
    for type, zones in local.types : merge([
      for zone in zones : {
        for table in local.zone_tables[zone] : "${zone}/${table}/${type}" => {
          type     = type
          database = var.database_names[zone]
          table    = table
        }
      }
    ]...)
  ]...)
  enabled = length(local.table_optimizers) > 0

  zones_optimized = distinct(flatten(values(local.types)))
  table_objects   = [for zone in local.zones_optimized : "${var.warehouse_bucket_arn}/${var.database_names[zone]}.db/*"]
  database_arns   = [for zone in local.zones_optimized : "arn:${local.partition}:glue:${local.region}:${local.account_id}:database/${var.database_names[zone]}"]
  table_arns      = [for zone in local.zones_optimized : "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${var.database_names[zone]}/*"]
  # The optimizers' own log groups (AWS Glue, "Table optimization prerequisites").
  log_groups = [
    for kind in ["iceberg-compaction", "iceberg-retention", "iceberg-orphan-file-deletion"] :
    "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws-glue/${kind}/*"
  ]
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["glue.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "optimizer" {
  count = local.enabled ? 1 : 0

  name               = "${var.name_prefix}-table-optimizer"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

# What the optimizers need (AWS Glue, "Table optimization prerequisites"): read, write and
# delete the optimized zones' table files, read and update those tables in the Data Catalog,
# write their logs; and the warehouse bucket's KMS key.
data "aws_iam_policy_document" "optimizer" {
  statement {
    sid       = "WarehouseBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [var.warehouse_bucket_arn]
  }
  statement {
    sid       = "ZoneTableFiles"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = local.table_objects
  }
  statement {
    sid     = "ZoneTables"
    actions = ["glue:GetTable", "glue:UpdateTable"]
    resources = concat(
      ["arn:${local.partition}:glue:${local.region}:${local.account_id}:catalog"],
      local.database_arns,
      local.table_arns,
    )
  }
  statement {
    sid       = "OptimizerLogs"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
    resources = local.log_groups
  }
  statement {
    sid       = "WarehouseKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "optimizer" {
  count = local.enabled ? 1 : 0

  name   = "zone-tables"
  role   = aws_iam_role.optimizer[0].id
  policy = data.aws_iam_policy_document.optimizer.json
}

resource "aws_glue_catalog_table_optimizer" "table" {
  for_each = local.table_optimizers

  catalog_id    = local.account_id
  database_name = each.value.database
  table_name    = each.value.table
  type          = each.value.type

  configuration {
    role_arn = aws_iam_role.optimizer[0].arn
    enabled  = true

    dynamic "retention_configuration" {
      for_each = each.value.type == "retention" ? [1] : []
      content {
        iceberg_configuration {
          snapshot_retention_period_in_days = var.optimizers.snapshot_retention_days
          number_of_snapshots_to_retain     = var.optimizers.snapshots_to_retain
          clean_expired_files               = var.optimizers.clean_expired_files
        }
      }
    }

    dynamic "orphan_file_deletion_configuration" {
      for_each = each.value.type == "orphan_file_deletion" ? [1] : []
      content {
        iceberg_configuration {
          orphan_file_retention_period_in_days = var.optimizers.orphan_file_retention_days
          # data files only: the key-index segments live under <table>/metadata/
          location = "s3://${var.warehouse_bucket_name}/${each.value.database}.db/${each.value.table}/data"
        }
      }
    }
  }

  depends_on = [aws_iam_role_policy.optimizer]
}
