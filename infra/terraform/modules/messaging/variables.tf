variable "name_prefix" {
  description = "lean-ops-<env>."
  type        = string
}

variable "topics" {
  description = "One queue per topic: <name_prefix>-<topic>-queue."
  type        = list(string)
}

variable "lambda_timeout_seconds" {
  description = "Timeout of the Lambda consuming the topic queues (sqs_processor)."
  type        = number
}

variable "visibility_timeout_seconds" {
  description = "Visibility timeout of the topic queues."
  type        = number

  # The seeds paid for this one: a message still being processed must not become visible again.
  validation {
    condition     = var.visibility_timeout_seconds >= 6 * var.lambda_timeout_seconds
    error_message = "visibility_timeout_seconds must be at least 6 x lambda_timeout_seconds (AWS guidance for SQS event sources; the seeds use 300 s vs 30 s)."
  }
}

variable "max_receive_count" {
  description = "Receives before a message moves to the DLQ (leanops_dagster.constants.SQS_MAX_RECEIVE_COUNT)."
  type        = number
  default     = 5
}

variable "message_retention_seconds" {
  description = "Retention of the topic queues."
  type        = number
  default     = 345600
}

variable "dlq_retention_seconds" {
  description = "Retention of the centralized DLQ (14 days, the SQS maximum)."
  type        = number
  default     = 1209600
}
