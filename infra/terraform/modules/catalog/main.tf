# Warehouse + DLQ archive buckets, the three Glue databases and the RAW Iceberg tables Firehose
# writes to. Columns mirror leanops_dagster/iceberg/tables.py (RAW_STAGING_SCHEMA,
# DLQ_ERRORS_SCHEMA) in the same order, so Glue assigns the same Iceberg field ids.
#
# Glue's CreateTable cannot give an Iceberg table a partition spec through this provider
# (hashicorp/terraform-provider-aws#36531): the tables are created unpartitioned and
# infra/scripts/apply_raw_partition_specs.py evolves them to the specs of tables.py once, after
# the first apply (docs/deploy.md).

locals {
  zones = ["raw", "standardized", "curated"]

  # Iceberg type -> Glue column type: string -> string, timestamptz -> timestamp, int -> int.
  raw_staging_columns = [
    { name = "message_id", type = "string" },
    { name = "topic_name", type = "string" },
    { name = "json_payload", type = "string" },
    { name = "publish_time", type = "timestamp" },
    { name = "ingestion_ts", type = "timestamp" },
  ]
  dlq_errors_columns = [
    { name = "dlq_message_id", type = "string" },
    { name = "message_id", type = "string" },
    { name = "topic_name", type = "string" },
    { name = "failure_reason", type = "string" },
    { name = "error_class", type = "string" },
    { name = "receive_count", type = "int" },
    { name = "body", type = "string" },
    { name = "archive_uri", type = "string" },
    { name = "sent_time", type = "timestamp" },
    { name = "recorded_ts", type = "timestamp" },
  ]

  raw_table_names       = { for topic in var.topics : topic => "${topic}_staging" }
  dlq_errors_table_name = "dlq_errors"
}

module "warehouse_bucket" {
  source = "../s3_bucket"

  bucket_name   = var.warehouse_bucket_name
  kms_key_arn   = var.kms_key_arn
  force_destroy = var.force_destroy_buckets
}

module "archive_bucket" {
  source = "../s3_bucket"

  bucket_name   = var.archive_bucket_name
  kms_key_arn   = var.kms_key_arn
  force_destroy = var.force_destroy_buckets
}

resource "aws_glue_catalog_database" "zone" {
  for_each = toset(local.zones)

  name         = "${var.glue_database_prefix}_${each.key}"
  description  = "Lean-Ops ${each.key} zone (Iceberg namespace)"
  location_uri = "s3://${module.warehouse_bucket.name}/${var.glue_database_prefix}_${each.key}.db"
}

resource "aws_glue_catalog_table" "raw_staging" {
  for_each = local.raw_table_names

  database_name = aws_glue_catalog_database.zone["raw"].name
  name          = each.value
  description   = "RAW events of topic ${each.key}, as delivered by Firehose (append only)."
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    format = "parquet"
  }

  open_table_format_input {
    iceberg_input {
      metadata_operation = "CREATE"
      version            = "2"
    }
  }

  storage_descriptor {
    location = "s3://${module.warehouse_bucket.name}/${aws_glue_catalog_database.zone["raw"].name}.db/${each.value}"

    dynamic "columns" {
      for_each = local.raw_staging_columns
      content {
        name = columns.value.name
        type = columns.value.type
      }
    }
  }
}

resource "aws_glue_catalog_table" "dlq_errors" {
  database_name = aws_glue_catalog_database.zone["raw"].name
  name          = local.dlq_errors_table_name
  description   = "Messages drained from the centralized DLQ: reason and archive location (upsert on dlq_message_id)."
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    format = "parquet"
  }

  open_table_format_input {
    iceberg_input {
      metadata_operation = "CREATE"
      version            = "2"
    }
  }

  storage_descriptor {
    location = "s3://${module.warehouse_bucket.name}/${aws_glue_catalog_database.zone["raw"].name}.db/${local.dlq_errors_table_name}"

    dynamic "columns" {
      for_each = local.dlq_errors_columns
      content {
        name = columns.value.name
        type = columns.value.type
      }
    }
  }
}
