# Alarms of the fail-aware pipeline. Every alarm notifies the alarm topic; the Lambda error-rate
# alarm also notifies the circuit breaker topic, which invokes circuit_breaker at once (it runs on
# a schedule too, see modules/compute).

locals {
  # The alarms on one metric, by resource key. Shared by all of them: 5-minute period, one
  # evaluation period, "greater than threshold", missing data is not breaching, and the alarm
  # topic for both ALARM and OK. Dagster's metric has no dimensions (null = none).
  single_metric_alarms = {
    # --- DLQ ---
    dlq_oldest_message = {
      alarm_name        = "${var.name_prefix}-dlq-oldest-message"
      alarm_description = "A message has waited in the DLQ for more than 7 days: it is lost after 14. Replay or archive it (runbook: DLQ replay)."
      namespace         = "AWS/SQS"
      metric_name       = "ApproximateAgeOfOldestMessage"
      dimensions        = { QueueName = var.dlq_name }
      statistic         = "Maximum"
      threshold         = var.dlq_max_age_seconds
    }
    dlq_not_empty = {
      alarm_name        = "${var.name_prefix}-dlq-not-empty"
      alarm_description = "Messages are visible in the centralized DLQ (dlq_processor is behind or failing)."
      namespace         = "AWS/SQS"
      metric_name       = "ApproximateNumberOfMessagesVisible"
      dimensions        = { QueueName = var.dlq_name }
      statistic         = "Maximum"
      threshold         = 0
    }
    # --- Firehose ---
    firehose_delivery_failures = {
      alarm_name        = "${var.name_prefix}-firehose-delivery-failures"
      alarm_description = "Firehose wrote rows to the S3 error output instead of Iceberg (firehose-errors/ in the warehouse bucket)."
      namespace         = "AWS/Firehose"
      metric_name       = "DeliveryToIceberg.FailedRowCount"
      dimensions        = { DeliveryStreamName = var.firehose_stream_name }
      statistic         = "Sum"
      threshold         = 0
    }
    firehose_data_freshness = {
      alarm_name        = "${var.name_prefix}-firehose-data-freshness"
      alarm_description = "The oldest record in Firehose is older than 15 minutes: Iceberg commits are stalling."
      namespace         = "AWS/Firehose"
      metric_name       = "DeliveryToIceberg.DataFreshness"
      dimensions        = { DeliveryStreamName = var.firehose_stream_name }
      statistic         = "Maximum"
      threshold         = 900
    }
    # --- Dagster ---
    dagster_run_failures = {
      alarm_name        = "${var.name_prefix}-dagster-run-failures"
      alarm_description = "A Dagster run failed (RUN_FAILURE in the run task logs). Open the run in the Dagster UI."
      namespace         = var.dagster_metric_namespace
      metric_name       = var.dagster_run_failure_metric
      dimensions        = null
      statistic         = "Sum"
      threshold         = 0
    }
  }
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = var.kms_key_arn
}

resource "aws_sns_topic" "circuit_breaker" {
  name              = "${var.name_prefix}-circuit-breaker"
  kms_master_key_id = var.kms_key_arn
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alarm_email_endpoints)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

resource "aws_sns_topic_subscription" "circuit_breaker" {
  topic_arn = aws_sns_topic.circuit_breaker.arn
  protocol  = "lambda"
  endpoint  = var.circuit_breaker_function_arn
}

resource "aws_lambda_permission" "circuit_breaker_sns" {
  statement_id  = "AllowCircuitBreakerTopic"
  action        = "lambda:InvokeFunction"
  function_name = var.circuit_breaker_function_name
  principal     = "sns.amazonaws.com"
  source_arn    = aws_sns_topic.circuit_breaker.arn
}

# --- DLQ, Firehose, Dagster: one metric each (local.single_metric_alarms) ----------------------
resource "aws_cloudwatch_metric_alarm" "single_metric" {
  for_each = local.single_metric_alarms

  alarm_name          = each.value.alarm_name
  alarm_description   = each.value.alarm_description
  namespace           = each.value.namespace
  metric_name         = each.value.metric_name
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

# --- Lambda error rate (metric math), wired to the circuit breaker ------------------------------
resource "aws_cloudwatch_metric_alarm" "sqs_processor_error_rate" {
  alarm_name          = "${var.name_prefix}-sqs-processor-error-rate"
  alarm_description   = "sqs_processor Errors / Invocations above ${var.error_rate_threshold_percent} %. Also invokes circuit_breaker, which decides per topic."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.error_rate_threshold_percent
  evaluation_periods  = 2
  datapoints_to_alarm = 2
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn, aws_sns_topic.circuit_breaker.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  metric_query {
    id          = "error_rate"
    expression  = "IF(invocations > 0, 100 * errors / invocations, 0)"
    label       = "Error rate (%)"
    return_data = true
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Errors"
      dimensions  = { FunctionName = var.sqs_processor_function_name }
      period      = 60
      stat        = "Sum"
    }
  }

  metric_query {
    id = "invocations"
    metric {
      namespace   = "AWS/Lambda"
      metric_name = "Invocations"
      dimensions  = { FunctionName = var.sqs_processor_function_name }
      period      = 60
      stat        = "Sum"
    }
  }
}
