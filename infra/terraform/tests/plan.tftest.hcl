# terraform test: plans the whole root module against a mocked AWS provider (no credentials, no
# network). Run from infra/terraform after `terraform init -backend=false` and after building the
# Lambda zip (infra/scripts/package_lambdas.py); tests/infra/test_infra_terraform.py runs it.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
    }
  }
  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }
  mock_data "aws_region" {
    defaults = {
      name = "us-east-1"
    }
  }
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }
}

variables {
  environment        = "dev"
  topics             = ["events", "sensor_readings"]
  vpc_id             = "vpc-0123456789abcdef0"
  private_subnet_ids = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
  dagster_image_tag  = "test"
}

run "dev_names_match_leanops_dagster_constants" {
  command = plan

  assert {
    condition     = module.messaging.queue_names["events"] == "lean-ops-dev-events-queue"
    error_message = "queue name differs from leanops_dagster.constants.queue_name"
  }
  assert {
    condition     = module.messaging.dlq_name == "lean-ops-dev-dlq"
    error_message = "DLQ name differs from leanops_dagster.constants.dlq_name"
  }
  assert {
    condition     = module.ingestion.stream_name == "lean-ops-dev-raw-firehose"
    error_message = "stream name differs from leanops_dagster.constants.firehose_stream_name"
  }
  assert {
    condition     = module.catalog.archive_bucket_name == "lean-ops-dev-dlq-archive"
    error_message = "archive bucket differs from Settings.archive_bucket_name"
  }
  assert {
    condition     = module.catalog.database_names["raw"] == "lean_ops_dev_raw"
    error_message = "RAW database differs from leanops_dagster.constants.glue_database_name"
  }
  assert {
    condition     = strcontains(module.ingestion.routing_query, "\"lean_ops_dev_raw\"")
    error_message = "the routing JQ does not name the RAW database"
  }
}

run "visibility_below_six_lambda_timeouts_is_refused" {
  command = plan

  variables {
    sqs_visibility_timeout_seconds = 120
    sqs_processor_timeout_seconds  = 30
  }

  expect_failures = [
    var.sqs_visibility_timeout_seconds,
  ]
}

run "messaging_module_refuses_it_on_its_own" {
  command = plan

  module {
    source = "./modules/messaging"
  }

  variables {
    name_prefix                = "lean-ops-dev"
    topics                     = ["events"]
    visibility_timeout_seconds = 179
    lambda_timeout_seconds     = 30
  }

  expect_failures = [
    var.visibility_timeout_seconds,
  ]
}

run "messaging_module_accepts_the_seeds_numbers" {
  command = plan

  module {
    source = "./modules/messaging"
  }

  variables {
    name_prefix                = "lean-ops-dev"
    topics                     = ["events"]
    visibility_timeout_seconds = 300
    lambda_timeout_seconds     = 30
  }

  assert {
    condition     = aws_sqs_queue.topic["events"].visibility_timeout_seconds == 300
    error_message = "visibility timeout not applied"
  }
}

run "operations_alarms_dashboard_and_dagster_alert_settings" {
  command = plan

  assert {
    condition     = contains(module.observability.alarm_names, "lean-ops-dev-schema-drift")
    error_message = "no schema-drift alarm"
  }
  assert {
    condition = length(setintersection(toset(module.observability.alarm_names), toset([
      "lean-ops-dev-dlq-oldest-message", "lean-ops-dev-dlq-not-empty",
      "lean-ops-dev-sqs-processor-error-rate", "lean-ops-dev-firehose-delivery-failures",
    ]))) == 4
    error_message = "an alarm of seed 003 section 7 is missing"
  }
  assert {
    condition = module.observability.dashboard_widget_titles == [
      "Ingestion throughput: SQS messages sent per topic (per minute)",
      "Ingestion throughput: Firehose rows to Iceberg (per minute)",
      "DLQ status: messages visible and oldest message age",
      "Pipeline health: Dagster runs, sqs_processor errors, new drift columns",
      "Curated freshness: lag behind the oldest unconsumed data, per topic (s)",
      "Alarms",
      "Sensor and schedule ticks: the longest per minute (s), every instigator",
    ]
    error_message = "the dashboard lost a panel of seed 003 section 7"
  }
  assert {
    condition     = module.observability.dashboard_name == "lean-ops-dev"
    error_message = "dashboard name"
  }
  assert {
    condition     = module.orchestration.leanops_environment["LEANOPS_CLOUDWATCH_METRICS"] == "true"
    error_message = "the Dagster tasks do not publish their metrics"
  }
  assert {
    condition     = module.orchestration.leanops_environment["LEANOPS_FRESHNESS_MINUTES"] == "60"
    error_message = "the freshness target does not reach the Dagster tasks"
  }
  assert {
    condition     = !contains(module.orchestration.task_environment_names, "LEANOPS_SNOWFLAKE_ACCOUNT")
    error_message = "Snowflake is configured although the snowflake variable is null"
  }
}

