# Lean-Ops on Dagster: the root module wires the seven modules for one environment.
# Names follow <project>-<env>-<component> and equal leanops_dagster/constants.py
# (tests/infra/test_consistency.py checks it).

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  # Fixed on purpose: leanops_dagster.constants.PROJECT; the Python code derives the same names.
  project     = "lean-ops"
  name_prefix = "${local.project}-${var.environment}"
  # Glue databases (= Iceberg namespaces in AWS): lean_ops_<env>_<zone>.
  glue_database_prefix = "${replace(local.project, "-", "_")}_${var.environment}"
  # Settings.namespace_prefix in AWS, so that Settings.raw_namespace == the RAW Glue database.
  namespace_prefix = "${local.glue_database_prefix}_"

  # What the Dagster sensors publish (leanops_dagster/resources/metrics.py, same spelling;
  # tests/infra/test_infra_consistency.py compares them): the dashboard and the drift alarm.
  pipeline_metrics = {
    namespace            = "LeanOps/Pipeline"
    curated_lag          = "CuratedLagSeconds"
    schema_drift         = "SchemaDriftColumns"
    topic_dimension      = "Topic"
    tick_seconds         = "TickSeconds"
    instigator_dimension = "Instigator"
  }

  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
}

# One customer-managed key for logs, SNS, Lambda environment, Firehose, S3, RDS, secrets, ECR.
resource "aws_kms_key" "main" {
  description             = "${local.name_prefix} data, logs and secrets"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      {
        Sid       = "AccountAdministersTheKeyThroughIam"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsEncryptsThisDeploymentsLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.amazonaws.com" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*${local.name_prefix}*"
          }
        }
      },
      {
        Sid       = "CloudWatchAlarmsPublishToEncryptedTopics"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
        Resource  = "*"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
        }
      },
      ], var.s3_tables == null ? [] : [
      {
        # S3 Tables maintenance (compaction, snapshot management, unreferenced-file removal)
        # reads and writes the table bucket's files with this key.
        Sid       = "S3TablesMaintenanceUsesTheKeyForTheTableBucket"
        Effect    = "Allow"
        Principal = { Service = "maintenance.s3tables.amazonaws.com" }
        Action    = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource  = "*"
        Condition = {
          StringLike = { "kms:EncryptionContext:aws:s3:arn" = "${local.s3tables_bucket_arn}/*" }
        }
      },
    ])
  })
}

resource "aws_kms_alias" "main" {
  name          = "alias/${local.name_prefix}"
  target_key_id = aws_kms_key.main.key_id
}

module "catalog" {
  source = "./modules/catalog"

  name_prefix           = local.name_prefix
  glue_database_prefix  = local.glue_database_prefix
  topics                = var.topics
  kms_key_arn           = aws_kms_key.main.arn
  warehouse_bucket_name = coalesce(var.warehouse_bucket_name, "${local.name_prefix}-warehouse")
  archive_bucket_name   = "${local.name_prefix}-dlq-archive"
  force_destroy_buckets = var.force_destroy_buckets
}

module "messaging" {
  source = "./modules/messaging"

  name_prefix                = local.name_prefix
  topics                     = var.topics
  visibility_timeout_seconds = var.sqs_visibility_timeout_seconds
  lambda_timeout_seconds     = var.sqs_processor_timeout_seconds
}

module "ingestion" {
  source = "./modules/ingestion"

  name_prefix                = local.name_prefix
  topics                     = var.topics
  raw_database_name          = module.catalog.database_names["raw"]
  raw_table_names            = module.catalog.raw_table_names
  dlq_errors_table_name      = module.catalog.dlq_errors_table_name
  warehouse_bucket_arn       = module.catalog.warehouse_bucket_arn
  kms_key_arn                = aws_kms_key.main.arn
  buffering_size_mb          = var.firehose_buffering_size_mb
  buffering_interval_seconds = var.firehose_buffering_interval_seconds
  log_retention_days         = var.lambda_log_retention_days
}

module "compute" {
  source = "./modules/compute"

