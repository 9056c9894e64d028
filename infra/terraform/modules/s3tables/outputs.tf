output "table_bucket_arn" {
  description = "The table bucket: LEANOPS_WAREHOUSE with catalog type s3tables."
  value       = aws_s3tables_table_bucket.this.arn
}

output "namespaces" {
  description = "Zone -> namespace in the table bucket."
  value       = { for zone, ns in aws_s3tables_namespace.zone : zone => ns.namespace }
}

output "adopted_tables" {
  description = "<zone>/<table> -> {namespace, name} of the tables whose maintenance Terraform sets (the root imports them)."
  value       = local.adopted
}
