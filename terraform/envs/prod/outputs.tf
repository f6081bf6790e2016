# The stack's outputs, passed through under the same names (descriptions: ../../modules/stack/outputs.tf).

output "project_id" { value = module.stack.project_id }
output "region" { value = module.stack.region }
output "endpoints" { value = module.stack.endpoints }
output "bot_config_toml" { value = module.stack.bot_config_toml }
output "bot_service_account" { value = module.stack.bot_service_account }
output "app_url" { value = module.stack.app_url }
output "slack_request_url" { value = module.stack.slack_request_url }
output "network" { value = module.stack.network }
output "cloud_sql" { value = module.stack.cloud_sql }
output "db_migration_job" { value = module.stack.db_migration_job }
output "secrets" { value = module.stack.secrets }
output "audit" { value = module.stack.audit }
output "alert_policies" { value = module.stack.alert_policies }
output "github" { value = module.stack.github }
output "image_reader_members" { value = module.stack.image_reader_members }
output "dashboard_url" { value = module.stack.dashboard_url }
