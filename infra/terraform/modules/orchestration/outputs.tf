output "cluster_name" {
  description = "ECS cluster."
  value       = aws_ecs_cluster.dagster.name
}

output "ecr_repository_url" {
  description = "Push the user-code image here."
  value       = aws_ecr_repository.dagster.repository_url
}

output "run_task_definition_family" {
  description = "Task definition family of runs (DAGSTER_RUN_TASK_DEFINITION)."
  value       = aws_ecs_task_definition.dagster["run"].family
}

output "leanops_environment" {
  description = "LEANOPS_* variables of the Dagster tasks (the Spark launcher's included; secrets excluded)."
  value       = merge(local.leanops_environment, var.catalog_environment, var.spark_environment)
}

output "db_secret_arn" {
  description = "Secrets Manager secret of the RDS master user (managed by RDS)."
  value       = local.db_secret_arn
}

output "run_failure_metric_namespace" {
  description = "Namespace of the run-failure metric."
  value       = var.run_failure_metric_namespace
}

output "run_failure_metric_name" {
  description = "Name of the run-failure metric."
  value       = var.run_failure_metric_name
}

output "run_success_metric_name" {
  description = "Name of the run-success metric (namespace: run_failure_metric_namespace)."
  value       = var.run_success_metric_name
}

output "task_environment_names" {
  description = "Names of the plain environment variables every Dagster task gets (secrets excluded)."
  value       = sort(keys(local.task_environment))
}

output "run_role_name" {
  description = "Role of the run tasks (modules/spark lets it launch the Spark job runs)."
  value       = aws_iam_role.run.name
}

output "pii_hash_key_secret_arn" {
  description = "Secret of the PII key (LEANOPS_PII_HASH_KEY; a Spark job on Glue / EMR reads it itself)."
  value       = aws_secretsmanager_secret.pii_hash_key.arn
}
