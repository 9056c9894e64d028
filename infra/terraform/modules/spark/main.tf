# The Spark engine in AWS (issue 11): the job entry point leanops_dagster/engines/spark/job.py
# and the job-only artifact (infra/scripts/package_spark_job.py: Glue's zip of wheels) in the
# warehouse bucket, a Glue 5.1 job or an EMR Serverless
# application that runs it, the job's role (the warehouse tables, the Glue databases, the
# Pipes prefix, the PII secret; nothing else), and the Dagster run role's right to start,
# watch and cancel exactly those job runs (dagster-aws PipesGlueClient /
# PipesEMRServerlessClient, leanops_dagster/engines/spark/launch.py). Which one exists is
# var.launcher, which is also LEANOPS_SPARK_LAUNCHER of the Dagster tasks.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  glue = var.launcher == "glue"
  emr  = var.launcher == "emr_serverless"
  aws  = local.glue || local.emr

  job_name     = "${var.name_prefix}-spark-engine"
  code_prefix  = "spark/"
  script_key   = "${local.code_prefix}job.py"
  wheel_key    = "${local.code_prefix}${basename(var.job_wheel_path)}"
  script_uri   = "s3://${var.warehouse_bucket_name}/${local.script_key}"
  wheel_uri    = "s3://${var.warehouse_bucket_name}/${local.wheel_key}"
  glue_job_arn = "arn:${local.partition}:glue:${local.region}:${local.account_id}:job/${local.job_name}"

  # What the job may touch in the warehouse bucket: the zones' tables, read the schemas and its
  # own code, read and write the Pipes prefix.
  table_objects = [for db in var.glue_database_names : "${var.warehouse_bucket_arn}/${db}.db/*"]
  read_objects  = ["${var.warehouse_bucket_arn}/schemas/*", "${var.warehouse_bucket_arn}/${local.code_prefix}*"]
  pipes_objects = "${var.warehouse_bucket_arn}/${var.pipes_prefix}*"

  glue_database_arns = [for db in var.glue_database_names : "arn:${local.partition}:glue:${local.region}:${local.account_id}:database/${db}"]
  glue_table_arns    = [for db in var.glue_database_names : "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${db}/*"]

  # Settings of the Dagster tasks (leanops_dagster/settings.py, LEANOPS_SPARK_* and the secret).
  settings_environment = merge(
    { LEANOPS_SPARK_LAUNCHER = var.launcher },
    local.aws ? {
      LEANOPS_SPARK_PIPES_BUCKET      = var.warehouse_bucket_name
      LEANOPS_SPARK_PIPES_PREFIX      = var.pipes_prefix
      LEANOPS_SPARK_JOB_SCRIPT        = local.script_uri
      LEANOPS_SPARK_JOB_WHEEL         = local.wheel_uri
      LEANOPS_PII_HASH_KEY_SECRET_ARN = var.pii_hash_key_secret_arn
    } : {},
    local.glue ? { LEANOPS_SPARK_GLUE_JOB_NAME = local.job_name } : {},
    local.emr ? {
      LEANOPS_SPARK_EMR_APPLICATION_ID = aws_emrserverless_application.spark[0].id
      LEANOPS_SPARK_EMR_JOB_ROLE_ARN   = aws_iam_role.job[0].arn
    } : {},
  )
}

# --- the job's code ------------------------------------------------------------------------------
resource "aws_s3_object" "job_script" {
  count = local.aws ? 1 : 0

  bucket                 = var.warehouse_bucket_name
  key                    = local.script_key
  source                 = var.job_script_path
  source_hash            = filemd5(var.job_script_path)
  kms_key_id             = var.kms_key_arn
  server_side_encryption = "aws:kms"
}

resource "aws_s3_object" "job_wheel" {
  count = local.aws ? 1 : 0

  bucket                 = var.warehouse_bucket_name
  key                    = local.wheel_key
  source                 = var.job_wheel_path
  source_hash            = filemd5(var.job_wheel_path)
  kms_key_id             = var.kms_key_arn
  server_side_encryption = "aws:kms"
}