run "snowflake_refresh_is_configured_only_when_asked" {
  command = plan

  variables {
    snowflake = {
      account          = "myorg-analytics"
      database         = "ANALYTICS"
      schema           = "LEAN_OPS"
      token_secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:lean-ops-dev/snowflake-AbCdEf"
    }
  }

  assert {
    condition = length(setintersection(toset(module.orchestration.task_environment_names), toset([
      "LEANOPS_SNOWFLAKE_ACCOUNT", "LEANOPS_SNOWFLAKE_DATABASE", "LEANOPS_SNOWFLAKE_SCHEMA",
    ]))) == 3
    error_message = "the Snowflake settings do not reach the Dagster tasks"
  }
  assert {
    condition     = !contains(module.orchestration.task_environment_names, "LEANOPS_SNOWFLAKE_TOKEN") && !contains(module.orchestration.task_environment_names, "LEANOPS_SNOWFLAKE_WAREHOUSE")
    error_message = "the token must be a secret, and unset optional settings must stay unset"
  }
}

run "spark_engine_on_glue" {
  command = plan

  variables {
    spark_launcher = "glue"
  }

  assert {
    condition     = module.spark.glue_job_name == "lean-ops-dev-spark-engine" && module.spark.emr_application_id == null
    error_message = "the glue launcher must create the Glue job, and only it"
  }
  assert {
    condition     = module.spark.settings_environment["LEANOPS_SPARK_GLUE_JOB_NAME"] == "lean-ops-dev-spark-engine" && module.orchestration.leanops_environment["LEANOPS_ENVIRONMENT"] == "dev"
    error_message = "the Dagster tasks do not get the Glue job's name"
  }
  assert {
    condition = length(setintersection(toset(module.orchestration.task_environment_names), toset([
      "LEANOPS_SPARK_LAUNCHER", "LEANOPS_SPARK_GLUE_JOB_NAME", "LEANOPS_SPARK_PIPES_BUCKET",
      "LEANOPS_SPARK_PIPES_PREFIX", "LEANOPS_SPARK_JOB_WHEEL", "LEANOPS_PII_HASH_KEY_SECRET_ARN",
    ]))) == 6
    error_message = "the Spark launcher settings do not reach the Dagster tasks"
  }
  assert {
    condition     = module.spark.settings_environment["LEANOPS_SPARK_JOB_WHEEL"] == "s3://lean-ops-dev-warehouse/spark/leanops_dagster_spark_job-0.1.0.gluewheels.zip"
    error_message = "the zip of wheels keeps its file name (Glue recognises the .gluewheels.zip suffix)"
  }
  assert {
    condition     = module.spark.glue_job_default_arguments["--additional-python-modules"] == "s3://lean-ops-dev-warehouse/spark/leanops_dagster_spark_job-0.1.0.gluewheels.zip" && module.spark.glue_job_default_arguments["--python-modules-installer-option"] == "--no-index"
    error_message = "a Glue run must install the job's zip of wheels without a package index"
  }
}

run "spark_engine_on_emr_serverless" {
  command = plan

  variables {
    spark_launcher      = "emr_serverless"
    spark_emr_image_tag = "abc1234"
  }

  assert {
    condition     = module.spark.glue_job_name == null && module.spark.settings_environment["LEANOPS_SPARK_LAUNCHER"] == "emr_serverless"
    error_message = "the emr_serverless launcher must not create the Glue job"
  }
  assert {
    condition = length(setintersection(toset(module.orchestration.task_environment_names), toset([
      "LEANOPS_SPARK_EMR_APPLICATION_ID", "LEANOPS_SPARK_EMR_JOB_ROLE_ARN", "LEANOPS_SPARK_JOB_SCRIPT",
    ]))) == 3
    error_message = "the EMR Serverless settings do not reach the Dagster tasks"
  }
}

