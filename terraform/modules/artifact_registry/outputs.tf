output "image" {
  description = "Image path without tag or digest: REGION-docker.pkg.dev/PROJECT/REPO/aiops-bot (GitHub variable AIOPS_IMAGE)."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.this.repository_id}/aiops-bot"
}

output "publisher_email" {
  description = "Publisher service account (GitHub variable GCP_PUBLISHER_SA)."
  value       = google_service_account.publisher.email
}