# --- the job's role ----------------------------------------------------------------------------------
data "aws_iam_policy_document" "job_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = [local.emr ? "emr-serverless.amazonaws.com" : "glue.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "job" {
  count = local.aws ? 1 : 0

  name               = "${var.name_prefix}-spark-job"
  assume_role_policy = data.aws_iam_policy_document.job_assume.json
}

data "aws_iam_policy_document" "job" {
  statement {
    sid       = "WarehouseBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [var.warehouse_bucket_arn]
  }
  statement {
    sid       = "ZoneTables"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = local.table_objects
  }
  statement {
    sid       = "SchemasAndJobCode"
    actions   = ["s3:GetObject"]
    resources = local.read_objects
  }
  statement {
    sid       = "PipesContextAndMessages"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = [local.pipes_objects]
  }
  statement {
    sid = "GlueZones"
    actions = [
      "glue:GetDatabase",
      "glue:GetDatabases",
      "glue:GetTable",
      "glue:GetTables",
      "glue:CreateTable",
      "glue:UpdateTable",
    ]
    resources = concat(
      ["arn:${local.partition}:glue:${local.region}:${local.account_id}:catalog"],
      local.glue_database_arns,
      local.glue_table_arns,
    )
  }
  statement {
    sid       = "PiiKey"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.pii_hash_key_secret_arn]
  }
  statement {
    sid       = "DataKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
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
      ]
      resources = [var.s3tables_bucket_arn, "${var.s3tables_bucket_arn}/table/*"]
    }
  }
  dynamic "statement" {
    for_each = local.glue ? [1] : []
    content {
      sid       = "GlueJobLogs"
      actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:AssociateKmsKey"]
      resources = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws-glue/jobs/*"]
    }
  }
  dynamic "statement" {
    for_each = local.emr ? [1] : []
    content {
      sid       = "EmrImage"
      actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:DescribeImages"]
      resources = [aws_ecr_repository.emr[0].arn]
    }
  }
}

resource "aws_iam_role_policy" "job" {
  count = local.aws ? 1 : 0

  name   = "warehouse-glue-pipes"
  role   = aws_iam_role.job[0].id
  policy = data.aws_iam_policy_document.job.json
}

# --- Glue 5.1 (Spark 3.5.6, Iceberg 1.10.0, Python 3.11) -----------------------------------------------
# The job's continuous log (its driver's and executors' lines); Glue makes its own output and
# error groups under /aws-glue/jobs/ too.
resource "aws_cloudwatch_log_group" "glue" {
  count = local.glue ? 1 : 0

  name              = "/aws-glue/jobs/${local.job_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
}

resource "aws_glue_security_configuration" "spark" {
  count = local.glue ? 1 : 0

  name = local.job_name

  encryption_configuration {
    cloudwatch_encryption {
      cloudwatch_encryption_mode = "SSE-KMS"
      kms_key_arn                = var.kms_key_arn
    }
    job_bookmarks_encryption {
      job_bookmarks_encryption_mode = "CSE-KMS"
      kms_key_arn                   = var.kms_key_arn
    }
    s3_encryption {
      s3_encryption_mode = "SSE-KMS"
      kms_key_arn        = var.kms_key_arn
    }
  }
}

resource "aws_glue_job" "spark" {
  count = local.glue ? 1 : 0

  name                   = local.job_name
  description            = "Lean-Ops Spark engine: one Standardized or Curated run of one topic (Dagster Pipes)."
  role_arn               = aws_iam_role.job[0].arn
  glue_version           = "5.1"
  worker_type            = var.glue_worker_type
  number_of_workers      = var.glue_number_of_workers
  timeout                = var.job_timeout_minutes
  security_configuration = aws_glue_security_configuration.spark[0].name

  command {
    name            = "glueetl"
    script_location = local.script_uri
    python_version  = "3"
  }

  # Each run passes the same three again (launch.glue_job_run) plus the Pipes arguments. The
  # job's modules are Glue's "zip of wheels" (*.gluewheels.zip: the job wheel and the
  # dependencies Glue 5.1 does not ship), installed without a package index.
  default_arguments = {
    "--datalake-formats"                 = "iceberg"
    "--additional-python-modules"        = local.wheel_uri
    "--python-modules-installer-option"  = "--no-index"
    "--job-language"                     = "python"
    "--enable-metrics"                   = "true"
    "--enable-continuous-cloudwatch-log" = "true"
    "--continuous-log-logGroup"          = aws_cloudwatch_log_group.glue[0].name
  }

  execution_property {
    max_concurrent_runs = var.max_concurrent_runs
  }

  depends_on = [aws_s3_object.job_script, aws_s3_object.job_wheel]
}

# --- EMR Serverless (emr-7.12.0: Spark 3.5.6, Iceberg 1.10.0) ------------------------------------------
resource "aws_ecr_repository" "emr" {
  count = local.emr ? 1 : 0

  name                 = "${var.name_prefix}-spark-emr"
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }
}

data "aws_iam_policy_document" "emr_pulls_the_image" {
  statement {
    sid     = "EmrServerlessPullsTheJobImage"
    actions = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:DescribeImages"]
    principals {
      type        = "Service"
      identifiers = ["emr-serverless.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_ecr_repository_policy" "emr" {
  count = local.emr ? 1 : 0

  repository = aws_ecr_repository.emr[0].name
  policy     = data.aws_iam_policy_document.emr_pulls_the_image.json
}

resource "aws_emrserverless_application" "spark" {
  count = local.emr ? 1 : 0

  name          = local.job_name
  release_label = var.emr_release_label
  type          = "spark"

  image_configuration {
    image_uri = "${aws_ecr_repository.emr[0].repository_url}:${var.emr_image_tag}"
  }

  maximum_capacity {
    cpu    = "${var.emr_maximum_vcpu} vCPU"
    memory = "${var.emr_maximum_vcpu * 4} GB"
  }

  auto_start_configuration {
    enabled = true
  }

  auto_stop_configuration {
    enabled              = true
    idle_timeout_minutes = 15
  }

  depends_on = [aws_ecr_repository_policy.emr]
}

# --- the Dagster run role: start, watch and cancel exactly these job runs -----------------------------
data "aws_iam_policy_document" "launch" {
  count = local.aws ? 1 : 0

  dynamic "statement" {
    for_each = local.glue ? [1] : []
    content {
      sid       = "RunTheGlueJob"
      actions   = ["glue:StartJobRun", "glue:GetJobRun", "glue:BatchStopJobRun"]
      resources = [local.glue_job_arn]
    }
  }
  dynamic "statement" {
    for_each = local.emr ? [1] : []
    content {
      sid = "RunOnTheEmrServerlessApplication"
      # GetApplication and GetDashboardForJobRun: the Pipes client reads them while it waits.
      actions = [
        "emr-serverless:StartJobRun",
        "emr-serverless:GetJobRun",
        "emr-serverless:CancelJobRun",
        "emr-serverless:GetDashboardForJobRun",
        "emr-serverless:GetApplication",
        "emr-serverless:TagResource",
      ]
      resources = [
        aws_emrserverless_application.spark[0].arn,
        "${aws_emrserverless_application.spark[0].arn}/jobruns/*",
      ]
    }
  }
  statement {
    sid       = "PassTheJobRoleOnly"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.job[0].arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = [local.emr ? "emr-serverless.amazonaws.com" : "glue.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "dagster_run_launches_jobs" {
  count = local.aws ? 1 : 0

  name   = "launch-spark-jobs"
  role   = var.dagster_run_role_name
  policy = data.aws_iam_policy_document.launch[0].json
}
