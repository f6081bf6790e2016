output "secret_ids" {
  description = "Secret id => full name (projects/P/secrets/S)."
  value       = { for k, v in google_secret_manager_secret.this : k => v.id }
}

output "generated_versions" {
  description = "Generated secret id => its current version number. Known only once that version is written, so a reader that takes it (an ephemeral google_secret_manager_secret_version) reads the new value in the apply that rotates it."
  value       = { for k, v in google_secret_manager_secret_version.generated : k => v.version }
}
