# Dagster on ECS Fargate: webserver and daemon services, one task definition for runs launched by
# dagster-aws's EcsRunLauncher (infra/dagster/dagster.yaml, baked into the user-code image built by
# the repository's Dockerfile), RDS PostgreSQL for run/event/schedule storage.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  cluster_name = "${var.name_prefix}-dagster"
  run_family   = "${var.name_prefix}-dagster-run"
  image        = "${aws_ecr_repository.dagster.repository_url}:${var.image_tag}"
  dagster_home = "/opt/dagster/dagster_home"

  # The single Settings object (leanops_dagster/settings.py) reads these.
  leanops_environment = {
    LEANOPS_ENVIRONMENT      = var.environment
    LEANOPS_CATALOG_TYPE     = "glue"
    LEANOPS_WAREHOUSE        = "s3://${var.warehouse_bucket_name}"
    LEANOPS_NAMESPACE_PREFIX = var.namespace_prefix
    LEANOPS_SCHEMA_REGISTRY  = "s3://${var.warehouse_bucket_name}/schemas"
    LEANOPS_AWS_REGION       = local.region
    LEANOPS_ARCHIVE_BUCKET   = var.archive_bucket_name
    LEANOPS_HOME             = "/tmp/leanops"
    # Operating it: alerts to the alarm topic, metrics to CloudWatch, the freshness target.
    LEANOPS_ALERTS_SNS_TOPIC_ARN = var.alerts_sns_topic_arn
    LEANOPS_CLOUDWATCH_METRICS   = "true"
    LEANOPS_FRESHNESS_MINUTES    = tostring(var.freshness_minutes)
  }
  # Read by infra/dagster/dagster.yaml.
  dagster_environment = {
    DAGSTER_HOME                = local.dagster_home
    DAGSTER_PG_HOST             = aws_db_instance.dagster.address
    DAGSTER_PG_PORT             = tostring(aws_db_instance.dagster.port)
    DAGSTER_PG_DB               = aws_db_instance.dagster.db_name
    DAGSTER_RUN_TASK_DEFINITION = local.run_family
    DAGSTER_RUN_CONTAINER       = "run"
    DAGSTER_COMPUTE_LOG_BUCKET  = var.warehouse_bucket_name
  }
  # Optional: the Snowflake refresh asset exists only when these are set (its token is a secret).
  snowflake_environment = var.snowflake == null ? {} : {
    for k, v in {
      LEANOPS_SNOWFLAKE_ACCOUNT   = var.snowflake.account
      LEANOPS_SNOWFLAKE_DATABASE  = var.snowflake.database
      LEANOPS_SNOWFLAKE_SCHEMA    = var.snowflake.schema
      LEANOPS_SNOWFLAKE_WAREHOUSE = var.snowflake.warehouse
      LEANOPS_SNOWFLAKE_ROLE      = var.snowflake.role
    } : k => v if v != null
  }
  task_environment = merge(local.leanops_environment, var.catalog_environment, local.snowflake_environment, var.spark_environment, local.dagster_environment)
  container_environment = [
    for k, v in local.task_environment : { name = k, value = v }
  ]
  db_secret_arn = aws_db_instance.dagster.master_user_secret[0].secret_arn
  container_secrets = concat([
    { name = "DAGSTER_PG_USERNAME", valueFrom = "${local.db_secret_arn}:username::" },
    { name = "DAGSTER_PG_PASSWORD", valueFrom = "${local.db_secret_arn}:password::" },
    { name = "LEANOPS_PII_HASH_KEY", valueFrom = aws_secretsmanager_secret.pii_hash_key.arn },
  ], var.snowflake == null ? [] : [{ name = "LEANOPS_SNOWFLAKE_TOKEN", valueFrom = var.snowflake.token_secret_arn }])
  # Read-only root filesystem; scratch space is task storage.
  scratch_mounts = [
    { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false },
    { sourceVolume = "dagster-storage", containerPath = "${local.dagster_home}/storage", readOnly = false },
  ]

  # What differs between the three task definitions (see aws_ecs_task_definition.dagster).
  task_definitions = {
    webserver = {
      family        = "${var.name_prefix}-dagster-webserver"
      cpu           = var.webserver_cpu
      memory        = var.webserver_memory
      task_role_arn = aws_iam_role.control.arn
      log_group     = aws_cloudwatch_log_group.services.name
      container = {
        command      = ["dagster-webserver", "--host", "0.0.0.0", "--port", "3000", "--workspace", "/app/workspace.yaml"]
        portMappings = [{ containerPort = 3000, protocol = "tcp" }]
      }
    }
    daemon = {
      family        = "${var.name_prefix}-dagster-daemon"
      cpu           = var.daemon_cpu
      memory        = var.daemon_memory
      task_role_arn = aws_iam_role.control.arn
      log_group     = aws_cloudwatch_log_group.services.name
      container = {
        command = ["dagster-daemon", "run", "--workspace", "/app/workspace.yaml"]
      }
    }
    # Runs: EcsRunLauncher starts this family with the run's command (task_definition in
    # dagster.yaml), so the container has no command of its own.
    run = {
      family        = local.run_family
      cpu           = var.run_cpu
      memory        = var.run_memory
      task_role_arn = aws_iam_role.run.arn
      log_group     = aws_cloudwatch_log_group.runs.name
      container     = {}
    }
  }

  glue_database_arns = [for db in var.glue_database_names : "arn:${local.partition}:glue:${local.region}:${local.account_id}:database/${db}"]
  glue_table_arns    = [for db in var.glue_database_names : "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${db}/*"]
}

