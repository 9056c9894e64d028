# One SQS queue per topic, each redriving to one centralized DLQ after max_receive_count receives.

resource "aws_sqs_queue" "dlq" {
  name                      = "${var.name_prefix}-dlq"
  message_retention_seconds = var.dlq_retention_seconds
  sqs_managed_sse_enabled   = true
  # dlq_processor runs with the same timeout class as sqs_processor.
  visibility_timeout_seconds = var.visibility_timeout_seconds
}

resource "aws_sqs_queue" "topic" {
  for_each = toset(var.topics)

  name                       = "${var.name_prefix}-${each.key}-queue"
  visibility_timeout_seconds = var.visibility_timeout_seconds
  message_retention_seconds  = var.message_retention_seconds
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

# Only this deployment's topic queues may redrive into the DLQ.
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [for q in aws_sqs_queue.topic : q.arn]
  })
}

# TLS only, on every queue.
data "aws_iam_policy_document" "tls_only" {
  for_each = merge(
    { for topic, q in aws_sqs_queue.topic : topic => q.arn },
    { "_dlq" = aws_sqs_queue.dlq.arn },
  )

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [each.value]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sqs_queue_policy" "tls_only" {
  for_each = data.aws_iam_policy_document.tls_only

  queue_url = each.key == "_dlq" ? aws_sqs_queue.dlq.id : aws_sqs_queue.topic[each.key].id
  policy    = each.value.json
}
