variable "project_id" {
  description = "Project of the instance."
  type        = string
}

variable "region" {
  description = "Instance and backup location: the approved region (data residency)."
  type        = string

  validation {
    condition     = contains(var.allowed_regions, var.region)
    error_message = "The Cloud SQL region must be one of allowed_regions (data residency)."
  }
}

variable "allowed_regions" {
  description = "Regions the instance and its backups may live in."
  type        = list(string)
  default     = ["australia-southeast1"]
}

variable "name" {
  description = "Instance name (not reusable for a week after deletion)."
  type        = string
  default     = "aiops-bot"
}

variable "database_version" {
  description = "PostgreSQL major version."
  type        = string
  default     = "POSTGRES_18"
}

variable "edition" {
  description = "ENTERPRISE or ENTERPRISE_PLUS."
  type        = string
  default     = "ENTERPRISE"
}

variable "tier" {
  description = "Machine tier (db-custom-1-3840 = 1 vCPU, 3.75 GB: the bot's load is small)."
  type        = string
  default     = "db-custom-1-3840"
}

variable "availability_type" {
  description = "REGIONAL (a standby in a second zone of the same region) or ZONAL."
  type        = string
  default     = "REGIONAL"

  validation {
    condition     = contains(["REGIONAL", "ZONAL"], var.availability_type)
    error_message = "availability_type must be REGIONAL or ZONAL."
  }
}

variable "disk_size_gb" {
  description = "Initial SSD size; it grows automatically."
  type        = number
  default     = 20
}

variable "backup_start_time" {
  description = "Daily backup window start, HH:MM UTC (15:00 UTC = 01:00 / 02:00 in Sydney)."
  type        = string
  default     = "15:00"
}

variable "retained_backups" {
  description = "How many daily backups to keep (the audit's 7-year copy is the log sink bucket, not these)."
  type        = number
  default     = 30
}

variable "network_id" {
  description = "VPC whose private-services-access range gives the instance its private IP."
  type        = string
}

variable "kms_key_name" {
  description = "CMEK for the instance's disks and backups (same region)."
  type        = string
}

variable "database_name" {
  description = "The bot's database."
  type        = string
  default     = "aiops"
}

variable "owner_user_name" {
  description = "The migration owner's login (owns every table; used by the migration job only)."
  type        = string
  default     = "aiops_owner"
}

variable "runtime_service_account_email" {
  description = "The bot's service account: its Cloud SQL IAM user is the bot's login."
  type        = string
}

variable "password_version" {
  description = "Bump to generate a new password for the migration owner (and new DSN secret versions) in the same apply."
  type        = number
  default     = 1
}

variable "database_url_secret_id" {
  description = "Secret Manager secret (projects/P/secrets/S) that receives the bot's DATABASE_URL (IAM login, no password)."
  type        = string
}

variable "owner_database_url_secret_id" {
  description = "Secret Manager secret that receives the migration owner's DSN (read by the migration job only)."
  type        = string
}

variable "labels" {
  description = "Labels on the instance."
  type        = map(string)
  default     = {}
}
