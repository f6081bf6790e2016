variable "project_id" {
  description = "Project whose APIs are enabled."
  type        = string
}

variable "services" {
  description = "APIs to enable, e.g. aiplatform.googleapis.com."
  type        = set(string)
}

variable "service_agents" {
  description = "APIs whose Google-managed service agent must exist before Terraform grants it a role (CMEK users)."
  type        = set(string)
  default = [
    "aiplatform.googleapis.com",
    "artifactregistry.googleapis.com",
    "secretmanager.googleapis.com",
    "sqladmin.googleapis.com",
  ]
}
