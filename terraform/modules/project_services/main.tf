# Enables the Google APIs the stack uses and creates the Google-managed service agents that
# need a CMEK grant before their first resource exists (Cloud SQL, Secret Manager, Vertex AI,
# Artifact Registry). APIs are never disabled on destroy: other workloads may rely on them.

resource "google_project_service" "this" {
  for_each = var.services

  project                    = var.project_id
  service                    = each.value
  disable_on_destroy         = false
  disable_dependent_services = false
}

resource "google_project_service_identity" "agents" {
  provider = google-beta
  for_each = var.service_agents

  project = var.project_id
  service = each.value

  depends_on = [google_project_service.this]
}

data "google_project" "this" {
  project_id = var.project_id
}

data "google_storage_project_service_account" "gcs" {
  project = var.project_id

  depends_on = [google_project_service.this]
}
