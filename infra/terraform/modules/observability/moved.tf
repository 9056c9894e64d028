# The one-metric alarms became instances of aws_cloudwatch_metric_alarm.single_metric (for_each
# over local.single_metric_alarms): these blocks move existing state instead of replacing the
# alarms. Keep them until every deployment has applied a configuration that contains them.

moved {
  from = aws_cloudwatch_metric_alarm.dlq_oldest_message
  to   = aws_cloudwatch_metric_alarm.single_metric["dlq_oldest_message"]
}

moved {
  from = aws_cloudwatch_metric_alarm.dlq_not_empty
  to   = aws_cloudwatch_metric_alarm.single_metric["dlq_not_empty"]
}

moved {
  from = aws_cloudwatch_metric_alarm.firehose_delivery_failures
  to   = aws_cloudwatch_metric_alarm.single_metric["firehose_delivery_failures"]
}

moved {
  from = aws_cloudwatch_metric_alarm.firehose_data_freshness
  to   = aws_cloudwatch_metric_alarm.single_metric["firehose_data_freshness"]
}

moved {
  from = aws_cloudwatch_metric_alarm.dagster_run_failures
  to   = aws_cloudwatch_metric_alarm.single_metric["dagster_run_failures"]
}
