output "alarm_topic_arn" {
  description = "SNS topic of all alarms."
  value       = aws_sns_topic.alarms.arn
}

output "circuit_breaker_topic_arn" {
  description = "SNS topic that invokes circuit_breaker."
  value       = aws_sns_topic.circuit_breaker.arn
}

output "alarm_names" {
  description = "Every alarm of the deployment."
  value = [
    aws_cloudwatch_metric_alarm.single_metric["dlq_oldest_message"].alarm_name,
    aws_cloudwatch_metric_alarm.single_metric["dlq_not_empty"].alarm_name,
    aws_cloudwatch_metric_alarm.sqs_processor_error_rate.alarm_name,
    aws_cloudwatch_metric_alarm.single_metric["firehose_delivery_failures"].alarm_name,
    aws_cloudwatch_metric_alarm.single_metric["firehose_data_freshness"].alarm_name,
    aws_cloudwatch_metric_alarm.single_metric["dagster_run_failures"].alarm_name,
    aws_cloudwatch_metric_alarm.single_metric["schema_drift"].alarm_name,
  ]
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the deployment."
  value       = aws_cloudwatch_dashboard.main.dashboard_name
}

output "dashboard_widget_titles" {
  description = "Panel titles of the dashboard (tests read them)."
  value       = [for widget in local.dashboard_widgets : widget.properties.title]
}
