# The three task definitions became instances of aws_ecs_task_definition.dagster (for_each over
# local.task_definitions): these blocks move existing state instead of registering new revisions
# and deregistering the current ones. Keep them until every deployment has applied them.

moved {
  from = aws_ecs_task_definition.webserver
  to   = aws_ecs_task_definition.dagster["webserver"]
}

moved {
  from = aws_ecs_task_definition.daemon
  to   = aws_ecs_task_definition.dagster["daemon"]
}

moved {
  from = aws_ecs_task_definition.run
  to   = aws_ecs_task_definition.dagster["run"]
}
