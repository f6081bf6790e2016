variable "project_id" {
  description = "Project whose `aiops-audit` log is exported."
  type        = string
}

variable "region" {
  description = "Bucket location: the approved region (the audit never leaves it)."
  type        = string
}

variable "bucket_name" {
  description = "Globally unique bucket name."
  type        = string
}

variable "kms_key_name" {
  description = "CMEK for the bucket (same region; the Cloud Storage service agent must be able to use it)."
  type        = string
}

variable "log_name" {
  description = "Log name the bot writes its audit copy to (logName = projects/P/logs/LOG_NAME)."
  type        = string
  default     = "aiops-audit"
}

variable "sink_name" {
  description = "Log sink name."
  type        = string
  default     = "aiops-audit-to-gcs"
}

variable "lock_retention_policy" {
  description = "Lock the 7-year retention policy (irreversible). True wherever real audit data is written."
  type        = bool
  default     = true
}

variable "readers" {
  description = "Label => member allowed to read the exported audit log (e.g. the internal audit group)."
  type        = map(string)
  default     = {}
}

variable "data_access_audit_services" {
  description = "Services whose Data Access audit logs (ADMIN_READ, DATA_READ, DATA_WRITE) are enabled on the project."
  type        = list(string)
  default = [
    "cloudkms.googleapis.com",
    "secretmanager.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
  ]
}

variable "labels" {
  description = "Labels on the bucket."
  type        = map(string)
  default     = {}
}
