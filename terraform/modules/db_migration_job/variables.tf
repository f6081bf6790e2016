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

variable "service_account_email" {
  description = "Identity the job runs as: the bot's service account (it may read the DATABASE_URL secret)."
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

variable "database_url_secret_id" {
  description = "Secret holding DATABASE_URL (projects/P/secrets/S)."
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
