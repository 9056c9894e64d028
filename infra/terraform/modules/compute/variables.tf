variable "name_prefix" {
  description = "lean-ops-<env>."
  type        = string
}

variable "topics" {
  description = "Topics; one event source mapping each."
  type        = list(string)
}

variable "lambda_zip_path" {
  description = "Zip from infra/scripts/package_lambdas.py (ingestion_lambdas/ + aws-lambda-powertools)."
  type        = string
}

variable "runtime" {
  description = "Lambda runtime (the zip is built for it)."
  type        = string
  default     = "python3.12"
}

variable "architecture" {
  description = "Lambda architecture. The zip ships orjson built for arm64 (CPython 3.12); on x86_64 the handlers fall back to the standard json module (same records, slower)."
  type        = string
  default     = "arm64"
}

variable "kms_key_arn" {
  description = "Key of the Lambda environment variables and log groups."
  type        = string
}

variable "log_retention_days" {
  description = "Retention of the Lambda log groups."
  type        = number
  default     = 365
}

variable "queue_arns" {
  description = "Topic -> queue ARN."
  type        = map(string)
}

variable "dlq_arn" {
  description = "Centralized DLQ ARN."
  type        = string
}

variable "dlq_url" {
  description = "Centralized DLQ URL (DLQ_URL)."
  type        = string
}

variable "firehose_stream_name" {
  description = "FIREHOSE_STREAM_NAME."
  type        = string
}

variable "firehose_stream_arn" {
  description = "Firehose stream ARN."
  type        = string
}

variable "archive_bucket_name" {
  description = "ARCHIVE_BUCKET of dlq_processor."
  type        = string
}

variable "archive_bucket_arn" {
  description = "DLQ archive bucket ARN."
  type        = string
}

variable "archive_prefix" {
  description = "ARCHIVE_PREFIX: key prefix of the archive."
  type        = string
  default     = "dlq-archive"
}

variable "raw_namespace" {
  description = "RAW_NAMESPACE: the RAW Glue database (informational for the Lambdas; routing is in the Firehose JQ)."
  type        = string
}

variable "metrics_namespace" {
  description = "METRICS_NAMESPACE of the per-topic EMF metrics sqs_processor emits and circuit_breaker reads."
  type        = string
  default     = "LeanOps/Ingestion"
}

variable "sqs_processor_timeout_seconds" {
  description = "Timeout of sqs_processor (the queues' visibility timeout is >= 6 x this)."
  type        = number
  default     = 30
}

variable "sqs_processor_memory_mb" {
  description = "Memory of sqs_processor."
  type        = number
  default     = 512
}

variable "sqs_processor_reserved_concurrency" {
  description = "Reserved concurrency of sqs_processor."
  type        = number
  default     = 50
}

variable "batch_size" {
  description = "Event source mapping batch size."
  type        = number
  default     = 100

  validation {
    condition     = var.batch_size >= 1 && var.batch_size <= 10000
    error_message = "batch_size must be within 1..10000."
  }
}

variable "batching_window_seconds" {
  description = "Event source mapping maximum batching window."
  type        = number
  default     = 5

  validation {
    condition     = var.batching_window_seconds >= 0 && var.batching_window_seconds <= 300
    error_message = "batching_window_seconds must be within 0..300."
  }
}

variable "maximum_concurrency" {
  description = "MaximumConcurrency of each topic's event source mapping."
  type        = number
  default     = 5

  validation {
    condition     = var.maximum_concurrency >= 2 && var.maximum_concurrency <= 1000
    error_message = "maximum_concurrency must be within 2..1000 (AWS limits)."
  }
}

variable "dlq_batch_size" {
  description = "Batch size of the DLQ event source mapping."
  type        = number
  default     = 10
}

variable "circuit_breaker_schedule" {
  description = "EventBridge schedule of circuit_breaker's periodic evaluation."
  type        = string
  default     = "rate(1 minute)"
}

variable "circuit_breaker_state_parameter_prefix" {
  description = "CB_STATE_PARAMETER_PREFIX: SSM prefix of the breaker state; default /<name_prefix>/circuit-breaker/."
  type        = string
  default     = null
}
