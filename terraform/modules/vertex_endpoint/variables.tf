variable "project_id" {
  description = "Project of the endpoint."
  type        = string
}

variable "region" {
  description = "Endpoint location: the approved region (data residency)."
  type        = string

  validation {
    condition     = contains(var.allowed_regions, var.region)
    error_message = "The endpoint's region must be one of allowed_regions (data residency)."
  }
}

variable "allowed_regions" {
  description = "Regions this endpoint may be created in."
  type        = list(string)
  default     = ["australia-southeast1"]
}

variable "endpoint_id" {
  description = "Numeric endpoint id (no leading zero, at most 10 digits): the last segment of projects/P/locations/L/endpoints/ID that aiops-bot's config and the alert policies refer to."
  type        = string

  validation {
    condition     = can(regex("^[1-9][0-9]{0,9}$", var.endpoint_id))
    error_message = "endpoint_id must be numeric, without a leading zero, at most 10 digits."
  }
}

variable "display_name" {
  description = "Display name shown in the console and in the bot's digests."
  type        = string
}

variable "description" {
  description = "Free-text description."
  type        = string
  default     = ""
}

variable "labels" {
  description = "Labels on the endpoint (lowercase keys and values)."
  type        = map(string)
  default     = {}
}

variable "kms_key_name" {
  description = "CMEK protecting the endpoint and its deployed models (same region)."
  type        = string
}

variable "traffic_split_owner" {
  description = "Who owns the traffic split: \"bot\" (Terraform ignores it) or \"terraform\" (var.traffic_split is enforced)."
  type        = string
  default     = "bot"

  validation {
    condition     = contains(["bot", "terraform"], var.traffic_split_owner)
    error_message = "traffic_split_owner must be \"bot\" or \"terraform\"."
  }
}

variable "traffic_split" {
  description = "Deployed-model id => percent of traffic, summing to 100; only with traffic_split_owner = \"terraform\". Empty = do not manage the split."
  type        = map(number)
  default     = {}

  validation {
    condition     = length(var.traffic_split) == 0 || sum(concat([0], values(var.traffic_split))) == 100
    error_message = "traffic_split percentages must sum to 100."
  }

  validation {
    condition     = alltrue([for id, pct in var.traffic_split : can(regex("^[0-9]{1,19}$", id)) && pct >= 0 && pct <= 100 && floor(pct) == pct])
    error_message = "traffic_split keys are numeric deployed-model ids and values whole percents 0-100."
  }
}
