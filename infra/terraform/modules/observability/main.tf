# Alarms and the dashboard of the fail-aware pipeline. Every alarm notifies the alarm topic; the Lambda error-rate
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
    # --- the pipeline's own metric (Dagster's drift_alert_sensor) ---
    schema_drift = {
      alarm_name        = "${var.name_prefix}-schema-drift"
      alarm_description = "New columns reached the drift log (JSON keys the curated schema does not declare). They stay in Standardized; extend the curated schema to promote them (governance)."
      namespace         = var.pipeline_metrics.namespace
      metric_name       = var.pipeline_metrics.schema_drift
      dimensions        = null
      statistic         = "Sum"
      threshold         = 0
    }
    # --- Dagster's ticks (tick_metrics_sensor): a slow RAW sensor delays every topic ---
    raw_sensor_tick_seconds = {
      alarm_name        = "${var.name_prefix}-raw-sensor-slow-ticks"
      alarm_description = "A tick of raw_snapshot_sensor took longer than ${var.tick_alarm_seconds} s: every topic's next run waits for it. See the tick panel and docs/operations.md (many topics)."
      namespace         = var.pipeline_metrics.namespace
      metric_name       = var.pipeline_metrics.tick_seconds
      dimensions        = { (var.pipeline_metrics.instigator_dimension) = "raw_snapshot_sensor" }
      statistic         = "Maximum"
      threshold         = var.tick_alarm_seconds
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

# --- dashboard (seed 003 section 7: ingestion, DLQ, pipeline health, freshness) -----------------
data "aws_region" "current" {}

locals {
  region  = data.aws_region.current.name
  metrics = var.pipeline_metrics
  dashboard_widgets = [
    {
      type = "metric", x = 0, y = 0, width = 12, height = 6
      properties = {
        title   = "Ingestion throughput: SQS messages sent per topic (per minute)"
        region  = local.region
        view    = "timeSeries"
        stat    = "Sum"
        period  = 60
        metrics = [for topic in var.topics : ["AWS/SQS", "NumberOfMessagesSent", "QueueName", var.queue_names[topic], { label = topic }]]
      }
    },
    {
      type = "metric", x = 12, y = 0, width = 12, height = 6
      properties = {
        title  = "Ingestion throughput: Firehose rows to Iceberg (per minute)"
        region = local.region
        view   = "timeSeries"
        stat   = "Sum"
        period = 60
        metrics = [
          ["AWS/Firehose", "DeliveryToIceberg.IncomingRowCount", "DeliveryStreamName", var.firehose_stream_name, { label = "incoming" }],
          ["AWS/Firehose", "DeliveryToIceberg.SuccessfulRowCount", "DeliveryStreamName", var.firehose_stream_name, { label = "delivered" }],
          ["AWS/Firehose", "DeliveryToIceberg.FailedRowCount", "DeliveryStreamName", var.firehose_stream_name, { label = "failed (S3 error output)" }],
        ]
      }
    },
    {
      type = "metric", x = 0, y = 6, width = 12, height = 6
      properties = {
        title  = "DLQ status: messages visible and oldest message age"
        region = local.region
        view   = "timeSeries"
        stat   = "Maximum"
        period = 300
        metrics = [
          ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.dlq_name, { label = "messages" }],
          ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", var.dlq_name, { label = "oldest (s)", yAxis = "right" }],
        ]
        annotations = { horizontal = [{ label = "7 days (alarm)", value = var.dlq_max_age_seconds, yAxis = "right" }] }
      }
    },
    {
      type = "metric", x = 12, y = 6, width = 12, height = 6
      properties = {
        title  = "Pipeline health: Dagster runs, sqs_processor errors, new drift columns"
        region = local.region
        view   = "timeSeries"
        stat   = "Sum"
        period = 300
        metrics = [
          [var.dagster_metric_namespace, var.dagster_run_success_metric, { label = "runs succeeded" }],
          [var.dagster_metric_namespace, var.dagster_run_failure_metric, { label = "runs failed" }],
          ["AWS/Lambda", "Errors", "FunctionName", var.sqs_processor_function_name, { label = "sqs_processor errors" }],
          ["AWS/Lambda", "Invocations", "FunctionName", var.sqs_processor_function_name, { label = "sqs_processor invocations", yAxis = "right" }],
          [local.metrics.namespace, local.metrics.schema_drift, { label = "new drift columns" }],
        ]
      }
    },
    {
      type = "metric", x = 0, y = 12, width = 18, height = 6
      properties = {
        title   = "Curated freshness: lag behind the oldest unconsumed data, per topic (s)"
        region  = local.region
        view    = "timeSeries"
        stat    = "Maximum"
        period  = 60
        metrics = [for topic in var.topics : [local.metrics.namespace, local.metrics.curated_lag, local.metrics.topic_dimension, topic, { label = topic }]]
        annotations = {
          horizontal = [{ label = "freshness target", value = var.curated_freshness_minutes * 60 }]
        }
      }
    },
    {
      type = "alarm", x = 18, y = 12, width = 6, height = 6
      properties = {
        title = "Alarms"
        alarms = concat(
          [for alarm in aws_cloudwatch_metric_alarm.single_metric : alarm.arn],
          [aws_cloudwatch_metric_alarm.sqs_processor_error_rate.arn],
        )
      }
    },
    {
      type = "metric", x = 0, y = 18, width = 18, height = 6
      properties = {
        title  = "Sensor and schedule ticks: the longest per minute (s), every instigator"
        region = local.region
        view   = "timeSeries"
        period = 60
        metrics = [[{
          expression = "SEARCH('{${local.metrics.namespace},${local.metrics.instigator_dimension}} MetricName=\"${local.metrics.tick_seconds}\"', 'Maximum', 60)"
          id         = "ticks"
        }]]
        annotations = { horizontal = [{ label = "10 s target", value = 10 }] }
      }
    },
  ]
}

resource "aws_cloudwatch_dashboard" "main" {
  dashboard_name = var.name_prefix
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