  name_prefix                        = local.name_prefix
  topics                             = var.topics
  lambda_zip_path                    = var.lambda_zip_path
  kms_key_arn                        = aws_kms_key.main.arn
  log_retention_days                 = var.lambda_log_retention_days
  queue_arns                         = module.messaging.queue_arns
  dlq_arn                            = module.messaging.dlq_arn
  dlq_url                            = module.messaging.dlq_url
  firehose_stream_name               = module.ingestion.stream_name
  firehose_stream_arn                = module.ingestion.stream_arn
  archive_bucket_name                = module.catalog.archive_bucket_name
  archive_bucket_arn                 = module.catalog.archive_bucket_arn
  raw_namespace                      = module.catalog.database_names["raw"]
  sqs_processor_timeout_seconds      = var.sqs_processor_timeout_seconds
  sqs_processor_memory_mb            = var.sqs_processor_memory_mb
  sqs_processor_reserved_concurrency = var.sqs_processor_reserved_concurrency
  batch_size                         = var.sqs_batch_size
  batching_window_seconds            = var.sqs_batching_window_seconds
  maximum_concurrency                = var.sqs_maximum_concurrency
  circuit_breaker_schedule           = var.circuit_breaker_schedule
}

module "orchestration" {
  source = "./modules/orchestration"

  name_prefix               = local.name_prefix
  environment               = var.environment
  namespace_prefix          = local.namespace_prefix
  vpc_id                    = var.vpc_id
  private_subnet_ids        = var.private_subnet_ids
  webserver_ingress_cidrs   = var.webserver_ingress_cidrs
  kms_key_arn               = aws_kms_key.main.arn
  log_retention_days        = var.lambda_log_retention_days
  warehouse_bucket_name     = module.catalog.warehouse_bucket_name
  warehouse_bucket_arn      = module.catalog.warehouse_bucket_arn
  archive_bucket_name       = module.catalog.archive_bucket_name
  glue_database_names       = values(module.catalog.database_names)
  image_tag                 = var.dagster_image_tag
  db_instance_class         = var.db_instance_class
  db_multi_az               = var.db_multi_az
  db_deletion_protection    = var.db_deletion_protection
  alerts_sns_topic_arn      = module.observability.alarm_topic_arn
  pipeline_metric_namespace = local.pipeline_metrics.namespace
  freshness_minutes         = var.curated_freshness_minutes
  snowflake                 = var.snowflake
  spark_environment         = module.spark.settings_environment
  catalog_environment       = local.catalog_environment
  s3tables_bucket_arn       = var.s3_tables == null ? null : local.s3tables_bucket_arn
}

module "spark" {
  source = "./modules/spark"

  name_prefix             = local.name_prefix
  launcher                = var.spark_launcher
  kms_key_arn             = aws_kms_key.main.arn
  warehouse_bucket_name   = module.catalog.warehouse_bucket_name
  warehouse_bucket_arn    = module.catalog.warehouse_bucket_arn
  glue_database_names     = values(module.catalog.database_names)
  pii_hash_key_secret_arn = module.orchestration.pii_hash_key_secret_arn
  dagster_run_role_name   = module.orchestration.run_role_name
  job_script_path         = var.spark_job_script_path
  job_wheel_path          = var.spark_job_wheel_path
  log_retention_days      = var.lambda_log_retention_days
  emr_image_tag           = var.spark_emr_image_tag
  s3tables_bucket_arn     = var.s3_tables == null ? null : local.s3tables_bucket_arn
}

module "observability" {
  source = "./modules/observability"

  name_prefix                   = local.name_prefix
  kms_key_arn                   = aws_kms_key.main.arn
  dlq_name                      = module.messaging.dlq_name
  sqs_processor_function_name   = module.compute.sqs_processor_function_name
  circuit_breaker_function_arn  = module.compute.circuit_breaker_function_arn
  circuit_breaker_function_name = module.compute.circuit_breaker_function_name
  firehose_stream_name          = module.ingestion.stream_name
  error_rate_threshold_percent  = var.lambda_error_rate_threshold_percent
  dagster_metric_namespace      = module.orchestration.run_failure_metric_namespace
  dagster_run_failure_metric    = module.orchestration.run_failure_metric_name
  dagster_run_success_metric    = module.orchestration.run_success_metric_name
  alarm_email_endpoints         = var.alarm_email_endpoints
  topics                        = var.topics
  queue_names                   = module.messaging.queue_names
  pipeline_metrics              = local.pipeline_metrics
  curated_freshness_minutes     = var.curated_freshness_minutes
}
