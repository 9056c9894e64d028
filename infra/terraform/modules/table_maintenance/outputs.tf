output "role_arn" {
  description = "The role the Glue table optimizers run as (null when none is on)."
  value       = local.enabled ? aws_iam_role.optimizer[0].arn : null
}

output "table_optimizers" {
  description = "<zone>/<table>/<type> of every optimizer turned on."
  value       = keys(local.table_optimizers)
}
