variable "name_prefix" {
  description = "lean-ops-<env>; the table bucket is <name_prefix>-tables."
  type        = string
}

variable "topics" {
  description = "Topics; their tables are adopted when adopt_zones lists their zone."
  type        = list(string)
}

variable "namespaces" {
  description = "Zone (raw, standardized, curated) -> namespace, the same names as the Glue databases (Settings.namespace_prefix)."
  type        = map(string)
}

variable "kms_key_arn" {
  description = "KMS key of the table bucket (SSE-KMS); its policy lets S3 Tables maintenance use it."
  type        = string
}

variable "settings" {
  description = "The root variable s3_tables (validated there against max_consumer_lag_hours and longest_run_hours)."
  type = object({
    use_as_catalog                 = bool
    unreferenced_days              = number
    noncurrent_days                = number
    max_snapshot_age_hours         = number
    min_snapshots_to_keep          = number
    compaction                     = bool
    compaction_target_file_size_mb = number
    adopt_zones                    = list(string)
  })
}
