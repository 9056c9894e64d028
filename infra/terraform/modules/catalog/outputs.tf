output "warehouse_bucket_name" {
  description = "Warehouse bucket."
  value       = module.warehouse_bucket.name
}

output "warehouse_bucket_arn" {
  description = "Warehouse bucket ARN."
  value       = module.warehouse_bucket.arn
}

output "archive_bucket_name" {
  description = "DLQ archive bucket."
  value       = module.archive_bucket.name
}

output "archive_bucket_arn" {
  description = "DLQ archive bucket ARN."
  value       = module.archive_bucket.arn
}

output "database_names" {
  description = "Zone -> Glue database name."
  value       = { for zone, db in aws_glue_catalog_database.zone : zone => db.name }
}

output "raw_table_names" {
  description = "Topic -> RAW table name."
  value       = { for topic, table in aws_glue_catalog_table.raw_staging : topic => table.name }
}

output "dlq_errors_table_name" {
  description = "The dlq_errors table."
  value       = aws_glue_catalog_table.dlq_errors.name
}
