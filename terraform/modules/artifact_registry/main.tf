# The container registry for the bot's image, in the approved region, CMEK-encrypted, with
# immutable tags: an image is built and scanned once, then the same digest is deployed to every
# environment. One registry serves all environments (it lives in the production project so that
# production never depends on a non-production project); the other environments' runtime
# identities get read access.

resource "google_artifact_registry_repository" "this" {
  project                = var.project_id
  location               = var.region
  repository_id          = var.repository_id
  description            = "aiops-bot container images (built and scanned by CI)."
  format                 = "DOCKER"
  kms_key_name           = var.kms_key_name
  labels                 = var.labels
  cleanup_policy_dry_run = false

  docker_config {
    immutable_tags = true
  }

  # Keep the 20 most recent images; delete untagged images after 30 days.
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }

  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "2592000s"
    }
  }
}

# Image pushes: only CI on the main branch (a separate publisher identity that can do nothing
# but push to this repository).
resource "google_service_account" "publisher" {
  project      = var.project_id
  account_id   = var.publisher_account_id
  display_name = "aiops-bot image publisher"
  description  = "GitHub Actions on ${var.github_repository} refs/heads/main: push images to ${var.repository_id}. Managed by Terraform."
}

resource "google_artifact_registry_repository_iam_member" "publisher" {
  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.this.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.publisher.email}"
}

resource "google_service_account_iam_member" "publisher_wif" {
  service_account_id = google_service_account.publisher.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principal://iam.googleapis.com/${var.workload_identity_pool_name}/subject/repo:${var.github_repository}:ref:refs/heads/main"
}

resource "google_artifact_registry_repository_iam_member" "readers" {
  for_each = var.readers

  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.this.name
  role       = "roles/artifactregistry.reader"
  member     = each.value
}
