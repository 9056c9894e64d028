variable "name_prefix" {
  description = "lean-ops-<env>."
  type        = string
}

variable "glue_database_prefix" {
  description = "lean_ops_<env>; databases are <prefix>_raw|standardized|curated."
  type        = string
}

variable "topics" {
  description = "Topics; each gets the RAW table <topic>_staging."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "KMS key of both buckets."
  type        = string
}

variable "warehouse_bucket_name" {
  description = "Iceberg warehouse bucket (all three zones, Firehose error output, schemas, Dagster compute logs)."
  type        = string
}

variable "archive_bucket_name" {
  description = "DLQ archive bucket (lean-ops-<env>-dlq-archive); dlq_processor writes every drained message here."
  type        = string
}

variable "force_destroy_buckets" {
  description = "Allow destroying non-empty buckets."
  type        = bool
  default     = false
}
