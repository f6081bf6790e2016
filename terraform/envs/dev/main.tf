# The dev environment: project var.project_id (default lender-aiops-dev). Everything the bot
# needs is built by ../../modules/stack; this root holds only dev's own values, its backend and
# providers (versions.tf), the inputs that come from outside (variables.tf) and the stack's
# outputs (outputs.tf). A change to this file changes dev only.

locals {
  environment = "dev"

  # Data residency: where dev's data may live. Code, not a variable, so widening it is a reviewed
  # change; the stack refuses any region outside it. Keep it equal to allowed_regions in the bot's
  # config.
  allowed_regions = ["australia-southeast1", "australia-southeast2"]
  region          = "australia-southeast1"
}

module "stack" {
  # checkov:skip=CKV2_GCP_4:The audit bucket's retention lock is off in this non-prod environment (lock_audit_retention = false below) because a locked bucket, and through a lien its project, cannot be deleted for 7 years and no real audit data lands here; the 7-year retention itself still applies and prod locks it. Remove this skip when setting the lock to true.
  source = "../../modules/stack"

  environment     = local.environment
  project_id      = var.project_id
  region          = local.region
  allowed_regions = local.allowed_regions
  subnet_cidr     = "10.22.0.0/24"

  # Vertex AI endpoints by the slug the bot's config uses; the numeric id becomes vertex_id.
  endpoints = {
    "loan-assessor-dev" = {
      endpoint_id  = "3000000001"
      display_name = "Loan assessor (dev)"
      description  = "gemma-3-1b-it, development. Traffic split managed by aiops-bot."
    }
  }
  traffic_split_owner = var.traffic_split_owner
  traffic_split       = var.traffic_split
  p95_latency_ms      = 2000
  error_rate          = 0.01

  # Sizes and protection.
  cloudsql_tier              = "db-custom-1-3840"
  cloudsql_availability_type = "ZONAL"
  kms_protection_level       = "SOFTWARE"
  lock_audit_retention       = false # see the CKV2_GCP_4 skip above; true once real audit data lands
  database_password_version  = 1     # bump to rotate
  pii_key_version            = 1     # bump to rotate (plan it: old tokens stop matching)
  billing_export_dataset     = null

  # Money.
  billing_account      = var.billing_account
  budget_alert_amounts = [50, 100]
  budget_currency      = "USD"

  # People and delivery.
  github_environments  = ["dev"]
  github_owner         = var.github_owner
  github_repo          = var.github_repo
  notification_emails  = var.notification_emails
  audit_readers        = var.audit_readers
  managing_bot_members = var.managing_bot_members
  state_bucket         = var.state_bucket
  host_image_registry  = false # images come from prod's registry (image_reader_members)
}