# --- image repository ------------------------------------------------------------------------------
resource "aws_ecr_repository" "dagster" {
  name                 = "${var.name_prefix}-dagster"
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }
}

resource "aws_ecr_lifecycle_policy" "dagster" {
  repository = aws_ecr_repository.dagster.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the 30 newest images"
      selection    = { tagStatus = "any", countType = "imageCountMoreThan", countNumber = 30 }
      action       = { type = "expire" }
    }]
  })
}

# --- logs and the run-failure metric ----------------------------------------------------------------
resource "aws_cloudwatch_log_group" "services" {
  name              = "/ecs/${var.name_prefix}-dagster"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_cloudwatch_log_group" "runs" {
  name              = "/ecs/${var.name_prefix}-dagster-runs"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

# Every failed run logs one RUN_FAILURE event line; this filter turns it into the metric that
# modules/observability alarms on (namespace LeanOps/Dagster, metric RunFailures).
resource "aws_cloudwatch_log_metric_filter" "run_failures" {
  name           = "${var.name_prefix}-dagster-run-failures"
  log_group_name = aws_cloudwatch_log_group.runs.name
  pattern        = "\"RUN_FAILURE\""

  metric_transformation {
    name          = var.run_failure_metric_name
    namespace     = var.run_failure_metric_namespace
    value         = "1"
    default_value = "0"
  }
}

# Successful runs, for the dashboard's pipeline-health panel beside the failures.
resource "aws_cloudwatch_log_metric_filter" "run_successes" {
  name           = "${var.name_prefix}-dagster-run-successes"
  log_group_name = aws_cloudwatch_log_group.runs.name
  pattern        = "\"RUN_SUCCESS\""

  metric_transformation {
    name          = var.run_success_metric_name
    namespace     = var.run_failure_metric_namespace
    value         = "1"
    default_value = "0"
  }
}

# --- secrets -----------------------------------------------------------------------------------------
# Generated once by Secrets Manager; later plans ignore the (re-read) random value.
data "aws_secretsmanager_random_password" "pii_hash_key" {
  password_length     = 48
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret" "pii_hash_key" {
  #checkov:skip=CKV2_AWS_57:An HMAC key for PII masking must stay stable (rotating it changes every masked value); rotate deliberately with a backfill, not on a schedule.
  name        = "${var.name_prefix}/dagster/pii-hash-key"
  description = "HMAC key of the PII masking in Curated (LEANOPS_PII_HASH_KEY)."
  kms_key_id  = var.kms_key_arn
}

resource "aws_secretsmanager_secret_version" "pii_hash_key" {
  secret_id     = aws_secretsmanager_secret.pii_hash_key.id
  secret_string = data.aws_secretsmanager_random_password.pii_hash_key.random_password

  lifecycle {
    ignore_changes = [secret_string]
  }
}

# --- network -----------------------------------------------------------------------------------------
resource "aws_security_group" "tasks" {
  name        = "${var.name_prefix}-dagster-tasks"
  description = "Dagster webserver, daemon and run tasks"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  #checkov:skip=CKV_AWS_382:Tasks call AWS APIs (S3, Glue, ECS, ECR, CloudWatch, Secrets Manager) over HTTPS; without VPC endpoints those addresses are public. Only port 443 is open.
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to AWS APIs"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "tasks_postgres" {
  security_group_id            = aws_security_group.tasks.id
  description                  = "PostgreSQL storage"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.db.id
}

resource "aws_security_group" "webserver" {
  name        = "${var.name_prefix}-dagster-webserver"
  description = "Dagster webserver UI (port 3000)"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "webserver" {
  for_each = toset(var.webserver_ingress_cidrs)

  security_group_id = aws_security_group.webserver.id
  description       = "Dagster UI from ${each.value}"
  ip_protocol       = "tcp"
  from_port         = 3000
  to_port           = 3000
  cidr_ipv4         = each.value
}

resource "aws_security_group" "db" {
  name        = "${var.name_prefix}-dagster-db"
  description = "Dagster PostgreSQL storage"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "db_from_tasks" {
  security_group_id            = aws_security_group.db.id
  description                  = "PostgreSQL from Dagster tasks"
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  referenced_security_group_id = aws_security_group.tasks.id
}

# --- database ------------------------------------------------------------------------------------------
resource "aws_db_subnet_group" "dagster" {
  name       = "${var.name_prefix}-dagster"
  subnet_ids = var.private_subnet_ids
}

resource "aws_db_parameter_group" "dagster" {
  name   = "${var.name_prefix}-dagster-pg${var.db_engine_version}"
  family = "postgres${var.db_engine_version}"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_statement"
    value = "ddl"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
}

data "aws_iam_policy_document" "rds_monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${var.name_prefix}-dagster-rds-monitoring"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_assume.json
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "dagster" {
  identifier     = "${var.name_prefix}-dagster"
  engine         = "postgres"
  engine_version = var.db_engine_version
  instance_class = var.db_instance_class
  db_name        = "dagster"
  username       = "dagster"

  # The password never appears in Terraform state: RDS keeps it in Secrets Manager.
  manage_master_user_password   = true
  master_user_secret_kms_key_id = var.kms_key_arn

  allocated_storage     = var.db_allocated_storage_gb
  max_allocated_storage = var.db_allocated_storage_gb * 5
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = var.kms_key_arn

  db_subnet_group_name   = aws_db_subnet_group.dagster.name
  vpc_security_group_ids = [aws_security_group.db.id]
  publicly_accessible    = false
  parameter_group_name   = aws_db_parameter_group.dagster.name
  multi_az               = var.db_multi_az

  iam_database_authentication_enabled = true
  backup_retention_period             = 7
  copy_tags_to_snapshot               = true
  deletion_protection                 = var.db_deletion_protection
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${var.name_prefix}-dagster-final"
  auto_minor_version_upgrade          = true
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]

  performance_insights_enabled    = true
  performance_insights_kms_key_id = var.kms_key_arn
  monitoring_interval             = 60
  monitoring_role_arn             = aws_iam_role.rds_monitoring.arn
}

# --- roles -----------------------------------------------------------------------------------------------
data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"]
    }
  }
}

