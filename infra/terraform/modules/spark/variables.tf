variable "name_prefix" {
  description = "lean-ops-<env>."
  type        = string
}

variable "launcher" {
  description = "LEANOPS_SPARK_LAUNCHER of the Dagster tasks: session or pipes_subprocess (nothing here is created), glue (the Glue 5.1 job) or emr_serverless (the EMR Serverless application)."
  type        = string

  validation {
    condition     = contains(["session", "pipes_subprocess", "glue", "emr_serverless"], var.launcher)
    error_message = "launcher must be one of session, pipes_subprocess, glue, emr_serverless (Settings.spark_launcher)."
  }
}

variable "kms_key_arn" {
  description = "Key of the warehouse bucket, the secrets, the logs and the image repository."
  type        = string
}

variable "warehouse_bucket_name" {
  description = "Warehouse bucket: the tables, schemas/, the job's code (spark/) and the Pipes prefix."
  type        = string
}

variable "warehouse_bucket_arn" {
  description = "Warehouse bucket ARN."
  type        = string
}

variable "glue_database_names" {
  description = "The Glue databases (zones) the job reads and writes; their tables live under s3://<bucket>/<database>.db/."
  type        = list(string)
}

variable "pii_hash_key_secret_arn" {
  description = "Secret of the PII key (LEANOPS_PII_HASH_KEY_SECRET_ARN): the job role may read it."
  type        = string
}

variable "dagster_run_role_name" {
  description = "Role of the Dagster run tasks: it may start, watch and cancel the job runs and pass the job role."
  type        = string
}

variable "pipes_prefix" {
  description = "LEANOPS_SPARK_PIPES_PREFIX: key prefix of the Pipes context and messages in the warehouse bucket (ends with /)."
  type        = string
  default     = "dagster-pipes/"

  validation {
    condition     = can(regex("^([A-Za-z0-9_.-]+/)+$", var.pipes_prefix))
    error_message = "pipes_prefix must be a non-empty key prefix ending with / (Settings.spark_pipes_prefix)."
  }
}

variable "job_script_path" {
  description = "engines/spark/job.py as copied by infra/scripts/package_spark_job.py (relative to the root module or absolute)."
  type        = string
}

variable "job_wheel_path" {
  description = "The job's zip of wheels (*.gluewheels.zip) built by infra/scripts/package_spark_job.py; its file name is kept (Glue recognises the suffix)."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the Glue job's log groups."
  type        = number
  default     = 365
}

variable "glue_worker_type" {
  description = "Glue worker type of the job."
  type        = string
  default     = "G.1X"
}

variable "glue_number_of_workers" {
  description = "Glue workers per job run (2 = driver + 1 executor)."
  type        = number
  default     = 2
}

variable "max_concurrent_runs" {
  description = "Job runs at the same time (one per topic and layer at most: the lease makes a second one a no-op)."
  type        = number
  default     = 10
}

variable "job_timeout_minutes" {
  description = "A job run is stopped after this long."
  type        = number
  default     = 120
}

variable "emr_release_label" {
  description = "EMR Serverless release: emr-7.12.0 carries Spark 3.5.6 and Iceberg 1.10.0, as Glue 5.1 does."
  type        = string
  default     = "emr-7.12.0"
}

variable "emr_image_tag" {
  description = "Tag of the EMR Serverless image (infra/emr-serverless/Dockerfile: the release image with the wheel for Python 3.11) in this module's repository; required with launcher emr_serverless."
  type        = string
  default     = null

  validation {
    condition     = var.launcher != "emr_serverless" || var.emr_image_tag != null
    error_message = "the emr_serverless launcher needs emr_image_tag: the job's Python and wheel come from that image."
  }
}

variable "emr_maximum_vcpu" {
  description = "Upper bound of the EMR Serverless application's capacity (vCPU)."
  type        = number
  default     = 16
}

variable "s3tables_bucket_arn" {
  description = "The S3 Tables table bucket the job may use as its catalog (the Dagster run's Settings say which); null: none."
  type        = string
  default     = null
}
