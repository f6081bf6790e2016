# Secret Manager secrets the bot reads at start (app.yaml names them in *_SECRET variables).
#
# Terraform creates the secret *containers*, their replication (one replica, in the approved
# region, CMEK-encrypted) and who may read them. It never holds a Slack credential: the Slack
# tokens are added by a person from the Slack app's settings page
# (`gcloud secrets versions add ... --data-file=-`, docs/deploy.md). Secrets whose value is
# generated (var.generated) get a random value through a write-only argument: it goes to Secret
# Manager and never into a plan or the state file.

resource "google_secret_manager_secret" "this" {
  for_each = var.secrets

  project   = var.project_id
  secret_id = each.key
  labels    = var.labels

  annotations = {
    description = each.value
  }

  replication {
    user_managed {
      replicas {
        location = var.region
        customer_managed_encryption {
          kms_key_name = var.kms_key_name
        }
      }
    }
  }
}

# Read access for the bot (and only these secrets, less var.not_for_accessors: no project-wide
# accessor role).
resource "google_secret_manager_secret_iam_member" "accessors" {
  for_each = {
    for pair in setproduct(keys(var.secrets), keys(var.accessors)) : "${pair[0]}/${pair[1]}" => {
      secret = pair[0]
      member = var.accessors[pair[1]]
    } if !contains(var.not_for_accessors, pair[0])
  }

  project   = var.project_id
  secret_id = google_secret_manager_secret.this[each.value.secret].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = each.value.member
}

# Generated secret values (e.g. the PII tokenisation key): random, write-only, never in state.
# Bump the version number in var.generated to rotate.
ephemeral "random_password" "generated" {
  for_each = var.generated

  length  = 64
  special = false
}

resource "google_secret_manager_secret_version" "generated" {
  for_each = var.generated

  secret                 = google_secret_manager_secret.this[each.key].id
  secret_data_wo         = ephemeral.random_password.generated[each.key].result
  secret_data_wo_version = each.value
}
