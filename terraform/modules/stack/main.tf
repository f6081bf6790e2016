# aiops-bot: everything the bot needs in one environment's Google Cloud project.
#
# Each environment root (envs/dev, envs/staging, envs/prod) calls this module once, as
# module "stack", with that environment's values; what the roots share lives here only.
# Every regional resource takes var.region, which variables.tf validates against
# var.allowed_regions, a list each root writes in code (data residency).

locals {
  labels = {
    app         = "aiops-bot"
    environment = var.environment
    managed-by  = "terraform"
  }

  # Roles the stack grants at project level (besides the deployer's own): the only ones the CI
  # deployer's conditional project-IAM-admin binding may touch.
  bot_project_roles = [
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/cloudsql.client",
    "roles/cloudsql.instanceUser",
    "roles/bigquery.jobUser",
  ]
}

module "project_services" {
  source = "../project_services"

  project_id = var.project_id
  services = toset([
    "aiplatform.googleapis.com",
    "appengine.googleapis.com",
    "appengineflex.googleapis.com",
    "artifactregistry.googleapis.com",
    "billingbudgets.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudkms.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "compute.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "serviceusage.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
    "sts.googleapis.com",
  ])
}

# ---------------------------------------------------------------- encryption keys (CMEK)
module "kms" {
  source = "../kms"

  project_id       = var.project_id
  region           = var.region
  protection_level = var.kms_protection_level
  labels           = local.labels
  keys = {
    cloudsql  = { agent = "serviceAccount:${module.project_services.service_agents.cloudsql}" }
    secrets   = { agent = "serviceAccount:${module.project_services.service_agents.secretmanager}" }
    vertex    = { agent = "serviceAccount:${module.project_services.service_agents.aiplatform}" }
    storage   = { agent = "serviceAccount:${module.project_services.service_agents.storage}" }
    artifacts = { agent = "serviceAccount:${module.project_services.service_agents.artifactregistry}" }
  }
}

# ---------------------------------------------------------------- network
module "network" {
  source = "../network"

  project_id  = var.project_id
  region      = var.region
  subnet_cidr = var.subnet_cidr

  depends_on = [module.project_services]
}

# ---------------------------------------------------------------- App Engine (flexible) app
# One per project; its region can never change after creation.
resource "google_app_engine_application" "this" {
  project     = var.project_id
  location_id = var.region

  feature_settings {
    split_health_checks = true # app.yaml's liveness_check / readiness_check
  }

  depends_on = [module.project_services]
}

# ---------------------------------------------------------------- identities
module "bot_service_account" {
  source = "../bot_service_account"

  project_id             = var.project_id
  managing_bot_members   = var.managing_bot_members
  billing_export_dataset = var.billing_export_dataset

  depends_on = [module.project_services]
}

module "ci_service_account" {
  source = "../ci_service_account"

  project_id             = var.project_id
  github_owner           = var.github_owner
  github_repo            = var.github_repo
  github_environments    = var.github_environments
  extra_subjects         = var.host_image_registry ? ["repo:${var.github_owner}/${var.github_repo}:ref:refs/heads/main"] : []
  bot_service_account_id = module.bot_service_account.id
  state_bucket           = var.state_bucket
  extra_roles            = var.host_image_registry ? ["roles/artifactregistry.admin"] : []
  grantable_roles        = concat(local.bot_project_roles, [module.bot_service_account.custom_role_id])

  depends_on = [module.project_services]
}

# ---------------------------------------------------------------- secrets
module "secrets" {
  source = "../secrets"

  project_id   = var.project_id
  region       = var.region
  kms_key_name = module.kms.key_ids["secrets"]
  labels       = local.labels
  secrets = {
    "aiops-slack-bot-token"       = "Slack bot token (xoxb-...): Slack app > OAuth & Permissions. Added by a person, never by Terraform."
    "aiops-slack-signing-secret"  = "Slack signing secret: Slack app > Basic Information. Added by a person, never by Terraform."
    "aiops-slack-app-token"       = "Slack app-level token (xapp-...) for Socket Mode only; unused on App Engine (HTTP mode)."
    "aiops-pii-key"               = "HMAC key for PII tokens. Generated write-only by Terraform; rotate with pii_key_version."
    "aiops-database-url"          = "DATABASE_URL of the bot's Cloud SQL database: its IAM login, no password (AIOPS_DB_IAM_AUTH=1). Written by Terraform."
    "aiops-database-owner-url"    = "DSN of the migration owner (aiops_owner). Written write-only by Terraform; read only by the migration job's identity."
    "aiops-alert-webhook-token"   = "Password of Cloud Monitoring's webhook channel to the bot (HTTP Basic, user cloud-monitoring): AIOPS_ALERT_WEBHOOK_TOKEN. Generated write-only by Terraform; rotate with alert_webhook_token_version, then redeploy the bot."
    "aiops-pagerduty-routing-key" = "PagerDuty Events API v2 routing key of this environment's PagerDuty service (PAGERDUTY_ROUTING_KEY_<ENV>). Added by a person from PagerDuty, never by Terraform."
  }
  accessors = {
    bot = module.bot_service_account.member
  }
  not_for_accessors = ["aiops-database-owner-url"]
  generated = {
    "aiops-pii-key"             = var.pii_key_version
    "aiops-alert-webhook-token" = var.alert_webhook_token_version
  }
}

