output "stream_name" {
  description = "Firehose stream name (lean-ops-<env>-raw-firehose)."
  value       = aws_kinesis_firehose_delivery_stream.raw.name
}

output "stream_arn" {
  description = "Firehose stream ARN."
  value       = aws_kinesis_firehose_delivery_stream.raw.arn
}

output "routing_query" {
  description = "The JQ routing expression as deployed."
  value       = local.routing_query
}
