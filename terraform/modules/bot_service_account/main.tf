# The identity aiops-bot runs as (App Engine flexible version's service account), with only
# what the bot does and nothing else - no primitive role (owner / editor / viewer):
#
#   what the bot does                              role
#   ---------------------------------------------  --------------------------------------------
#   deploy / undeploy models, update traffic split, custom role aiopsBotVertexOperator
#   read endpoints, models and operations            (9 permissions, below; no predict, no
#                                                     create/delete of endpoints or models)
#   read metrics and alert policies / open alerts   roles/monitoring.viewer
#   write the `aiops-audit` log and app logs        roles/logging.logWriter
#   write the instance's agent metrics (App Engine) roles/monitoring.metricWriter
#   connect to Cloud SQL through a connector/proxy  roles/cloudsql.client (optional)
#   read its secrets                                secretAccessor on each secret (secrets module)
#   read the billing export (cost digests)          bigquery.dataViewer on that dataset only,
#                                                    bigquery.jobUser on this project (optional)
#
# Other projects whose endpoints this bot manages grant the same Vertex / Monitoring roles to
# it from their own root (var.managing_bot_members there).

resource "google_service_account" "bot" {
  project      = var.project_id
  account_id   = var.account_id
  display_name = "aiops-bot runtime"
  description  = "aiops-bot (ChatOps for Vertex AI): App Engine flexible runtime identity. Managed by Terraform."
}

resource "google_project_iam_custom_role" "vertex_operator" {
  project     = var.project_id
  role_id     = var.custom_role_id
  title       = "aiops-bot Vertex AI operator"
  description = "Deploy, undeploy and re-split traffic on Vertex AI endpoints; read models and operations. No prediction, no create/delete."
  stage       = "GA"
  permissions = [
    "aiplatform.endpoints.get",
    "aiplatform.endpoints.list",
    "aiplatform.endpoints.deploy",
    "aiplatform.endpoints.undeploy",
    "aiplatform.endpoints.update",
    "aiplatform.models.get",
    "aiplatform.models.list",
    "aiplatform.operations.list",
    "resourcemanager.projects.get",
  ]
}

locals {
  bot_member = "serviceAccount:${google_service_account.bot.email}"

  # label => member for everything that operates this project's endpoints: this bot, plus bots
  # hosted in other projects that manage endpoints here. Static labels keep for_each known.
  operators = merge({ self = local.bot_member }, var.managing_bot_members)

  operator_roles = {
    vertex     = google_project_iam_custom_role.vertex_operator.id
    monitoring = "roles/monitoring.viewer"
  }

  runtime_roles = concat(
    # cloudsql.instanceUser: log in to Cloud SQL as its IAM database user (no password)
    ["roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/cloudsql.instanceUser"],
    var.grant_cloudsql_client ? ["roles/cloudsql.client"] : [],
    var.billing_export_dataset != null ? ["roles/bigquery.jobUser"] : [],
  )
}

resource "google_project_iam_member" "operators" {
  for_each = {
    for pair in setproduct(keys(local.operators), keys(local.operator_roles)) : "${pair[0]}/${pair[1]}" => {
      member = local.operators[pair[0]]
      role   = local.operator_roles[pair[1]]
    }
  }

  project = var.project_id
  role    = each.value.role
  member  = each.value.member
}

resource "google_project_iam_member" "runtime" {
  for_each = toset(local.runtime_roles)

  project = var.project_id
  role    = each.value
  member  = local.bot_member
}

# Cost digests: read-only on the billing export dataset, nothing else in BigQuery.
resource "google_bigquery_dataset_iam_member" "billing_export" {
  count = var.billing_export_dataset != null ? 1 : 0

  project    = var.billing_export_dataset.project_id
  dataset_id = var.billing_export_dataset.dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = local.bot_member
}
