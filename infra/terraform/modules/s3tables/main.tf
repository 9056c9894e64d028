# Amazon S3 Tables as the platform's catalog and warehouse (issue 18): a table bucket, one
# namespace per zone (the Glue database names, so Settings.namespace_prefix is unchanged), the
# bucket's unreferenced-file removal, and the per-table maintenance of the project's tables.
#
# Dagster and the Spark engine reach it through the Iceberg REST endpoint of S3 Tables
# (Settings.catalog_type = "s3tables", LEANOPS_WAREHOUSE = the bucket ARN) when
# use_as_catalog is set. S3 Tables maintains every table by default (compaction; snapshot
# management keeping 1 snapshot for 120 hours; unreferenced files removed after 3 + 10 days);
# the values here keep the platform exact:
#
# - snapshot management never expires a snapshot younger than the root's max_consumer_lag_hours
#   (a root validation). S3 Tables reads neither the history.expire.* table properties nor
#   Iceberg ref retention for this; a table whose history.expire.max-snapshot-age-ms is longer
#   than max_snapshot_age_hours is not expired by S3 at all (AWS: "Considerations for snapshot
#   management"), which is exact but keeps every snapshot: keep the two equal or this longer;
# - unreferenced-file removal marks a file only after unreferenced_days (>= 2 x the longest
#   run, a root validation), so files a run has written but not committed yet are kept;
# - compaction commits `replace` snapshots, which the platform does not read as new data.
#
# Per-table maintenance is set on tables the platform created (its first run of a topic): the
# zones in adopt_zones are imported into Terraform (the root's import blocks) and keep
# prevent_destroy, since destroying an aws_s3tables_table deletes the table and its data.

locals {
  zones = ["raw", "standardized", "curated"]

  # Zone -> the project's tables (leanops_dagster/constants.py names), as in table_maintenance.
  zone_tables = {
    raw          = concat([for t in var.topics : "${t}_staging"], ["dlq_errors"])
    standardized = concat(var.topics, ["parse_errors"])
    curated      = concat(var.topics, ["errors", "drift_log"])
  }
  adopted = merge([
    for zone in var.settings.adopt_zones : {
      for table in local.zone_tables[zone] : "${zone}/${table}" => {
        namespace = var.namespaces[zone]
        name      = table
      }
    }
  ]...)
}

resource "aws_s3tables_table_bucket" "this" {
  name = "${var.name_prefix}-tables"

  encryption_configuration = {
    sse_algorithm = "aws:kms"
    kms_key_arn   = var.kms_key_arn
  }

  maintenance_configuration = {
    iceberg_unreferenced_file_removal = {
      status = "enabled"
      settings = {
        unreferenced_days = var.settings.unreferenced_days
        non_current_days  = var.settings.noncurrent_days
      }
    }
  }
}

resource "aws_s3tables_namespace" "zone" {
  for_each = toset(local.zones)

  namespace        = var.namespaces[each.key]
  table_bucket_arn = aws_s3tables_table_bucket.this.arn
}

resource "aws_s3tables_table" "adopted" {
  for_each = local.adopted

  table_bucket_arn = aws_s3tables_table_bucket.this.arn
  namespace        = each.value.namespace
  name             = each.value.name
  format           = "ICEBERG"

  maintenance_configuration = {
    iceberg_snapshot_management = {
      status = "enabled"
      settings = {
        max_snapshot_age_hours = var.settings.max_snapshot_age_hours
        min_snapshots_to_keep  = var.settings.min_snapshots_to_keep
      }
    }
    iceberg_compaction = {
      status = var.settings.compaction ? "enabled" : "disabled"
      settings = {
        target_file_size_mb = var.settings.compaction_target_file_size_mb
      }
    }
  }

  lifecycle {
    # the platform created the table (pyiceberg) and owns its schema and encryption
    prevent_destroy = true
    ignore_changes  = [encryption_configuration]
  }

  depends_on = [aws_s3tables_namespace.zone]
}
