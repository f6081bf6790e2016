# What the bot's config, app.yaml deployment and the GitHub repository settings need. Every root
# passes each of these through under the same name (envs/*/outputs.tf).

output "project_id" {
  description = "[environments.<env>] project in the bot's config."
  value       = var.project_id
}

output "region" {
  description = "[environments.<env>] region in the bot's config."
  value       = var.region
}

output "endpoints" {
  description = "Endpoint slug => { vertex_id for [endpoints.<slug>], full resource name, traffic split owner }."
  value = {
    for slug, ep in module.endpoint : slug => {
      vertex_id           = ep.endpoint_id
      resource_name       = ep.id
      traffic_split_owner = ep.traffic_split_owner
    }
  }
}

output "bot_config_toml" {
  description = "TOML to merge into the bot's config (the rest - people, approvers, channels - is the team's)."
  value = join("\n", concat([
    "[environments.${var.environment}]",
    "project = \"${var.project_id}\"",
    "region = \"${var.region}\"",
    "allowed_regions = [\"${var.region}\"]",
    "dashboard_url = \"${module.monitoring.dashboard_url}\"",
    "",
    "[alerts]",
    "# this stack's policies watch P95 latency and error rate and post to the bot's webhook:",
    "# the bot's own health watch keeps drift only, or each breach is posted twice",
    "watch = [\"drift\"]",
    "",
    ], flatten([
      for slug, ep in var.endpoints : [
        "[endpoints.${slug}]",
        "environment = \"${var.environment}\"",
        "display_name = \"${ep.display_name}\"",
        "vertex_id = \"${ep.endpoint_id}\"",
        "",
      ]
  ])))
}

output "bot_service_account" {
  description = "Service account the App Engine version runs as (gcloud app deploy --service-account)."
  value       = module.bot_service_account.email
}

output "app_url" {
  description = "The bot's base URL."
  value       = "https://${google_app_engine_application.this.default_hostname}"
}

output "slack_request_url" {
  description = "Request URL for the Slack app's slash commands, interactivity and events."
  value       = "https://${google_app_engine_application.this.default_hostname}/slack/events"
}

output "network" {
  description = "app.yaml network.name / network.subnetwork_name."
  value = {
    name            = module.network.network_name
    subnetwork_name = module.network.subnetwork_name
  }
}

output "cloud_sql" {
  description = "The audit store (the DSN itself is only in the aiops-database-url secret)."
  value = {
    connection_name = module.cloud_sql.connection_name
    private_ip      = module.cloud_sql.private_ip_address
    database        = module.cloud_sql.database_name
    user            = module.cloud_sql.user_name
    owner           = module.cloud_sql.owner_user_name
    migrator        = module.db_migration_job.service_account_email
  }
}

output "db_migration_job" {
  description = "Cloud Run job that runs `aiops-bot db upgrade` inside the VPC (the pipeline executes it)."
  value       = module.db_migration_job.name
}

output "secrets" {
  description = "Secret id => full name; app.yaml's *_SECRET variables name these ids."
  value       = module.secrets.secret_ids
}

output "audit" {
  description = "Where the 7-year audit copy goes: the log name the bot writes and the locked bucket."
  value = {
    log_name = module.audit_log_sink.log_name
    bucket   = module.audit_log_sink.bucket_name
  }
}

output "alert_policies" {
  description = "Alert policy names per endpoint (the bot's morning digest reads their open alerts)."
  value       = module.monitoring.alert_policies
}

output "github" {
  description = "Values for the repository's GitHub environment variables (docs/deploy.md step 9)."
  value = {
    workload_identity_provider = module.ci_service_account.workload_identity_provider
    deployer_service_account   = module.ci_service_account.email
    publisher_service_account  = var.host_image_registry ? module.artifact_registry[0].publisher_email : null
    image                      = var.host_image_registry ? module.artifact_registry[0].image : null
  }
}

output "image_reader_members" {
  description = "Identities of this environment that pull the bot's image: give them to image_readers of the root that hosts the registry."
  value       = local.image_readers
}

output "dashboard_url" {
  description = "The environment's endpoint dashboard (P95, error rate, requests by deployed model, replicas, duty cycle, thresholds drawn)."
  value       = module.monitoring.dashboard_url
}
