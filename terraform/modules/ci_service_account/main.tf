# CI identity: GitHub Actions signs in with Workload Identity Federation (short-lived OIDC
# tokens, no JSON key exists anywhere) and impersonates a deployer service account that holds
# exactly what `terraform apply` of this stack and `gcloud app deploy` need.
#
# Who may impersonate it is pinned to the repository AND to GitHub deployment environments:
# the token's `sub` claim must be repo:OWNER/REPO:environment:NAME for one of
# var.github_environments. Jobs that are not in those environments (pull requests, forks,
# other branches) cannot obtain a token, and the `production` environment's required
# reviewers are therefore the approval gate for every production change.

locals {
  repository = "${var.github_owner}/${var.github_repo}"

  # GitHub's `sub` claim: repo:OWNER/REPO:environment:NAME for jobs in a deployment environment.
  subjects = concat(
    [for env in var.github_environments : "repo:${var.github_owner}/${var.github_repo}:environment:${env}"],
    var.extra_subjects,
  )

  more_subjects = join("", [for s in slice(local.subjects, 1, length(local.subjects)) : " || assertion.sub == '${s}'"])
}

resource "google_iam_workload_identity_pool" "github" {
  project                   = var.project_id
  workload_identity_pool_id = var.pool_id
  display_name              = "GitHub Actions"
  description               = "OIDC tokens from GitHub Actions for ${local.repository}"
}

resource "google_iam_workload_identity_pool_provider" "github" {
  project                            = var.project_id
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = "github-actions"
  display_name                       = "GitHub Actions OIDC"

  attribute_mapping = {
    "google.subject"             = "assertion.sub"
    "attribute.repository"       = "assertion.repository"
    "attribute.repository_owner" = "assertion.repository_owner"
    "attribute.ref"              = "assertion.ref"
  }

  # Only tokens minted for this repository, in one of the allowed subjects (its deployment
  # environments, plus e.g. the main branch for the image publisher), are accepted at all.
  # (The sub claim starts with repo:OWNER/REPO, so it pins the repository too.)
  attribute_condition = "assertion.sub == 'repo:${var.github_owner}/${var.github_repo}:environment:${var.github_environments[0]}'${local.more_subjects}"

  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account" "deployer" {
  project      = var.project_id
  account_id   = var.account_id
  display_name = "aiops-bot CI deployer"
  description  = "GitHub Actions (${local.repository}, environments ${join(", ", var.github_environments)}): terraform apply and gcloud app deploy. Managed by Terraform."
}

locals {
  pool_name = google_iam_workload_identity_pool.github.name

  # One principal per GitHub environment: principal://.../subject/repo:OWNER/REPO:environment:NAME
  deployer_principals = {
    for env in var.github_environments :
    env => "principal://iam.googleapis.com/${local.pool_name}/subject/repo:${var.github_owner}/${var.github_repo}:environment:${env}"
  }

  # Roles `terraform apply` needs for the resources in terraform/modules, each the narrowest
  # predefined role that covers them. No owner / editor.
  deployer_roles = concat([
    "roles/serviceusage.serviceUsageAdmin",  # enable the stack's APIs
    "roles/compute.networkAdmin",            # VPC, subnet, router, NAT, peering range
    "roles/servicenetworking.networksAdmin", # private services access for Cloud SQL
    "roles/cloudkms.admin",                  # key ring, keys, key IAM
    "roles/cloudsql.admin",                  # instance, database, user
    "roles/secretmanager.admin",             # secret containers, generated versions, secret IAM
    "roles/aiplatform.user",                 # endpoints (create, update, traffic split)
    "roles/iam.serviceAccountAdmin",         # the bot's and this service account
    "roles/iam.roleAdmin",                   # the bot's custom role
    "roles/iam.workloadIdentityPoolAdmin",   # this pool and provider
    "roles/monitoring.alertPolicyEditor",    # alert policies
    "roles/monitoring.notificationChannelEditor",
    "roles/monitoring.uptimeCheckConfigEditor", # /healthz uptime check
    "roles/logging.configWriter",               # the audit log sink
    "roles/storage.admin",                      # audit bucket (retention lock) and its IAM
    "roles/appengine.appAdmin",                 # App Engine application settings
    "roles/appengine.deployer",                 # gcloud app deploy
    "roles/appengine.serviceAdmin",             # traffic migration between versions
    "roles/run.developer",                      # the db-upgrade job: update image, execute
  ], var.extra_roles)

  # Project IAM is the one powerful permission Terraform needs; an IAM condition restricts it to
  # granting / revoking only the roles this stack itself grants (the bot's roles and the
  # deployer's own), so CI can never grant itself or anyone owner or editor.
  grantable_roles = distinct(concat(local.deployer_roles, var.grantable_roles))
}

resource "google_project_iam_member" "deployer" {
  for_each = toset(local.deployer_roles)

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.deployer.email}"
}

resource "google_project_iam_member" "deployer_project_iam" {
  project = var.project_id
  role    = "roles/resourcemanager.projectIamAdmin"
  member  = "serviceAccount:${google_service_account.deployer.email}"

  condition {
    title       = "only-the-stack-roles"
    description = "May grant and revoke only the roles terraform/ manages."
    expression  = "api.getAttribute('iam.googleapis.com/modifiedGrantsByRole', []).hasOnly([${join(", ", [for r in local.grantable_roles : "'${r}'"])}])"
  }
}

resource "google_service_account_iam_member" "deployer_wif" {
  for_each = local.deployer_principals

  service_account_id = google_service_account.deployer.name
  role               = "roles/iam.workloadIdentityUser"
  member             = each.value
}

# Deploying an App Engine version that runs as the bot's service account requires actAs on that
# account (and only that one).
resource "google_service_account_iam_member" "deployer_acts_as_bot" {
  service_account_id = var.bot_service_account_id
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.deployer.email}"
}

# The Terraform state bucket is created before Terraform (docs/deploy.md, step 2); the deployer
# reads and writes state objects there and nothing else in it.
resource "google_storage_bucket_iam_member" "deployer_state" {
  count = var.state_bucket != null ? 1 : 0

  bucket = var.state_bucket
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.deployer.email}"
}
