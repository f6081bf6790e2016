variable "project_id" {
  description = "Project hosting the registry (production)."
  type        = string
}

variable "region" {
  description = "Registry location: the approved region."
  type        = string
}

variable "repository_id" {
  description = "Repository id: REGION-docker.pkg.dev/PROJECT/ID/aiops-bot."
  type        = string
  default     = "aiops-bot"
}

variable "kms_key_name" {
  description = "CMEK for stored images (same region)."
  type        = string
}

variable "github_repository" {
  description = "OWNER/REPO whose main-branch workflow pushes images."
  type        = string
}

variable "workload_identity_pool_name" {
  description = "projects/NUMBER/locations/global/workloadIdentityPools/POOL of the CI pool in this project."
  type        = string
}

variable "publisher_account_id" {
  description = "Service account id of the image publisher."
  type        = string
  default     = "aiops-image-publisher"
}

variable "readers" {
  description = "Label => member allowed to pull (each environment's bot runtime and App Engine flexible service agent, and deployers)."
  type        = map(string)
  default     = {}
}

variable "labels" {
  description = "Labels on the repository."
  type        = map(string)
  default     = {}
}
