# One Firehose stream per environment, Iceberg destination on the Glue catalog. Each record is
# routed by the JQ expression in routing.jq (docs/contracts.md): dlq_errors records upsert into
# dlq_errors (unique key dlq_message_id), every other record is inserted into <topic>_staging.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  stream_name = "${var.name_prefix}-raw-firehose"
  account_id  = data.aws_caller_identity.current.account_id
  partition   = data.aws_partition.current.partition
  region      = data.aws_region.current.name

  glue_catalog_arn  = "arn:${local.partition}:glue:${local.region}:${local.account_id}:catalog"
  glue_database_arn = "arn:${local.partition}:glue:${local.region}:${local.account_id}:database/${var.raw_database_name}"
  glue_table_arns = [
    for table in concat(values(var.raw_table_names), [var.dlq_errors_table_name]) :
    "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${var.raw_database_name}/${table}"
  ]

  # The routing rule lives in routing.jq; only the environment's RAW database is substituted.
  routing_query = replace(trimspace(file("${path.module}/routing.jq")), "@RAW_DATABASE@", var.raw_database_name)
}

resource "aws_cloudwatch_log_group" "firehose" {
  name              = "/aws/kinesisfirehose/${local.stream_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_cloudwatch_log_stream" "iceberg" {
  name           = "IcebergDelivery"
  log_group_name = aws_cloudwatch_log_group.firehose.name
}

resource "aws_cloudwatch_log_stream" "s3_error_output" {
  name           = "S3ErrorOutput"
  log_group_name = aws_cloudwatch_log_group.firehose.name
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["firehose.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "firehose" {
  name               = "${local.stream_name}-role"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "firehose" {
  statement {
    sid       = "GlueRawTables"
    actions   = ["glue:GetTable", "glue:GetDatabase", "glue:UpdateTable"]
    resources = concat([local.glue_catalog_arn, local.glue_database_arn], local.glue_table_arns)
  }

  statement {
    sid = "WarehouseObjects"
    actions = [
      "s3:AbortMultipartUpload",
      "s3:GetBucketLocation",
      "s3:GetObject",
      "s3:ListBucket",
      "s3:ListBucketMultipartUploads",
      "s3:PutObject",
      "s3:DeleteObject",
    ]
    resources = [var.warehouse_bucket_arn, "${var.warehouse_bucket_arn}/*"]
  }

  statement {
    sid       = "EncryptWithDeploymentKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }

  statement {
    sid       = "DeliveryLogs"
    actions   = ["logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.firehose.arn}:log-stream:*"]
  }
}

resource "aws_iam_role_policy" "firehose" {
  name   = "iceberg-delivery"
  role   = aws_iam_role.firehose.id
  policy = data.aws_iam_policy_document.firehose.json
}

resource "aws_kinesis_firehose_delivery_stream" "raw" {
  name        = local.stream_name
  destination = "iceberg"

  server_side_encryption {
    enabled  = true
    key_type = "CUSTOMER_MANAGED_CMK"
    key_arn  = var.kms_key_arn
  }

  iceberg_configuration {
    role_arn           = aws_iam_role.firehose.arn
    catalog_arn        = local.glue_catalog_arn
    buffering_size     = var.buffering_size_mb
    buffering_interval = var.buffering_interval_seconds
    retry_duration     = var.retry_duration_seconds
    s3_backup_mode     = "FailedDataOnly"

    s3_configuration {
      role_arn            = aws_iam_role.firehose.arn
      bucket_arn          = var.warehouse_bucket_arn
      prefix              = "${var.error_output_prefix}backup/"
      error_output_prefix = "${var.error_output_prefix}!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/"
      kms_key_arn         = var.kms_key_arn
      compression_format  = "GZIP"

      cloudwatch_logging_options {
        enabled         = true
        log_group_name  = aws_cloudwatch_log_group.firehose.name
        log_stream_name = aws_cloudwatch_log_stream.s3_error_output.name
      }
    }

    cloudwatch_logging_options {
      enabled         = true
      log_group_name  = aws_cloudwatch_log_group.firehose.name
      log_stream_name = aws_cloudwatch_log_stream.iceberg.name
    }

    processing_configuration {
      enabled = true

      processors {
        type = "MetadataExtraction"

        parameters {
          parameter_name  = "JsonParsingEngine"
          parameter_value = "JQ-1.6"
        }
        parameters {
          parameter_name  = "MetadataExtractionQuery"
          parameter_value = local.routing_query
        }
      }
    }

    # One entry per topic table (insert) ...
    dynamic "destination_table_configuration" {
      for_each = var.raw_table_names
      content {
        database_name          = var.raw_database_name
        table_name             = destination_table_configuration.value
        s3_error_output_prefix = "${var.error_output_prefix}${destination_table_configuration.value}/"
      }
    }

    # ... and dlq_errors, upserted on dlq_message_id so that a replay is idempotent.
    destination_table_configuration {
      database_name          = var.raw_database_name
      table_name             = var.dlq_errors_table_name
      unique_keys            = ["dlq_message_id"]
      s3_error_output_prefix = "${var.error_output_prefix}${var.dlq_errors_table_name}/"
    }
  }
}
