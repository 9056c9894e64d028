terraform {
  # 1.10+: S3 native state locking (use_lockfile); 1.9+: validation blocks that read other
  # variables (the visibility-timeout rule in modules/messaging).
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.90"
    }
  }

  # Remote state: an S3 bucket (versioned, encrypted) with S3 native locking. The values are
  # environment specific and given at init time (partial configuration):
  #
  #   terraform init -backend-config=environments/dev.s3.tfbackend
  #
  # environments/dev.s3.tfbackend holds bucket, key, region, encrypt and use_lockfile = true.
  # On Terraform < 1.10, or to keep an existing lock table, use dynamodb_table = "<table>"
  # instead of use_lockfile (see docs/deploy.md).
  backend "s3" {}
}