# Execution role: pull the image, write logs, read the two secrets.
resource "aws_iam_role" "execution" {
  name               = "${var.name_prefix}-dagster-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # GetAuthorizationToken has no resource-level permissions.
  }
  statement {
    sid       = "PullImage"
    actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    resources = [aws_ecr_repository.dagster.arn]
  }
  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.services.arn}:*", "${aws_cloudwatch_log_group.runs.arn}:*"]
  }
  statement {
    sid     = "ReadSecrets"
    actions = ["secretsmanager:GetSecretValue"]
    resources = concat(
      [local.db_secret_arn, aws_secretsmanager_secret.pii_hash_key.arn],
      var.snowflake == null ? [] : [var.snowflake.token_secret_arn],
    )
  }
  statement {
    sid       = "DecryptSecretsAndImage"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "execution"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# Data access of every Dagster task: the warehouse bucket and the three Glue databases, nothing else.
data "aws_iam_policy_document" "data" {
  statement {
    sid       = "WarehouseBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [var.warehouse_bucket_arn]
  }
  statement {
    sid       = "WarehouseObjects"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${var.warehouse_bucket_arn}/*"]
  }
  statement {
    sid = "GlueZones"
    actions = [
      "glue:GetDatabase",
      "glue:GetDatabases",
      "glue:CreateDatabase",
      "glue:GetTable",
      "glue:GetTables",
      "glue:CreateTable",
      "glue:UpdateTable",
      "glue:DeleteTable",
    ]
    resources = concat(
      ["arn:${local.partition}:glue:${local.region}:${local.account_id}:catalog"],
      local.glue_database_arns,
      local.glue_table_arns,
    )
  }
  statement {
    sid       = "WarehouseKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
  # With S3 Tables as the catalog: the zones' tables in the table bucket (the Iceberg REST
  # endpoint authorizes each call as these actions).
  dynamic "statement" {
    for_each = var.s3tables_bucket_arn == null ? [] : [1]
    content {
      sid = "TableBucket"
      actions = [
        "s3tables:GetTableBucket",
        "s3tables:GetNamespace",
        "s3tables:ListNamespaces",
        "s3tables:GetTable",
        "s3tables:ListTables",
        "s3tables:CreateTable",
        "s3tables:GetTableMetadataLocation",
        "s3tables:UpdateTableMetadataLocation",
        "s3tables:GetTableData",
        "s3tables:PutTableData",
        "s3tables:DeleteTable",
        "s3tables:GetTableMaintenanceConfiguration",
      ]
      resources = [var.s3tables_bucket_arn, "${var.s3tables_bucket_arn}/table/*"]
    }
  }
}

# Run tasks: data access only.
resource "aws_iam_role" "run" {
  name               = "${var.name_prefix}-dagster-run"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "run_data" {
  name   = "warehouse-and-glue"
  role   = aws_iam_role.run.id
  policy = data.aws_iam_policy_document.data.json
}

# Webserver and daemon: data access (sensors read Iceberg snapshots) + launching run tasks.
resource "aws_iam_role" "control" {
  name               = "${var.name_prefix}-dagster-control"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
}

resource "aws_iam_role_policy" "control_data" {
  name   = "warehouse-and-glue"
  role   = aws_iam_role.control.id
  policy = data.aws_iam_policy_document.data.json
}

data "aws_iam_policy_document" "launch_runs" {
  statement {
    sid       = "RunTasksOfTheRunFamily"
    actions   = ["ecs:RunTask"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:task-definition/${local.run_family}:*"]
  }
  statement {
    sid       = "ManageTasksInThisCluster"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask", "ecs:TagResource"]
    resources = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${local.cluster_name}/*"]
  }
  statement {
    sid = "DescribeOnly"
    # No resource-level permissions exist for these read-only calls.
    actions   = ["ecs:DescribeTaskDefinition", "ec2:DescribeNetworkInterfaces"]
    resources = ["*"]
  }
  statement {
    sid       = "ReadRunLogsOnFailure"
    actions   = ["logs:GetLogEvents"]
    resources = ["${aws_cloudwatch_log_group.runs.arn}:*"]
  }
  statement {
    sid       = "PassRunRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.run.arn, aws_iam_role.execution.arn]
  }
  statement {
    sid = "EcsExecPortForwarding"
    # ECS Exec (webserver port forwarding); ssmmessages has no resource-level permissions.
    actions = [
      "ssmmessages:CreateControlChannel",
      "ssmmessages:CreateDataChannel",
      "ssmmessages:OpenControlChannel",
      "ssmmessages:OpenDataChannel",
    ]
    resources = ["*"]
  }
}

# The alert sensors (evaluated by the daemon): publish to the alarm topic (KMS-encrypted with
# the data key, which the data policy already grants) and write the pipeline's own metrics.
data "aws_iam_policy_document" "alerts" {
  statement {
    sid       = "PublishAlerts"
    actions   = ["sns:Publish"]
    resources = [var.alerts_sns_topic_arn]
  }
  statement {
    sid = "PublishPipelineMetrics"
    # PutMetricData has no resource-level permissions; the condition pins the namespace.
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [var.pipeline_metric_namespace]
    }
  }
}

# The pre-RAW balance check (a run of accountability_checks) reads its left side and the Firehose
# failed rows from CloudWatch (leanops_dagster/resources/ingestion.py): SQS NumberOfMessagesSent
# per queue, the RAW stream's DeliveryToIceberg.FailedRowCount, the DLQ's visible messages.
data "aws_iam_policy_document" "ingestion_counts" {
  statement {
    sid = "ReadIngestionMetrics"
    # GetMetricData and ListMetrics have no resource-level permissions.
    actions   = ["cloudwatch:GetMetricData", "cloudwatch:ListMetrics"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "run_ingestion_counts" {
  name   = "ingestion-counts"
  role   = aws_iam_role.run.id
  policy = data.aws_iam_policy_document.ingestion_counts.json
}

resource "aws_iam_role_policy" "control_alerts" {
  name   = "alerts-and-metrics"
  role   = aws_iam_role.control.id
  policy = data.aws_iam_policy_document.alerts.json
}

resource "aws_iam_role_policy" "control_launch" {
  name   = "launch-runs"
  role   = aws_iam_role.control.id
  policy = data.aws_iam_policy_document.launch_runs.json
}

# --- cluster, task definitions, services -------------------------------------------------------------------
resource "aws_ecs_cluster" "dagster" {
  name = local.cluster_name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  configuration {
    execute_command_configuration {
      kms_key_id = var.kms_key_arn
      logging    = "OVERRIDE"
      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.services.name
      }
    }
  }
}

# One task definition per Dagster process; the container is named after the key (the run
# container's name is DAGSTER_RUN_CONTAINER) and logs under that stream prefix. `container`
# holds the container-definition fields only that process has.
resource "aws_ecs_task_definition" "dagster" {
  for_each = local.task_definitions

  family                   = each.value.family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = each.value.cpu
  memory                   = each.value.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = each.value.task_role_arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  volume {
    name = "tmp"
  }
  volume {
    name = "dagster-storage"
  }

  container_definitions = jsonencode([merge({
    name                   = each.key
    image                  = local.image
    essential              = true
    readonlyRootFilesystem = true
    environment            = local.container_environment
    secrets                = local.container_secrets
    mountPoints            = local.scratch_mounts
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = each.value.log_group
        awslogs-region        = local.region
        awslogs-stream-prefix = each.key
      }
    }
  }, each.value.container)])
}

resource "aws_ecs_service" "webserver" {
  name                   = "${var.name_prefix}-dagster-webserver"
  cluster                = aws_ecs_cluster.dagster.id
  task_definition        = aws_ecs_task_definition.dagster["webserver"].arn
  desired_count          = 1
  launch_type            = "FARGATE"
  enable_execute_command = true
  propagate_tags         = "SERVICE"

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id, aws_security_group.webserver.id]
    assign_public_ip = false
  }
}

resource "aws_ecs_service" "daemon" {
  name            = "${var.name_prefix}-dagster-daemon"
  cluster         = aws_ecs_cluster.dagster.id
  task_definition = aws_ecs_task_definition.dagster["daemon"].arn
  # Exactly one daemon: two would evaluate every sensor twice.
  desired_count                      = 1
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
  launch_type                        = "FARGATE"
  propagate_tags                     = "SERVICE"

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }
}
