# Inputs of the dev root that come from outside the code: the project, the billing account and
# the people, given in a terraform.tfvars (not committed when it names people) or, in CI, as
# TF_VAR_* from the GitHub environment's variables (.github/workflows/deploy-environment.yml).
# dev's own settings are code, in main.tf; descriptions and checks are in
# ../../modules/stack/variables.tf. No variable holds a secret.

variable "project_id" {
  description = "GCP project of the dev environment."
  type        = string
  default     = "lender-aiops-dev"
}

variable "billing_account" {
  description = "Billing account id (XXXXXX-XXXXXX-XXXXXX) of the project, for the budget."
  type        = string
}

variable "notification_emails" {
  description = "Label => e-mail of the on-call mailbox / pager gateway for pages and budget alerts."
  type        = map(string)
}

variable "github_owner" {
  description = "GitHub organisation that owns this repository (Workload Identity Federation)."
  type        = string
}

variable "github_repo" {
  description = "This repository's name on GitHub, without the owner."
  type        = string
}

variable "state_bucket" {
  description = "GCS bucket of this root's Terraform state (the CI deployer gets object access), or null."
  type        = string
  default     = null
}

variable "audit_readers" {
  description = "Label => member allowed to read the exported 7-year audit log."
  type        = map(string)
  default     = {}
}

variable "managing_bot_members" {
  description = "Label => service account member of aiops-bot instances in other projects that manage this project's endpoints."
  type        = map(string)
  default     = {}
}

variable "traffic_split_owner" {
  description = "\"bot\" or \"terraform\": who owns the endpoints' traffic split (terraform/README.md before switching)."
  type        = string
  default     = "bot"
}

variable "traffic_split" {
  description = "Only with traffic_split_owner = \"terraform\": endpoint slug => { deployed-model id => percent }."
  type        = map(map(number))
  default     = {}
}
