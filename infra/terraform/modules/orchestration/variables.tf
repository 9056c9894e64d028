variable "name_prefix" {
  description = "lean-ops-<env>."
  type        = string
}

variable "environment" {
  description = "LEANOPS_ENVIRONMENT of the Dagster tasks."
  type        = string
}

variable "namespace_prefix" {
  description = "LEANOPS_NAMESPACE_PREFIX (lean_ops_<env>_): Settings.raw_namespace is then the RAW Glue database."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the services and the database."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (two AZs at least) with a route to AWS APIs (NAT or VPC endpoints)."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "RDS needs subnets in at least two availability zones."
  }
}

variable "webserver_ingress_cidrs" {
  description = "CIDRs allowed to reach the webserver on port 3000; empty = reach it through ECS Exec port forwarding only."
  type        = list(string)
  default     = []
}

variable "kms_key_arn" {
  description = "Key of logs, RDS, secrets and ECR."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the ECS log groups."
  type        = number
  default     = 365
}

variable "warehouse_bucket_name" {
  description = "Warehouse bucket (Iceberg data, schemas/, Dagster compute logs)."
  type        = string
}

variable "warehouse_bucket_arn" {
  description = "Warehouse bucket ARN."
  type        = string
}

variable "archive_bucket_name" {
  description = "LEANOPS_ARCHIVE_BUCKET (read only by the DLQ replay runbook)."
  type        = string
}

variable "glue_database_names" {
  description = "The three Glue databases the runs may touch."
  type        = list(string)
}

variable "image_tag" {
  description = "Tag of the user-code image in this deployment's ECR repository (tags are immutable)."
  type        = string
}

variable "webserver_cpu" {
  description = "Fargate CPU units of the webserver."
  type        = number
  default     = 512
}

variable "webserver_memory" {
  description = "Fargate memory (MiB) of the webserver."
  type        = number
  default     = 1024
}

variable "daemon_cpu" {
  description = "Fargate CPU units of the daemon (sensors run here)."
  type        = number
  default     = 512
}

variable "daemon_memory" {
  description = "Fargate memory (MiB) of the daemon."
  type        = number
  default     = 2048
}

variable "run_cpu" {
  description = "Fargate CPU units of one run task."
  type        = number
  default     = 1024
}

variable "run_memory" {
  description = "Fargate memory (MiB) of one run task."
  type        = number
  default     = 4096
}

variable "db_instance_class" {
  description = "RDS instance class."
  type        = string
  default     = "db.t4g.small"
}

variable "db_engine_version" {
  description = "PostgreSQL major version."
  type        = string
  default     = "16"
}

variable "db_allocated_storage_gb" {
  description = "Initial storage (GiB); grows automatically up to 5x."
  type        = number
  default     = 20
}

variable "db_multi_az" {
  description = "Multi-AZ deployment."
  type        = bool
  default     = true
}

variable "db_deletion_protection" {
  description = "Deletion protection."
  type        = bool
  default     = true
}

variable "run_failure_metric_namespace" {
  description = "Namespace of the run-failure metric the run log group's metric filter publishes."
  type        = string
  default     = "LeanOps/Dagster"
}

variable "run_failure_metric_name" {
  description = "Name of that metric."
  type        = string
  default     = "RunFailures"
}

variable "run_success_metric_name" {
  description = "Name of the Dagster run-success metric (same namespace as the failures)."
  type        = string
  default     = "RunSuccesses"
}

variable "alerts_sns_topic_arn" {
  description = "SNS topic the Dagster alert sensors publish to (LEANOPS_ALERTS_SNS_TOPIC_ARN)."
  type        = string
}

variable "pipeline_metric_namespace" {
  description = "CloudWatch namespace the Dagster sensors publish their metrics to (the only one they may write)."
  type        = string
}

variable "freshness_minutes" {
  description = "Curated freshness target in minutes (LEANOPS_FRESHNESS_MINUTES)."
  type        = number
}

variable "snowflake" {
  description = "Optional Snowflake refresh settings (see the root variable); null: none."
  type = object({
    account          = string
    database         = string
    schema           = string
    warehouse        = optional(string)
    role             = optional(string)
    token_secret_arn = string
  })
  default = null
}

variable "spark_environment" {
  description = "Settings of the Spark launcher (Settings.spark_*, the PII secret ARN), from modules/spark."
  type        = map(string)
  default     = {}
}

variable "catalog_environment" {
  description = "LEANOPS_CATALOG_TYPE / LEANOPS_WAREHOUSE replacing the Glue catalog (S3 Tables: the root's s3_tables.use_as_catalog); empty: Glue."
  type        = map(string)
  default     = {}
}

variable "s3tables_bucket_arn" {
  description = "The S3 Tables table bucket the tasks may use as their catalog; null: none."
  type        = string
  default     = null
}
