# The three ingestion Lambdas, packaged from ingestion_lambdas/ by infra/scripts/package_lambdas.py,
# their event source mappings and their least-privilege roles.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  zip_path = startswith(var.lambda_zip_path, "/") ? var.lambda_zip_path : "${path.root}/${var.lambda_zip_path}"
  zip_hash = filebase64sha256(local.zip_path)

  # Handler strings: module path inside the zip + function (tests/infra imports each one).
  functions = {
    sqs_processor = {
      name    = "${var.name_prefix}-sqs-processor"
      handler = "ingestion_lambdas.sqs_processor.handler.lambda_handler"
    }
    dlq_processor = {
      name    = "${var.name_prefix}-dlq-processor"
      handler = "ingestion_lambdas.dlq_processor.handler.lambda_handler"
    }
    circuit_breaker = {
      name    = "${var.name_prefix}-circuit-breaker"
      handler = "ingestion_lambdas.circuit_breaker.handler.lambda_handler"
    }
  }

  breaker_state_prefix = coalesce(var.circuit_breaker_state_parameter_prefix, "/${var.name_prefix}/circuit-breaker/")

  # Environment read by ingestion_lambdas/common/config.py (the only reader of these variables).
  common_environment = {
    FIREHOSE_STREAM_NAME = var.firehose_stream_name
    QUEUE_NAME_PREFIX    = "${var.name_prefix}-"
    QUEUE_NAME_SUFFIX    = "-queue"
    RAW_NAMESPACE        = var.raw_namespace
    METRICS_NAMESPACE    = var.metrics_namespace
    POWERTOOLS_LOG_LEVEL = "INFO"
  }
  environments = {
    sqs_processor = merge(local.common_environment, {
      DLQ_URL                 = var.dlq_url
      POWERTOOLS_SERVICE_NAME = "sqs_processor"
    })
    dlq_processor = merge(local.common_environment, {
      DLQ_URL                 = var.dlq_url
      ARCHIVE_BUCKET          = var.archive_bucket_name
      ARCHIVE_PREFIX          = var.archive_prefix
      POWERTOOLS_SERVICE_NAME = "dlq_processor"
    })
  }
  # maximum_concurrency of the DLQ event source mapping.
  dlq_maximum_concurrency = 2
  # What differs between the two queue consumers (aws_lambda_function.consumer).
  # mapping_concurrency: how many instances their event source mappings may run at once, which
  # the reserved concurrency must cover.
  consumers = {
    sqs_processor = {
      description          = "SQS topic queues -> Firehose (RAW); transient failures as batchItemFailures."
      timeout              = var.sqs_processor_timeout_seconds
      memory_size          = var.sqs_processor_memory_mb
      reserved_concurrency = var.sqs_processor_reserved_concurrency
      mapping_concurrency  = var.maximum_concurrency * length(var.topics)
    }
    dlq_processor = {
      description          = "Centralized DLQ -> S3 archive + RAW dlq_errors."
      timeout              = var.sqs_processor_timeout_seconds
      memory_size          = 256
      reserved_concurrency = 2
      mapping_concurrency  = local.dlq_maximum_concurrency
    }
  }
  # Separate local: it depends on the mappings, which depend on sqs_processor.
  circuit_breaker_environment = merge(local.common_environment, {
    CB_MAPPINGS               = jsonencode({ for topic, esm in aws_lambda_event_source_mapping.topic : topic => esm.uuid })
    CB_STATE_PARAMETER_PREFIX = local.breaker_state_prefix
    POWERTOOLS_SERVICE_NAME   = "circuit_breaker"
  })

  event_source_mapping_arns = [
    for esm in aws_lambda_event_source_mapping.topic :
    "arn:${local.partition}:lambda:${local.region}:${local.account_id}:event-source-mapping:${esm.uuid}"
  ]
}

