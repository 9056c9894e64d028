variable "environment" {
  description = "Environment name (dev, prod, ...); part of every resource name. Same rule as Settings.environment."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*$", var.environment))
    error_message = "environment must match ^[a-z][a-z0-9]*$ (it becomes part of Glue database names)."
  }
}

variable "aws_region" {
  description = "AWS region of the whole deployment."
  type        = string
  default     = "us-east-1"
}

variable "extra_tags" {
  description = "Tags added to the provider's default tags."
  type        = map(string)
  default     = {}
}

variable "topics" {
  description = "Topic names: one SQS queue, one RAW table <topic>_staging and one event source mapping each."
  type        = list(string)

  validation {
    condition     = length(var.topics) > 0 && alltrue([for t in var.topics : can(regex("^[a-z][a-z0-9_]*$", t))])
    error_message = "topics must be a non-empty list of names matching ^[a-z][a-z0-9_]*$."
  }
}

# --- messaging / compute -----------------------------------------------------------------------
variable "sqs_visibility_timeout_seconds" {
  description = "Visibility timeout of the topic queues; must be >= 6 x sqs_processor_timeout_seconds."
  type        = number
  default     = 300

  # Checked here (early, clear error) and again by modules/messaging (which owns the queues).
  validation {
    condition     = var.sqs_visibility_timeout_seconds >= 6 * var.sqs_processor_timeout_seconds
    error_message = "sqs_visibility_timeout_seconds must be at least 6 x sqs_processor_timeout_seconds."
  }
}

variable "sqs_processor_timeout_seconds" {
  description = "Timeout of the sqs_processor Lambda."
  type        = number
  default     = 30
}

variable "sqs_processor_memory_mb" {
  description = "Memory of the sqs_processor Lambda."
  type        = number
  default     = 512
}

variable "sqs_batch_size" {
  description = "Messages per sqs_processor invocation."
  type        = number
  default     = 100
}

variable "sqs_batching_window_seconds" {
  description = "Maximum batching window of the event source mappings (required > 0 when batch size > 10)."
  type        = number
  default     = 5
}

variable "sqs_maximum_concurrency" {
  description = "MaximumConcurrency of each topic's event source mapping (2..1000)."
  type        = number
  default     = 5
}

variable "sqs_processor_reserved_concurrency" {
  description = "Reserved concurrency of sqs_processor; must cover maximum_concurrency x number of topics."
  type        = number
  default     = 50
}

variable "lambda_zip_path" {
  description = "Zip built by infra/scripts/package_lambdas.py (relative to infra/terraform or absolute)."
  type        = string
  default     = ".build/lambdas.zip"
}

variable "lambda_log_retention_days" {
  description = "Retention of the Lambda, Firehose and ECS log groups."
  type        = number
  default     = 365
}

variable "circuit_breaker_schedule" {
  description = "How often circuit_breaker re-evaluates (it also runs on the error-rate alarm)."
  type        = string
  default     = "rate(1 minute)"
}

# --- ingestion ---------------------------------------------------------------------------------
variable "firehose_buffering_size_mb" {
  description = "Firehose buffering hint: size in MiB (1..128)."
  type        = number
  default     = 64
}

variable "firehose_buffering_interval_seconds" {
  description = "Firehose buffering hint: interval in seconds (0..900)."
  type        = number
  default     = 60
}

# --- catalog -----------------------------------------------------------------------------------
variable "warehouse_bucket_name" {
  description = "Name of the Iceberg warehouse bucket; default lean-ops-<env>-warehouse."
  type        = string
  default     = null
}

variable "force_destroy_buckets" {
  description = "Let terraform destroy non-empty buckets (dev only)."
  type        = bool
  default     = false
}

# --- observability -----------------------------------------------------------------------------
variable "alarm_email_endpoints" {
  description = "E-mail addresses subscribed to the alarm topic (each must confirm)."
  type        = list(string)
  default     = []
}

variable "lambda_error_rate_threshold_percent" {
  description = "sqs_processor error rate (Errors / Invocations, %) that raises the alarm and wakes the breaker."
  type        = number
  default     = 5
}

variable "curated_freshness_minutes" {
  description = "How far Curated may lag its newest data (LEANOPS_FRESHNESS_MINUTES): the freshness check, the stale-topic alert and the dashboard's freshness line."
  type        = number
  default     = 60
}

