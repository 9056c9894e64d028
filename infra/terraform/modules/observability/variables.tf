variable "name_prefix" {
  description = "lean-ops-<env>."
  type        = string
}

variable "kms_key_arn" {
  description = "Key of the SNS topics."
  type        = string
}

variable "dlq_name" {
  description = "Centralized DLQ name."
  type        = string
}

variable "sqs_processor_function_name" {
  description = "sqs_processor function (error-rate alarm)."
  type        = string
}

variable "circuit_breaker_function_arn" {
  description = "circuit_breaker function ARN (subscribed to the breaker topic)."
  type        = string
}

variable "circuit_breaker_function_name" {
  description = "circuit_breaker function name."
  type        = string
}

variable "firehose_stream_name" {
  description = "Firehose stream (delivery failure alarm)."
  type        = string
}

variable "dagster_metric_namespace" {
  description = "Namespace of the Dagster run-failure metric (published by the orchestration module's log metric filter)."
  type        = string
}

variable "dagster_run_failure_metric" {
  description = "Name of the Dagster run-failure metric."
  type        = string
}

variable "error_rate_threshold_percent" {
  description = "sqs_processor Errors / Invocations (%) above which the alarm fires."
  type        = number
  default     = 5
}

variable "dlq_max_age_seconds" {
  description = "Oldest DLQ message age that raises an alarm (7 days: half the DLQ retention is left)."
  type        = number
  default     = 604800
}

variable "alarm_email_endpoints" {
  description = "E-mail subscriptions of the alarm topic."
  type        = list(string)
  default     = []
}

variable "dagster_run_success_metric" {
  description = "Name of the Dagster run-success metric (namespace: dagster_metric_namespace)."
  type        = string
}

variable "topics" {
  description = "Topics of the deployment (one line each on the dashboard)."
  type        = list(string)
}

variable "queue_names" {
  description = "Topic -> SQS queue name (ingestion throughput panel)."
  type        = map(string)
}

variable "pipeline_metrics" {
  description = "Namespace, metric and dimension names the Dagster sensors publish (leanops_dagster/resources/metrics.py)."
  type = object({
    namespace            = string
    curated_lag          = string
    schema_drift         = string
    topic_dimension      = string
    tick_seconds         = string
    instigator_dimension = string
  })
}

variable "tick_alarm_seconds" {
  description = "Alarm when a tick of the RAW sensor (the trigger of every topic run) takes longer than this; Dagster gives a tick 60 s."
  type        = number
  default     = 30
}

variable "curated_freshness_minutes" {
  description = "Freshness target drawn on the dashboard's Curated lag panel."
  type        = number
}