# ---------------------------------------------------------------- Cloud SQL (audit store)
module "cloud_sql" {
  source = "../cloud_sql"

  project_id                    = var.project_id
  region                        = var.region
  allowed_regions               = var.allowed_regions
  network_id                    = module.network.network_id
  kms_key_name                  = module.kms.key_ids["cloudsql"]
  tier                          = var.cloudsql_tier
  availability_type             = var.cloudsql_availability_type
  password_version              = var.database_password_version
  database_url_secret_id        = module.secrets.secret_ids["aiops-database-url"]
  owner_database_url_secret_id  = module.secrets.secret_ids["aiops-database-owner-url"]
  runtime_service_account_email = module.bot_service_account.email
  labels                        = local.labels

  depends_on = [module.network]
}

# `aiops-bot db upgrade`, run by the pipeline inside the VPC before each release takes traffic.
module "db_migration_job" {
  source = "../db_migration_job"

  project_id                   = var.project_id
  region                       = var.region
  network_id                   = module.network.network_id
  subnetwork_id                = module.network.subnetwork_id
  owner_database_url_secret_id = module.secrets.secret_ids["aiops-database-owner-url"]
  runtime_role                 = module.cloud_sql.user_name
  deployer_member              = "serviceAccount:${module.ci_service_account.email}"
  labels                       = local.labels

  depends_on = [module.cloud_sql]
}

# ---------------------------------------------------------------- Vertex AI endpoints
module "endpoint" {
  source   = "../vertex_endpoint"
  for_each = var.endpoints

  project_id          = var.project_id
  region              = var.region
  allowed_regions     = var.allowed_regions
  endpoint_id         = each.value.endpoint_id
  display_name        = each.value.display_name
  description         = each.value.description
  kms_key_name        = module.kms.key_ids["vertex"]
  labels              = merge(local.labels, { endpoint = each.key })
  traffic_split_owner = var.traffic_split_owner
  traffic_split       = lookup(var.traffic_split, each.key, {})

  depends_on = [module.project_services]
}

# ---------------------------------------------------------------- monitoring and cost
module "monitoring" {
  source = "../monitoring"

  project_id          = var.project_id
  environment         = var.environment
  endpoints           = { for slug, ep in var.endpoints : slug => ep.endpoint_id }
  p95_latency_ms      = var.p95_latency_ms
  error_rate          = var.error_rate
  notification_emails = var.notification_emails
  bot_host            = google_app_engine_application.this.default_hostname
  labels              = local.labels

  # Cloud Monitoring -> the bot: each endpoint alert is posted to Slack with its buttons.
  bot_webhook = {
    url           = "https://${google_app_engine_application.this.default_hostname}/alerts/cloud-monitoring"
    token_secret  = module.secrets.secret_ids["aiops-alert-webhook-token"]
    token_version = module.secrets.generated_versions["aiops-alert-webhook-token"]
    rotation      = var.alert_webhook_token_version
  }

  depends_on = [module.project_services]
}

module "budget" {
  source = "../budget"

  billing_account       = var.billing_account
  project_id            = var.project_id
  project_number        = module.project_services.project_number
  environment           = var.environment
  alert_amounts         = var.budget_alert_amounts
  currency_code         = var.budget_currency
  notification_channels = slice(module.monitoring.notification_channels, 0, min(5, length(module.monitoring.notification_channels)))

  depends_on = [module.project_services]
}

# ---------------------------------------------------------------- 7-year audit log
module "audit_log_sink" {
  source = "../audit_log_sink"

  project_id            = var.project_id
  region                = var.region
  bucket_name           = "${var.project_id}-aiops-audit"
  kms_key_name          = module.kms.key_ids["storage"]
  lock_retention_policy = var.lock_audit_retention
  readers               = var.audit_readers
  labels                = local.labels

  depends_on = [module.project_services]
}

# ---------------------------------------------------------------- container registry
# One registry for all environments, hosted where var.host_image_registry is true (prod).
module "artifact_registry" {
  source = "../artifact_registry"
  count  = var.host_image_registry ? 1 : 0

  project_id                  = var.project_id
  region                      = var.region
  kms_key_name                = module.kms.key_ids["artifacts"]
  github_repository           = "${var.github_owner}/${var.github_repo}"
  workload_identity_pool_name = module.ci_service_account.pool_name
  labels                      = local.labels
  readers                     = merge(local.image_readers, var.image_readers)
}

locals {
  # Identities that pull the image to run this environment's bot: its runtime service account,
  # the App Engine flexible and Cloud Run (migration job) service agents, and its deployer.
  # Other environments pass theirs in var.image_readers of the root that hosts the registry
  # (their output image_reader_members).
  image_readers = {
    "${var.environment}_bot"       = module.bot_service_account.member
    "${var.environment}_appengine" = "serviceAccount:service-${module.project_services.project_number}@gae-api-prod.google.com.iam.gserviceaccount.com"
    "${var.environment}_cloudrun"  = "serviceAccount:service-${module.project_services.project_number}@serverless-robot-prod.iam.gserviceaccount.com"
    "${var.environment}_deployer"  = "serviceAccount:${module.ci_service_account.email}"
  }
}
