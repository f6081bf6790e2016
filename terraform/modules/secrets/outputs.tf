output "secret_ids" {
  description = "Secret id => full name (projects/P/secrets/S)."
  value       = { for k, v in google_secret_manager_secret.this : k => v.id }
}
