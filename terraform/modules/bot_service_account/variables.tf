variable "project_id" {
  description = "Project that hosts the bot (App Engine, Cloud SQL, secrets) and the service account."
  type        = string
}

variable "account_id" {
  description = "Service account id: aiops-bot@PROJECT.iam.gserviceaccount.com."
  type        = string
  default     = "aiops-bot"
}

variable "custom_role_id" {
  description = "Id of the project-level custom role holding the Vertex AI permissions. A deleted custom role's id is reserved for 37 days."
  type        = string
  default     = "aiopsBotVertexOperator"
}

variable "managing_bot_members" {
  description = "Label => member of aiops-bot service accounts hosted in OTHER projects that manage this project's endpoints (e.g. { prod = \"serviceAccount:aiops-bot@lender-aiops-prod.iam.gserviceaccount.com\" } in staging). They get the Vertex operator role and monitoring.viewer here."
  type        = map(string)
  default     = {}
}

variable "grant_cloudsql_client" {
  description = "Grant roles/cloudsql.client (needed for the Cloud SQL Auth Proxy / language connectors; a direct private-IP connection does not use it)."
  type        = bool
  default     = true
}

variable "billing_export_dataset" {
  description = "BigQuery billing export dataset the cost digest reads, or null to grant nothing."
  type = object({
    project_id = string
    dataset_id = string
  })
  default = null
}