run "spark_engine_stays_local_by_default" {
  command = plan

  assert {
    condition     = module.spark.settings_environment == { LEANOPS_SPARK_LAUNCHER = "session" } && module.spark.job_role_arn == null
    error_message = "the default (session) launcher creates nothing in AWS"
  }
}

# --- sharing the tables with other writers (sharing.tf) -----------------------------------------
run "glue_optimizers_on_the_zones_asked_with_exact_settings" {
  command = plan

  variables {
    glue_table_optimizers = {
      compaction           = ["raw"]
      retention            = ["raw", "standardized"]
      orphan_file_deletion = ["curated"]
    }
  }

  assert {
    condition     = length(module.table_maintenance.table_optimizers) == 3 + 6 + 4
    error_message = "compaction on 3 RAW tables, retention on 3 RAW + 3 Standardized, orphan deletion on 4 Curated tables expected"
  }
  assert {
    condition     = contains(module.table_maintenance.table_optimizers, "raw/events_staging/compaction") && contains(module.table_maintenance.table_optimizers, "raw/sensor_readings_staging/compaction")
    error_message = "RAW compaction must cover <topic>_staging"
  }
  assert {
    condition     = one(one(module.table_maintenance.optimizer_configurations["standardized/events/retention"].retention_configuration).iceberg_configuration).snapshot_retention_period_in_days * 24 >= var.max_consumer_lag_hours
    error_message = "retention shorter than the consumers' lag"
  }
  assert {
    condition     = one(one(module.table_maintenance.optimizer_configurations["curated/events/orphan_file_deletion"].orphan_file_deletion_configuration).iceberg_configuration).location == "s3://lean-ops-dev-warehouse/lean_ops_dev_curated.db/events/data"
    error_message = "orphan-file deletion must look under <table>/data only"
  }
}

run "glue_retention_shorter_than_the_lag_is_refused" {
  command = plan

  variables {
    max_consumer_lag_hours = 240
    glue_table_optimizers = {
      retention               = ["raw"]
      snapshot_retention_days = 5
    }
  }

  expect_failures = [var.glue_table_optimizers]
}

run "orphan_threshold_below_two_runs_is_refused" {
  command = plan

  variables {
    longest_run_hours = 48
    glue_table_optimizers = {
      orphan_file_deletion       = ["raw"]
      orphan_file_retention_days = 3
    }
  }

  expect_failures = [var.glue_table_optimizers]
}

run "s3_tables_as_the_catalog" {
  command = plan

  variables {
    s3_tables = {
      use_as_catalog = true
    }
  }

  assert {
    condition     = module.orchestration.leanops_environment["LEANOPS_CATALOG_TYPE"] == "s3tables"
    error_message = "Dagster tasks must use the s3tables catalog"
  }
  assert {
    condition     = module.orchestration.leanops_environment["LEANOPS_WAREHOUSE"] == "arn:aws:s3tables:us-east-1:123456789012:bucket/lean-ops-dev-tables"
    error_message = "the warehouse must be the table bucket ARN"
  }
  assert {
    condition     = module.s3tables[0].namespaces["curated"] == "lean_ops_dev_curated"
    error_message = "the namespaces must be the Glue database names (Settings.namespace_prefix)"
  }
}

run "s3_tables_snapshot_age_below_the_lag_is_refused" {
  command = plan

  variables {
    s3_tables = {
      max_snapshot_age_hours = 24
    }
  }

  expect_failures = [var.s3_tables]
}

run "no_optimizer_and_no_table_bucket_by_default" {
  command = plan

  assert {
    condition     = length(module.table_maintenance.table_optimizers) == 0 && module.table_maintenance.role_arn == null && length(module.s3tables) == 0
    error_message = "optimizers and S3 Tables are opt-in"
  }
  assert {
    condition     = module.orchestration.leanops_environment["LEANOPS_CATALOG_TYPE"] == "glue"
    error_message = "Glue stays the default catalog"
  }
}
