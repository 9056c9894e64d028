# sqs_processor and dlq_processor became instances of aws_lambda_function.consumer (for_each over
# local.consumers): these blocks move existing state instead of deleting and recreating the
# functions. Keep them until every deployment has applied them.

moved {
  from = aws_lambda_function.sqs_processor
  to   = aws_lambda_function.consumer["sqs_processor"]
}

moved {
  from = aws_lambda_function.dlq_processor
  to   = aws_lambda_function.consumer["dlq_processor"]
}
