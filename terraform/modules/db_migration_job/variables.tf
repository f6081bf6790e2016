variable "project_id" {
  description = "Project of the job (the bot's project)."
  type        = string
}

variable "region" {
  description = "Job location: the approved region."
  type        = string
}

variable "name" {
  description = "Job name (the pipeline runs `gcloud run jobs execute NAME`)."
  type        = string
  default     = "aiops-bot-db-upgrade"
}

variable "migrator_account_id" {
  description = "Account id of the job's own identity (it reads the owner's DSN; the bot cannot)."
  type        = string
  default     = "aiops-db-migrator"
}

variable "deployer_member" {
  description = "The CI deployer (serviceAccount:...), which updates and runs the job; null for none."
  type        = string
  default     = null
}

variable "runtime_role" {
  description = "The bot's database login, made a member of aiops_runtime by the migrations (AIOPS_DB_RUNTIME_ROLE)."
  type        = string
}

variable "network_id" {
  description = "VPC of the Cloud SQL private IP."
  type        = string
}

variable "subnetwork_id" {
  description = "Subnet the job's Direct VPC egress uses."
  type        = string
}

variable "owner_database_url_secret_id" {
  description = "Secret holding the migration owner's DSN (projects/P/secrets/S), the job's DATABASE_URL."
  type        = string
}

variable "initial_image" {
  description = "Image at creation only; the pipeline replaces it with each release's image."
  type        = string
  default     = "us-docker.pkg.dev/cloudrun/container/job:latest"
}

variable "labels" {
  description = "Labels on the job."
  type        = map(string)
  default     = {}
}
