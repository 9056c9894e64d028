variable "name_prefix" {
  description = "lean-ops-<env>; the stream is <name_prefix>-raw-firehose."
  type        = string
}

variable "topics" {
  description = "Topics routed by the stream."
  type        = list(string)
}

variable "raw_database_name" {
  description = "Glue database of the RAW zone (lean_ops_<env>_raw)."
  type        = string
}

variable "raw_table_names" {
  description = "Topic -> RAW table name (<topic>_staging)."
  type        = map(string)
}

variable "dlq_errors_table_name" {
  description = "The dlq_errors table (upsert on dlq_message_id)."
  type        = string
}

variable "warehouse_bucket_arn" {
  description = "Warehouse bucket: Iceberg data and the S3 error output of the stream."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the stream, its error output and its log group."
  type        = string
}

variable "buffering_size_mb" {
  description = "Buffering hint: MiB."
  type        = number
  default     = 64

  validation {
    condition     = var.buffering_size_mb >= 1 && var.buffering_size_mb <= 128
    error_message = "buffering_size_mb must be within 1..128."
  }
}

variable "buffering_interval_seconds" {
  description = "Buffering hint: seconds."
  type        = number
  default     = 60

  validation {
    condition     = var.buffering_interval_seconds >= 0 && var.buffering_interval_seconds <= 900
    error_message = "buffering_interval_seconds must be within 0..900."
  }
}

variable "retry_duration_seconds" {
  description = "How long Firehose retries a failed Iceberg commit before writing to the error output."
  type        = number
  default     = 300
}

variable "error_output_prefix" {
  description = "Key prefix of records Firehose could not deliver (counted as Firehose errors by the accountability check)."
  type        = string
  default     = "firehose-errors/"
}

variable "log_retention_days" {
  description = "Retention of the stream's log group."
  type        = number
  default     = 365
}
