output "project_number" {
  description = "The project's number (service agent e-mails and budget filters use it)."
  value       = data.google_project.this.number
}

output "service_agents" {
  description = "Service agent e-mail by short name: cloudsql, secretmanager, aiplatform, artifactregistry, storage."
  value = {
    cloudsql         = "service-${data.google_project.this.number}@gcp-sa-cloud-sql.iam.gserviceaccount.com"
    secretmanager    = "service-${data.google_project.this.number}@gcp-sa-secretmanager.iam.gserviceaccount.com"
    aiplatform       = "service-${data.google_project.this.number}@gcp-sa-aiplatform.iam.gserviceaccount.com"
    artifactregistry = "service-${data.google_project.this.number}@gcp-sa-artifactregistry.iam.gserviceaccount.com"
    storage          = data.google_storage_project_service_account.gcs.email_address
  }

  depends_on = [google_project_service_identity.agents]
}

output "enabled_services" {
  description = "The enabled APIs (depend on this to order resources after API enablement)."
  value       = [for s in google_project_service.this : s.service]
}
