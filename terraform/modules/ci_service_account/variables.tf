variable "project_id" {
  description = "Project the deployer deploys to (one deployer per environment project)."
  type        = string
}

variable "github_owner" {
  description = "GitHub organisation (or user) that owns the repository whose Actions may sign in."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+$", var.github_owner))
    error_message = "github_owner is a GitHub organisation or user name."
  }
}

variable "github_repo" {
  description = "Repository name (without the owner)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+$", var.github_repo))
    error_message = "github_repo is a repository name without the owner."
  }
}

variable "github_environments" {
  description = "GitHub deployment environments whose jobs may impersonate the deployer (e.g. [\"production-canary\", \"production\"]). Protect them with required reviewers in the repository settings."
  type        = list(string)

  validation {
    condition     = length(var.github_environments) > 0
    error_message = "Name at least one GitHub environment."
  }
}

variable "extra_subjects" {
  description = "Further GitHub `sub` claims the pool accepts (e.g. repo:OWNER/REPO:ref:refs/heads/main for the image publisher). They get no role here: a service account must still trust them."
  type        = list(string)
  default     = []
}

variable "pool_id" {
  description = "Workload identity pool id (a deleted pool's id is reserved for 30 days)."
  type        = string
  default     = "github"
}

variable "account_id" {
  description = "Deployer service account id."
  type        = string
  default     = "aiops-ci-deployer"
}

variable "bot_service_account_id" {
  description = "The bot's service account (projects/P/serviceAccounts/EMAIL): the deployer may act as it to deploy App Engine versions."
  type        = string
}

variable "state_bucket" {
  description = "Name of the GCS bucket holding this environment's Terraform state, or null."
  type        = string
  default     = null
}

variable "extra_roles" {
  description = "Additional project roles for the deployer (e.g. roles/artifactregistry.admin where the image registry lives). Primitive roles are refused."
  type        = list(string)
  default     = []

  validation {
    condition     = length(setintersection(toset(var.extra_roles), toset(["roles/owner", "roles/editor", "roles/viewer"]))) == 0
    error_message = "Primitive roles (owner, editor, viewer) are not allowed."
  }
}

variable "grantable_roles" {
  description = "Roles (besides the deployer's own) that the deployer may grant through project IAM: the bot's roles and custom role."
  type        = list(string)
  default     = []
}