variable "snowflake" {
  description = "Optional Snowflake refresh of Curated after each commit (LEANOPS_SNOWFLAKE_*; docs/deploy.md, Snowflake). The token is read from token_secret_arn (a Secrets Manager secret encrypted with this deployment's key). null: no Snowflake step."
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

# --- orchestration -----------------------------------------------------------------------------
variable "vpc_id" {
  description = "VPC of the Dagster services and the RDS instance."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (with a NAT gateway or VPC endpoints) for ECS tasks and RDS; at least two AZs."
  type        = list(string)
}

variable "webserver_ingress_cidrs" {
  description = "CIDRs allowed to reach the Dagster webserver on port 3000 (VPN, bastion, internal LB)."
  type        = list(string)
  default     = []
}

variable "dagster_image_tag" {
  description = "Tag of the user-code image in this deployment's ECR repository (immutable tags: use the git commit)."
  type        = string
}

variable "db_instance_class" {
  description = "RDS instance class of the Dagster storage."
  type        = string
  default     = "db.t4g.small"
}

variable "db_multi_az" {
  description = "Multi-AZ RDS (recommended outside dev)."
  type        = bool
  default     = true
}

variable "db_deletion_protection" {
  description = "RDS deletion protection."
  type        = bool
  default     = true
}

# --- the Spark engine in AWS (modules/spark) ----------------------------------------------------
variable "spark_launcher" {
  description = "How a Spark-engine run starts (LEANOPS_SPARK_LAUNCHER): session or pipes_subprocess (inside the Dagster run task; nothing is created), glue (a Glue 5.1 job) or emr_serverless (an EMR Serverless application). Topics run on Spark when LEANOPS_ENGINE or their schema says so."
  type        = string
  default     = "session"
}

variable "spark_job_script_path" {
  description = "The job entry point copied by infra/scripts/package_spark_job.py (relative to infra/terraform or absolute)."
  type        = string
  default     = ".build/spark/job.py"
}

variable "spark_job_wheel_path" {
  description = "The job's zip of wheels (*.gluewheels.zip) built by infra/scripts/package_spark_job.py (relative to infra/terraform or absolute)."
  type        = string
  default     = ".build/spark/leanops_dagster_spark_job-0.1.0.gluewheels.zip"
}

variable "spark_emr_image_tag" {
  description = "Tag of the EMR Serverless job image (infra/emr-serverless/Dockerfile) pushed to the spark module's repository; required with spark_launcher = emr_serverless."
  type        = string
  default     = null
}

# --- sharing the tables with other writers (sharing.tf, docs/operations.md) ---------------------
variable "max_consumer_lag_hours" {
  description = "How far a layer may fall behind its upstream table (hours) and still continue exactly from its watermark: no maintenance this Terraform configures expires a snapshot younger than this. Equal to the platform's history.expire.max-snapshot-age-ms default on its tables (5 days); a consumer that lags longer is protected by its tag, or stops loudly (leanops recover --topic T)."
  type        = number
  default     = 120
}

variable "longest_run_hours" {
  description = "The longest a topic run may take (the Spark job's timeout is 2 hours): files a run has written but not committed yet are at most this old, and no orphan-file clean-up may touch them."
  type        = number
  default     = 2
}

variable "glue_table_optimizers" {
  description = "Glue Data Catalog table optimizers (modules/table_maintenance): the zones (raw, standardized, curated) each type runs on, and their settings. Standardized and Curated tables exist after a topic's first run: add those zones after it."
  type = object({
    compaction                 = optional(list(string), [])
    retention                  = optional(list(string), [])
    orphan_file_deletion       = optional(list(string), [])
    snapshot_retention_days    = optional(number, 5)
    snapshots_to_retain        = optional(number, 1)
    clean_expired_files        = optional(bool, true)
    orphan_file_retention_days = optional(number, 7)
  })
  default = {}

  validation {
    condition = alltrue([
      for zone in flatten([var.glue_table_optimizers.compaction, var.glue_table_optimizers.retention, var.glue_table_optimizers.orphan_file_deletion]) :
      contains(["raw", "standardized", "curated"], zone)
    ])
    error_message = "glue_table_optimizers: zones are raw, standardized and curated."
  }
  validation {
    condition     = var.glue_table_optimizers.snapshot_retention_days * 24 >= var.max_consumer_lag_hours
    error_message = "glue_table_optimizers.snapshot_retention_days must cover max_consumer_lag_hours: a shorter retention expires snapshots a lagging layer has not read yet."
  }
  validation {
    condition     = var.glue_table_optimizers.snapshots_to_retain >= 1
    error_message = "glue_table_optimizers.snapshots_to_retain must be at least 1."
  }
  validation {
    condition     = var.glue_table_optimizers.orphan_file_retention_days >= 3 && var.glue_table_optimizers.orphan_file_retention_days * 24 >= 2 * var.longest_run_hours
    error_message = "glue_table_optimizers.orphan_file_retention_days must be at least 3 days and 2 x longest_run_hours: younger files may belong to a run that has not committed yet."
  }
}

variable "s3_tables" {
  description = "Amazon S3 Tables (modules/s3tables): a table bucket <prefix>-tables with one namespace per zone, its unreferenced-file removal and the maintenance of the adopted tables; use_as_catalog makes it the catalog of Dagster and the Spark job (LEANOPS_CATALOG_TYPE=s3tables). null: no table bucket."
  type = object({
    use_as_catalog                 = optional(bool, false)
    unreferenced_days              = optional(number, 3)
    noncurrent_days                = optional(number, 10)
    max_snapshot_age_hours         = optional(number, 120)
    min_snapshots_to_keep          = optional(number, 1)
    compaction                     = optional(bool, true)
    compaction_target_file_size_mb = optional(number, 512)
    adopt_zones                    = optional(list(string), [])
  })
  default = null

  validation {
    condition     = var.s3_tables == null || alltrue([for zone in try(var.s3_tables.adopt_zones, []) : contains(["raw", "standardized", "curated"], zone)])
    error_message = "s3_tables.adopt_zones: zones are raw, standardized and curated."
  }
  validation {
    condition     = var.s3_tables == null || try(var.s3_tables.max_snapshot_age_hours >= var.max_consumer_lag_hours, false)
    error_message = "s3_tables.max_snapshot_age_hours must cover max_consumer_lag_hours: S3 Tables would expire snapshots a lagging layer has not read yet."
  }
  validation {
    condition     = var.s3_tables == null || try(var.s3_tables.unreferenced_days * 24 >= 2 * var.longest_run_hours, false)
    error_message = "s3_tables.unreferenced_days must be at least 2 x longest_run_hours: younger files may belong to a run that has not committed yet."
  }
}
