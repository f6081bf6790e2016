variable "project_id" {
  description = "Project that holds the key ring."
  type        = string
}

variable "region" {
  description = "Key ring location: the approved region (a CMEK must be in the same region as the data it protects)."
  type        = string
}

variable "name" {
  description = "Key ring name. Key rings cannot be deleted, so the name is never reused."
  type        = string
  default     = "aiops-bot"
}

variable "keys" {
  description = "Key name => { label => member } granted roles/cloudkms.cryptoKeyEncrypterDecrypter on it, e.g. { cloudsql = { agent = \"serviceAccount:service-N@gcp-sa-cloud-sql.iam.gserviceaccount.com\" } }."
  type        = map(map(string))
}

variable "rotation_period" {
  description = "Automatic rotation period of every key (90 days)."
  type        = string
  default     = "7776000s"
}

variable "protection_level" {
  description = "SOFTWARE or HSM. HSM keys cost more and meet FIPS 140-2 level 3."
  type        = string
  default     = "SOFTWARE"

  validation {
    condition     = contains(["SOFTWARE", "HSM"], var.protection_level)
    error_message = "protection_level must be SOFTWARE or HSM."
  }
}

variable "labels" {
  description = "Labels on every key."
  type        = map(string)
  default     = {}
}
