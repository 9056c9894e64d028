output "queue_arns" {
  description = "Topic -> queue ARN."
  value       = { for topic, q in aws_sqs_queue.topic : topic => q.arn }
}

output "queue_urls" {
  description = "Topic -> queue URL."
  value       = { for topic, q in aws_sqs_queue.topic : topic => q.id }
}

output "queue_names" {
  description = "Topic -> queue name."
  value       = { for topic, q in aws_sqs_queue.topic : topic => q.name }
}

output "dlq_arn" {
  description = "Centralized DLQ ARN."
  value       = aws_sqs_queue.dlq.arn
}

output "dlq_url" {
  description = "Centralized DLQ URL."
  value       = aws_sqs_queue.dlq.id
}

output "dlq_name" {
  description = "Centralized DLQ name."
  value       = aws_sqs_queue.dlq.name
}