# --- logs --------------------------------------------------------------------------------------
resource "aws_cloudwatch_log_group" "lambda" {
  for_each = local.functions

  name              = "/aws/lambda/${each.value.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# --- roles -------------------------------------------------------------------------------------
data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "lambda" {
  for_each = local.functions

  name               = "${each.value.name}-role"
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

# X-Ray tracing (AWS managed policy: trace segments cannot be scoped to a resource).
resource "aws_iam_role_policy_attachment" "xray" {
  for_each = local.functions

  role       = aws_iam_role.lambda[each.key].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

data "aws_iam_policy_document" "logs" {
  for_each = local.functions

  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda[each.key].arn}:*"]
  }

  statement {
    sid       = "EnvironmentKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

data "aws_iam_policy_document" "sqs_processor" {
  source_policy_documents = [data.aws_iam_policy_document.logs["sqs_processor"].json]

  statement {
    sid = "ConsumeTopicQueues"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = values(var.queue_arns)
  }

  statement {
    sid       = "SendUndeliverableToDlq"
    actions   = ["sqs:SendMessage", "sqs:GetQueueAttributes"]
    resources = [var.dlq_arn]
  }

  statement {
    sid       = "PutRawRecords"
    actions   = ["firehose:PutRecordBatch", "firehose:PutRecord"]
    resources = [var.firehose_stream_arn]
  }
}

data "aws_iam_policy_document" "dlq_processor" {
  source_policy_documents = [data.aws_iam_policy_document.logs["dlq_processor"].json]

  statement {
    sid = "DrainDlq"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [var.dlq_arn]
  }

  statement {
    sid       = "ArchiveMessages"
    actions   = ["s3:PutObject"]
    resources = ["${var.archive_bucket_arn}/${var.archive_prefix}/*"]
  }

  statement {
    sid       = "RecordDlqErrors"
    actions   = ["firehose:PutRecordBatch", "firehose:PutRecord"]
    resources = [var.firehose_stream_arn]
  }
}

data "aws_iam_policy_document" "circuit_breaker" {
  source_policy_documents = [data.aws_iam_policy_document.logs["circuit_breaker"].json]

  statement {
    sid       = "ToggleTopicMappings"
    actions   = ["lambda:UpdateEventSourceMapping", "lambda:GetEventSourceMapping"]
    resources = local.event_source_mapping_arns
  }

  statement {
    sid       = "BreakerState"
    actions   = ["ssm:GetParameter", "ssm:PutParameter"]
    resources = ["arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${local.breaker_state_prefix}*"]
  }

  statement {
    sid       = "ReadIngestionMetrics"
    actions   = ["cloudwatch:GetMetricData"]
    resources = ["*"] # GetMetricData has no resource-level permissions.
  }
}

resource "aws_iam_role_policy" "sqs_processor" {
  name   = "sqs-processor"
  role   = aws_iam_role.lambda["sqs_processor"].id
  policy = data.aws_iam_policy_document.sqs_processor.json
}

resource "aws_iam_role_policy" "dlq_processor" {
  name   = "dlq-processor"
  role   = aws_iam_role.lambda["dlq_processor"].id
  policy = data.aws_iam_policy_document.dlq_processor.json
}

resource "aws_iam_role_policy" "circuit_breaker" {
  name   = "circuit-breaker"
  role   = aws_iam_role.lambda["circuit_breaker"].id
  policy = data.aws_iam_policy_document.circuit_breaker.json
}

# --- functions ---------------------------------------------------------------------------------
# The two queue consumers: one block, their differences in local.consumers. circuit_breaker keeps
# a block of its own: its environment holds the topic mappings' UUIDs and those mappings need
# sqs_processor's ARN, so in one for_each resource the resource would depend on itself (a cycle).
resource "aws_lambda_function" "consumer" {
  #checkov:skip=CKV_AWS_116:Both are invoked synchronously by SQS event source mappings: a failed topic item returns to its queue and reaches the centralized DLQ through its redrive policy; a failed DLQ item stays in the DLQ (14-day retention) and is retried.
  #checkov:skip=CKV_AWS_117:Calls only AWS APIs (SQS, S3, Firehose); a VPC would add NAT/endpoint cost without protecting anything reachable.
  #checkov:skip=CKV_AWS_272:The zip is built reproducibly from the repository by infra/scripts/package_lambdas.py; code signing needs an AWS Signer profile per account, outside this module.
  for_each = local.consumers

  function_name                  = local.functions[each.key].name
  description                    = each.value.description
  filename                       = local.zip_path
  source_code_hash               = local.zip_hash
  handler                        = local.functions[each.key].handler
  runtime                        = var.runtime
  architectures                  = [var.architecture]
  role                           = aws_iam_role.lambda[each.key].arn
  timeout                        = each.value.timeout
  memory_size                    = each.value.memory_size
  reserved_concurrent_executions = each.value.reserved_concurrency
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = local.environments[each.key]
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.lambda[each.key].name
  }

  lifecycle {
    precondition {
      condition     = each.value.reserved_concurrency >= each.value.mapping_concurrency
      error_message = "${each.key}: reserved concurrency ${each.value.reserved_concurrency} must cover its event source mappings' maximum concurrency ${each.value.mapping_concurrency} (sqs_processor_reserved_concurrency >= maximum_concurrency x number of topics), or the mappings are throttled."
    }
  }

  depends_on = [aws_iam_role_policy.sqs_processor, aws_iam_role_policy.dlq_processor]
}

resource "aws_lambda_function" "circuit_breaker" {
  #checkov:skip=CKV_AWS_116:Runs every minute on a schedule and on alarms; a failed evaluation is simply redone by the next run, so a DLQ would only collect stale events.
  #checkov:skip=CKV_AWS_117:Calls only AWS APIs (CloudWatch, Lambda, SSM); a VPC would add NAT/endpoint cost without protecting anything reachable.
  #checkov:skip=CKV_AWS_272:The zip is built reproducibly from the repository by infra/scripts/package_lambdas.py; code signing needs an AWS Signer profile per account, outside this module.
  function_name                  = local.functions.circuit_breaker.name
  description                    = "Disables / re-enables a topic's event source mapping on a high error rate."
  filename                       = local.zip_path
  source_code_hash               = local.zip_hash
  handler                        = local.functions.circuit_breaker.handler
  runtime                        = var.runtime
  architectures                  = [var.architecture]
  role                           = aws_iam_role.lambda["circuit_breaker"].arn
  timeout                        = 60
  memory_size                    = 256
  reserved_concurrent_executions = 1 # one evaluator at a time: state transitions never race
  kms_key_arn                    = var.kms_key_arn

  environment {
    variables = local.circuit_breaker_environment
  }

  tracing_config {
    mode = "Active"
  }

  logging_config {
    log_format = "JSON"
    log_group  = aws_cloudwatch_log_group.lambda["circuit_breaker"].name
  }

  depends_on = [aws_iam_role_policy.circuit_breaker]
}

# --- event source mappings ---------------------------------------------------------------------
resource "aws_lambda_event_source_mapping" "topic" {
  for_each = var.queue_arns

  event_source_arn                   = each.value
  function_name                      = aws_lambda_function.consumer["sqs_processor"].arn
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]
  enabled                            = true

  scaling_config {
    maximum_concurrency = var.maximum_concurrency
  }

  lifecycle {
    # circuit_breaker owns `enabled` at run time; an apply must not close an open breaker.
    ignore_changes = [enabled]
  }
}

resource "aws_lambda_event_source_mapping" "dlq" {
  event_source_arn                   = var.dlq_arn
  function_name                      = aws_lambda_function.consumer["dlq_processor"].arn
  batch_size                         = var.dlq_batch_size
  maximum_batching_window_in_seconds = var.batching_window_seconds
  function_response_types            = ["ReportBatchItemFailures"]

  scaling_config {
    maximum_concurrency = local.dlq_maximum_concurrency
  }
}

# --- circuit breaker schedule --------------------------------------------------------------------
resource "aws_cloudwatch_event_rule" "circuit_breaker" {
  name                = "${local.functions.circuit_breaker.name}-schedule"
  description         = "Periodic circuit breaker evaluation (window, cooldown, half-open probe)."
  schedule_expression = var.circuit_breaker_schedule
}

resource "aws_cloudwatch_event_target" "circuit_breaker" {
  rule = aws_cloudwatch_event_rule.circuit_breaker.name
  arn  = aws_lambda_function.circuit_breaker.arn
}

resource "aws_lambda_permission" "circuit_breaker_schedule" {
  statement_id  = "AllowEventBridgeSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.circuit_breaker.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.circuit_breaker.arn
}
