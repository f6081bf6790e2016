# The prod environment: project var.project_id (default lender-aiops-prod). Everything the bot
# needs is built by ../../modules/stack; this root holds only prod's own values, its backend and
# providers (versions.tf), the inputs that come from outside (variables.tf) and the stack's
# outputs (outputs.tf). A change to this file changes prod only.

locals {
  environment = "prod"

  # Data residency: where prod's data may live. Code, not a variable, so widening it is a reviewed
  # change; the stack refuses any region outside it. Keep it equal to allowed_regions in the bot's
  # config.
  allowed_regions = ["australia-southeast1"]
  region          = "australia-southeast1"
}

module "stack" {
  source = "../../modules/stack"

  environment     = local.environment
  project_id      = var.project_id
  region          = local.region
  allowed_regions = local.allowed_regions
  subnet_cidr     = "10.20.0.0/24"

  # Vertex AI endpoints by the slug the bot's config uses; the numeric id becomes vertex_id.
  endpoints = {
    "loan-assessor" = {
      endpoint_id  = "1000000001"
      display_name = "Loan assessor (production)"
      description  = "gemma-3-1b-it serving loan assessments. Traffic split managed by aiops-bot."
    }
  }
  traffic_split_owner = var.traffic_split_owner
  traffic_split       = var.traffic_split
  p95_latency_ms      = 2000
  error_rate          = 0.01

  # Sizes and protection.
  cloudsql_tier              = "db-custom-1-3840"
  cloudsql_availability_type = "REGIONAL"
  kms_protection_level       = "HSM"
  lock_audit_retention       = true # irreversible: a locked bucket (and its project) cannot be deleted for 7 years
  database_password_version  = 1    # bump to rotate
  pii_key_version            = 1    # bump to rotate (plan it: old tokens stop matching)
  billing_export_dataset     = null

  # Money.
  billing_account      = var.billing_account
  budget_alert_amounts = [50, 100]
  budget_currency      = "USD"

  # People and delivery.
  # production-canary: the 10 % canary; production (required reviewers): the promotion
  github_environments  = ["production-canary", "production"]
  github_owner         = var.github_owner
  github_repo          = var.github_repo
  notification_emails  = var.notification_emails
  audit_readers        = var.audit_readers
  managing_bot_members = var.managing_bot_members
  state_bucket         = var.state_bucket
  host_image_registry  = true              # the one image registry lives in prod
  image_readers        = var.image_readers # other environments' image_reader_members output
}
