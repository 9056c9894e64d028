output "queue_urls" {
  description = "Topic -> SQS queue URL (producers send here)."
  value       = module.messaging.queue_urls
}

output "dlq_url" {
  description = "Centralized DLQ."
  value       = module.messaging.dlq_url
}

output "firehose_stream_name" {
  description = "Firehose stream of the RAW zone."
  value       = module.ingestion.stream_name
}

output "glue_databases" {
  description = "Zone -> Glue database (Iceberg namespace)."
  value       = module.catalog.database_names
}

output "warehouse_bucket" {
  description = "Iceberg warehouse bucket."
  value       = module.catalog.warehouse_bucket_name
}

output "dagster_image_repository" {
  description = "ECR repository of the user-code image (docker push here)."
  value       = module.orchestration.ecr_repository_url
}

output "dagster_settings_environment" {
  description = "The LEANOPS_* variables the Dagster tasks get (also useful for a laptop pointed at AWS)."
  value       = module.orchestration.leanops_environment
}

output "alarm_topic_arn" {
  description = "SNS topic of all alarms."
  value       = module.observability.alarm_topic_arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the deployment (ingestion, DLQ, pipeline health, freshness)."
  value       = module.observability.dashboard_name
}

output "spark_emr_image_repository" {
  description = "ECR repository of the EMR Serverless job image (spark_launcher = emr_serverless; docker push here)."
  value       = module.spark.emr_image_repository_url
}

output "spark_glue_job_name" {
  description = "The Glue job of the Spark engine (spark_launcher = glue)."
  value       = module.spark.glue_job_name
}
