# Sharing the tables with other writers (issue 18, docs/operations.md): the Glue Data Catalog
# table optimizers on the project's tables, and Amazon S3 Tables as the catalog and warehouse,
# each with maintenance settings that keep the platform exact (the validations of
# glue_table_optimizers and s3_tables in variables.tf; tests/infra/test_infra_sharing.py).

module "table_maintenance" {
  source = "./modules/table_maintenance"

  name_prefix           = local.name_prefix
  topics                = var.topics
  database_names        = module.catalog.database_names
  raw_table_names       = module.catalog.raw_table_names
  dlq_errors_table_name = module.catalog.dlq_errors_table_name
  warehouse_bucket_name = module.catalog.warehouse_bucket_name
  warehouse_bucket_arn  = module.catalog.warehouse_bucket_arn
  kms_key_arn           = aws_kms_key.main.arn
  optimizers            = var.glue_table_optimizers
}

module "s3tables" {
  source = "./modules/s3tables"
  count  = var.s3_tables == null ? 0 : 1

  name_prefix = local.name_prefix
  topics      = var.topics
  namespaces  = module.catalog.database_names
  kms_key_arn = aws_kms_key.main.arn
  settings    = var.s3_tables
}

locals {
  s3tables_bucket_name = "${local.name_prefix}-tables"
  s3tables_bucket_arn  = "arn:${local.partition}:s3tables:${local.region}:${local.account_id}:bucket/${local.s3tables_bucket_name}"
  # The catalog of Dagster and the Spark job (Settings.catalog_type / warehouse): Glue, or the
  # table bucket through the S3 Tables Iceberg REST endpoint.
  s3tables_catalog = try(var.s3_tables.use_as_catalog, false)
  catalog_environment = local.s3tables_catalog ? {
    LEANOPS_CATALOG_TYPE = "s3tables"
    LEANOPS_WAREHOUSE    = local.s3tables_bucket_arn
  } : {}
}

# The platform creates its tables (pyiceberg); Terraform adopts them to set their maintenance.
# Import ID: <table bucket ARN>;<namespace>;<table>.
import {
  for_each = try(module.s3tables[0].adopted_tables, {})
  to       = module.s3tables[0].aws_s3tables_table.adopted[each.key]
  id       = "${local.s3tables_bucket_arn};${each.value.namespace};${each.value.name}"
}
