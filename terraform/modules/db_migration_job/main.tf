# `aiops-bot db upgrade` as a Cloud Run job: the same image as the bot, run once per deployment
# before the new App Engine version takes traffic (.github/workflows/deploy-environment.yml).
# Cloud SQL has no public IP, so migrations must run inside the bot's VPC; the job reaches it
# with Direct VPC egress and gets DATABASE_URL straight from Secret Manager (Cloud Run resolves
# the secret reference itself).
#
# It runs as its own identity, `aiops-db-migrator`, the only one that may read the migration
# owner's DSN: the bot's service account cannot, so the bot's credentials never reach the
# owner's rights. AIOPS_DB_RUNTIME_ROLE names the bot's login, which the migrations make a
# member of `aiops_runtime` (SELECT and INSERT only on the audit tables).

resource "google_service_account" "migrator" {
  project      = var.project_id
  account_id   = var.migrator_account_id
  display_name = "aiops-bot database migrations"
  description  = "Runs `aiops-bot db upgrade` as the migration owner (Cloud Run job); reads only the owner's DSN secret."
}

resource "google_secret_manager_secret_iam_member" "migrator_reads_owner_dsn" {
  project   = var.project_id
  secret_id = var.owner_database_url_secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.migrator.email}"
}

# The pipeline updates the job's image and runs it: the deployer must act as its identity.
resource "google_service_account_iam_member" "deployer_acts_as_migrator" {
  for_each = var.deployer_member != null ? { deployer = var.deployer_member } : {}

  service_account_id = google_service_account.migrator.name
  role               = "roles/iam.serviceAccountUser"
  member             = each.value
}
#
# The pipeline owns the job's image (gcloud run jobs update --image=...); Terraform creates the
# job with a placeholder image and then ignores it.

resource "google_cloud_run_v2_job" "this" {
  project             = var.project_id
  name                = var.name
  location            = var.region
  deletion_protection = false
  labels              = var.labels

  template {
    task_count  = 1
    parallelism = 1
    labels      = var.labels

    template {
      service_account = google_service_account.migrator.email
      max_retries     = 0
      timeout         = "900s"

      vpc_access {
        egress = "PRIVATE_RANGES_ONLY"
        network_interfaces {
          network    = var.network_id
          subnetwork = var.subnetwork_id
        }
      }

      containers {
        image   = var.initial_image
        command = ["aiops-bot"]
        args    = ["db", "upgrade"]

        env {
          name = "DATABASE_URL"
          value_source {
            secret_key_ref {
              secret  = var.owner_database_url_secret_id
              version = "latest"
            }
          }
        }

        env {
          name  = "AIOPS_DB_RUNTIME_ROLE"
          value = var.runtime_role
        }

        resources {
          limits = {
            cpu    = "1"
            memory = "512Mi"
          }
        }
      }
    }
  }

  depends_on = [google_secret_manager_secret_iam_member.migrator_reads_owner_dsn]

  lifecycle {
    # The pipeline sets the image of the release being deployed.
    ignore_changes = [template[0].template[0].containers[0].image, client, client_version]
  }
}
