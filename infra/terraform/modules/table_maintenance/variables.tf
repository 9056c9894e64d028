variable "name_prefix" {
  description = "lean-ops-<env>."
  type        = string
}

variable "topics" {
  description = "Topics; their tables in each zone get the optimizers of that zone."
  type        = list(string)
}

variable "database_names" {
  description = "Zone (raw, standardized, curated) -> Glue database."
  type        = map(string)
}

variable "raw_table_names" {
  description = "Topic -> RAW table (created by modules/catalog, so the optimizers wait for it)."
  type        = map(string)
}

variable "dlq_errors_table_name" {
  description = "The RAW dlq_errors table (modules/catalog)."
  type        = string
}

variable "warehouse_bucket_name" {
  description = "Iceberg warehouse bucket: tables live at s3://<bucket>/<database>.db/<table>."
  type        = string
}

variable "warehouse_bucket_arn" {
  description = "Iceberg warehouse bucket ARN."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the warehouse bucket."
  type        = string
}

variable "optimizers" {
  description = "Zones per optimizer type, and their settings (the root variable glue_table_optimizers, validated there against max_consumer_lag_hours and longest_run_hours)."
  type = object({
    compaction                 = list(string)
    retention                  = list(string)
    orphan_file_deletion       = list(string)
    snapshot_retention_days    = number
    snapshots_to_retain        = number
    clean_expired_files        = bool
    orphan_file_retention_days = number
  })
}
