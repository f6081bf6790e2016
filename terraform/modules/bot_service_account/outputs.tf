output "email" {
  description = "The bot's service account e-mail (app.yaml / gcloud app deploy --service-account)."
  value       = google_service_account.bot.email
}

output "member" {
  description = "serviceAccount:EMAIL, for IAM bindings."
  value       = "serviceAccount:${google_service_account.bot.email}"
}

output "id" {
  description = "Service account resource id (for roles/iam.serviceAccountUser grants on it)."
  value       = google_service_account.bot.name
}

output "custom_role_id" {
  description = "The Vertex AI operator custom role (projects/P/roles/R)."
  value       = google_project_iam_custom_role.vertex_operator.id
}
