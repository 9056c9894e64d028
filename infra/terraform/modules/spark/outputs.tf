output "settings_environment" {
  description = "LEANOPS_* variables of the Dagster tasks for the chosen launcher (Settings.spark_* and the PII secret)."
  value       = local.settings_environment
}

output "glue_job_name" {
  description = "The Glue job (null unless launcher = glue)."
  value       = local.glue ? aws_glue_job.spark[0].name : null
}

output "glue_job_default_arguments" {
  description = "The Glue job's default arguments, e.g. how it installs the job's zip of wheels (null unless launcher = glue)."
  value       = local.glue ? aws_glue_job.spark[0].default_arguments : null
}

output "emr_application_id" {
  description = "The EMR Serverless application (null unless launcher = emr_serverless)."
  value       = local.emr ? aws_emrserverless_application.spark[0].id : null
}

output "emr_image_repository_url" {
  description = "Push the EMR Serverless job image here (null unless launcher = emr_serverless)."
  value       = local.emr ? aws_ecr_repository.emr[0].repository_url : null
}

output "job_role_arn" {
  description = "Role the job runs as (null with a local launcher)."
  value       = local.aws ? aws_iam_role.job[0].arn : null
}
