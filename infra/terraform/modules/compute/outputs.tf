output "sqs_processor_function_name" {
  description = "sqs_processor function name."
  value       = aws_lambda_function.consumer["sqs_processor"].function_name
}

output "dlq_processor_function_name" {
  description = "dlq_processor function name."
  value       = aws_lambda_function.consumer["dlq_processor"].function_name
}

output "circuit_breaker_function_name" {
  description = "circuit_breaker function name."
  value       = aws_lambda_function.circuit_breaker.function_name
}

output "circuit_breaker_function_arn" {
  description = "circuit_breaker function ARN."
  value       = aws_lambda_function.circuit_breaker.arn
}

output "event_source_mapping_uuids" {
  description = "Topic -> event source mapping UUID (CB_MAPPINGS)."
  value       = { for topic, esm in aws_lambda_event_source_mapping.topic : topic => esm.uuid }
}
