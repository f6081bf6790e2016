# Inputs of the stack. The environment roots (envs/*/main.tf) give the environment's values in
# their module "stack" call and pass the rest through from their own variables; defaults here are
# the safe (production) choice. No variable holds a secret.

# ---------------------------------------------------------------- where
variable "environment" {
  description = "Environment name, as in the bot's config ([environments.<name>]); each root passes its own."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "project_id" {
  description = "GCP project of this environment."
  type        = string
}

variable "allowed_regions" {
  description = "Regions this environment's data may live in. Each root writes the list in code (widening it is a reviewed change), never from a variable; the same list as allowed_regions in the bot's config."
  type        = list(string)

  validation {
    condition     = length(var.allowed_regions) > 0 && alltrue([for r in var.allowed_regions : startswith(r, "australia-")])
    error_message = "Data residency: allowed_regions must name Australian regions only (australia-*)."
  }
}

variable "region" {
  description = "The one region every regional resource is created in. Data residency: must be one of allowed_regions."
  type        = string

  validation {
    condition     = contains(var.allowed_regions, var.region)
    error_message = "Data residency: ${var.environment} resources may only be created in ${join(" or ", var.allowed_regions)}."
  }
}

variable "subnet_cidr" {
  description = "Primary range of the bot's subnet (must not overlap other peered networks)."
  type        = string
}

# ---------------------------------------------------------------- who
variable "github_owner" {
  description = "GitHub organisation that owns this repository (its Actions sign in through Workload Identity Federation)."
  type        = string
}

variable "github_repo" {
  description = "This repository's name on GitHub, without the owner."
  type        = string
}

variable "github_environments" {
  description = "GitHub deployment environments whose jobs may deploy to this project (prod: production-canary applies the 10 % canary, production (required reviewers) promotes)."
  type        = list(string)
}

variable "managing_bot_members" {
  description = "Label => service account member of aiops-bot instances hosted in other projects that manage this project's endpoints. Empty: only this project's bot does."
  type        = map(string)
  default     = {}
}

variable "notification_emails" {
  description = "Label => e-mail of the on-call mailbox / pager gateway that receives pages and budget alerts (at most 5 are given to the budget)."
  type        = map(string)
}

variable "audit_readers" {
  description = "Label => member allowed to read the exported 7-year audit log (e.g. { internal_audit = \"group:internal-audit@lender.example\" })."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------- Vertex AI
variable "endpoints" {
  description = "Vertex AI endpoints of this environment, by the slug the bot's config uses ([endpoints.<slug>]): numeric endpoint id (becomes vertex_id in the config), display name, description."
  type = map(object({
    endpoint_id  = string
    display_name = string
    description  = optional(string, "")
  }))
}

variable "traffic_split_owner" {
  description = "Who owns the endpoints' traffic split: \"bot\" (aiops-bot promotes and rolls back; Terraform ignores the split) or \"terraform\" (promotion by pull request / pipeline through var.traffic_split). See terraform/README.md before switching an existing environment."
  type        = string
  default     = "bot"

  validation {
    condition     = contains(["bot", "terraform"], var.traffic_split_owner)
    error_message = "traffic_split_owner must be \"bot\" or \"terraform\"."
  }
}

variable "traffic_split" {
  description = "Only with traffic_split_owner = \"terraform\": endpoint slug => { deployed-model id => percent }, each summing to 100. The pipeline's canary passes e.g. {\"loan-assessor\" = {\"111\" = 90, \"222\" = 10}}. Empty: the split is not managed."
  type        = map(map(number))
  default     = {}

  validation {
    condition     = alltrue([for slug in keys(var.traffic_split) : contains(keys(var.endpoints), slug)])
    error_message = "traffic_split names an endpoint slug that is not in var.endpoints."
  }
}

variable "p95_latency_ms" {
  description = "Page when an endpoint's P95 prediction latency exceeds this (the bot's default: 2000 ms)."
  type        = number
  default     = 2000
}

variable "error_rate" {
  description = "Page when an endpoint's errors / predictions exceed this fraction (the bot's default: 0.01)."
  type        = number
  default     = 0.01
}

# ---------------------------------------------------------------- data stores
variable "cloudsql_tier" {
  description = "Cloud SQL machine tier of the audit store."
  type        = string
  default     = "db-custom-1-3840"
}

variable "cloudsql_availability_type" {
  description = "REGIONAL (standby in a second zone of the region) or ZONAL."
  type        = string
  default     = "REGIONAL"

  validation {
    condition     = contains(["REGIONAL", "ZONAL"], var.cloudsql_availability_type)
    error_message = "cloudsql_availability_type must be REGIONAL or ZONAL."
  }
}

variable "database_password_version" {
  description = "Bump to rotate the bot's database password (Cloud SQL user and DATABASE_URL secret, same apply)."
  type        = number
  default     = 1
}

variable "pii_key_version" {
  description = "Bump to rotate the PII tokenisation key (new tokens no longer match old ones: plan it)."
  type        = number
  default     = 1
}

variable "alert_webhook_token_version" {
  description = "Bump to rotate the password of Cloud Monitoring's webhook channel to the bot (secret and channel change in the same apply; redeploy the bot after it)."
  type        = number
  default     = 1

  validation {
    condition     = var.alert_webhook_token_version >= 1 && floor(var.alert_webhook_token_version) == var.alert_webhook_token_version
    error_message = "alert_webhook_token_version is a whole number >= 1."
  }
}

variable "kms_protection_level" {
  description = "SOFTWARE or HSM protection for the CMEKs."
  type        = string
  default     = "HSM"
}

variable "lock_audit_retention" {
  description = "Lock the audit bucket's 7-year retention policy. Irreversible; true wherever real audit data lands. Set false only for a throwaway sandbox project: a locked bucket (and, through a lien, its project) cannot be deleted for 7 years."
  type        = bool
  default     = true
}

variable "billing_export_dataset" {
  description = "BigQuery billing export dataset that the cost digest reads ({ project_id, dataset_id }), or null."
  type = object({
    project_id = string
    dataset_id = string
  })
  default = null
}

# ---------------------------------------------------------------- money
variable "billing_account" {
  description = "Billing account id (XXXXXX-XXXXXX-XXXXXX) of the project, for the budget."
  type        = string
}

variable "budget_alert_amounts" {
  description = "Monthly spend amounts that each alert (default: 50 and 100); the largest is the budget."
  type        = list(number)
  default     = [50, 100]
}

variable "budget_currency" {
  description = "Currency of budget_alert_amounts; must be the billing account's currency."
  type        = string
  default     = "USD"
}

# ---------------------------------------------------------------- delivery
variable "state_bucket" {
  description = "GCS bucket that holds this root's Terraform state (the CI deployer gets object access to it), or null."
  type        = string
  default     = null
}

variable "host_image_registry" {
  description = "Create the Artifact Registry repository for the bot's image in this project (true in prod only: prod never pulls from a non-prod project)."
  type        = bool
  default     = false
}

variable "image_readers" {
  description = "Only where host_image_registry: label => member of other environments' identities that pull the image (their output image_reader_members)."
  type        = map(string)
  default     = {}
}
