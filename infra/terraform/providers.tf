provider "aws" {
  region = var.aws_region

  # Tags everywhere: every taggable resource of every module inherits these.
  default_tags {
    tags = merge(
      {
        Project     = local.project
        Environment = var.environment
        ManagedBy   = "terraform"
        Repository  = "lean-ops-dagster"
      },
      var.extra_tags,
    )
  }
}
