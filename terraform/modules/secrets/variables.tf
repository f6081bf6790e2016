variable "project_id" {
  description = "Project that holds the secrets."
  type        = string
}

variable "region" {
  description = "The single replica location: the approved region (secrets never leave it)."
  type        = string
}

variable "kms_key_name" {
  description = "CMEK for the replica (same region)."
  type        = string
}

variable "secrets" {
  description = "Secret id => what it holds (no values: values are added out of band or generated)."
  type        = map(string)
}

variable "accessors" {
  description = "Label => member granted roles/secretmanager.secretAccessor on every secret in var.secrets (the bot's service account). Static labels keep for_each known at plan time."
  type        = map(string)
  default     = {}
}

variable "generated" {
  description = "Secret id => version number, for secrets whose value Terraform generates write-only (64 random alphanumerics). Bump the number to rotate."
  type        = map(number)
  default     = {}

  validation {
    condition     = alltrue([for v in values(var.generated) : v >= 1 && floor(v) == v])
    error_message = "generated versions are whole numbers >= 1."
  }
}

variable "labels" {
  description = "Labels on every secret."
  type        = map(string)
  default     = {}
}

variable "not_for_accessors" {
  description = "Secret ids the accessors do not get (e.g. the migration owner's DSN, read only by the migration job's identity, granted where that identity is made)."
  type        = set(string)
  default     = []
}
