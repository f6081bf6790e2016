output "instance_name" {
  description = "Instance name."
  value       = google_sql_database_instance.this.name
}

output "connection_name" {
  description = "PROJECT:REGION:INSTANCE, for the Cloud SQL Auth Proxy / connectors."
  value       = google_sql_database_instance.this.connection_name
}

output "private_ip_address" {
  description = "The instance's private IP (inside the bot's VPC)."
  value       = google_sql_database_instance.this.private_ip_address
}

output "database_name" {
  description = "The bot's database."
  value       = google_sql_database.this.name
}

output "user_name" {
  description = "The bot's login (the Cloud SQL IAM user of its service account)."
  value       = google_sql_user.runtime.name
}

output "owner_user_name" {
  description = "The migration owner's login."
  value       = google_sql_user.owner.name
}
