# terraform plan -var-file=environments/dev.tfvars   (after init with dev.s3.tfbackend)
environment = "dev"
aws_region  = "us-east-1"

topics = ["events", "sensor_readings"]

# The seeds' numbers: visibility 300 s >= 6 x Lambda timeout 30 s (checked by modules/messaging).
sqs_visibility_timeout_seconds     = 300
sqs_processor_timeout_seconds      = 30
sqs_batch_size                     = 100
sqs_batching_window_seconds        = 5
sqs_maximum_concurrency            = 5
sqs_processor_reserved_concurrency = 20

firehose_buffering_size_mb          = 64
firehose_buffering_interval_seconds = 60

lambda_log_retention_days = 30
force_destroy_buckets     = true

# Your network: a VPC with private subnets in two AZs and a NAT gateway (or VPC endpoints).
vpc_id                  = "vpc-0123456789abcdef0"
private_subnet_ids      = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
webserver_ingress_cidrs = []

dagster_image_tag      = "0.1.0"
db_instance_class      = "db.t4g.micro"
db_multi_az            = false
db_deletion_protection = false

alarm_email_endpoints = []

# Glue table optimizers: compaction of Firehose's small files in RAW (docs/operations.md,
# "Sharing the tables with other writers"). Add "standardized" and "curated", retention and
# orphan_file_deletion once the topics have run; the validations keep retention >= the
# consumers' lag and the orphan threshold well above the longest run.
glue_table_optimizers = {
  compaction = ["raw"]
}
