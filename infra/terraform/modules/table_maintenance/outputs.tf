output "role_arn" {
  description = "The role the Glue table optimizers run as (null when none is on)."
  value       = local.enabled ? aws_iam_role.optimizer[0].arn : null
}

output "table_optimizers" {
  description = "<zone>/<table>/<type> of every optimizer turned on."
  value       = keys(local.table_optimizers)
}

output "optimizer_configurations" {
  description = "<zone>/<table>/<type> -> the optimizer's configuration block (what terraform test checks)."
  value       = { for key, optimizer in aws_glue_catalog_table_optimizer.table : key => one(optimizer.configuration) }
}
