# `aiops-bot db upgrade` as a Cloud Run job: the same image as the bot, run once per deployment
# before the new App Engine version takes traffic (.github/workflows/deploy-environment.yml).
# Cloud SQL has no public IP, so migrations must run inside the bot's VPC; the job reaches it
# with Direct VPC egress and gets DATABASE_URL straight from Secret Manager (Cloud Run resolves
# the secret reference itself, as the bot's service account).
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
      service_account = var.service_account_email
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
              secret  = var.database_url_secret_id
              version = "latest"
            }
          }
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

  lifecycle {
    # The pipeline sets the image of the release being deployed.
    ignore_changes = [template[0].template[0].containers[0].image, client, client_version]
  }
}
