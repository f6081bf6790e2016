variable "project_id" {
  description = "Project whose metrics are watched (the endpoints' project)."
  type        = string
}

variable "environment" {
  description = "dev, staging or prod (shown in policy names)."
  type        = string
}

variable "endpoints" {
  description = "Endpoint slug (as in the bot's config) => numeric Vertex AI endpoint id."
  type        = map(string)
}

variable "p95_latency_ms" {
  description = "Page when P95 prediction latency exceeds this many milliseconds (the bot's default: 2 s)."
  type        = number
  default     = 2000
}

variable "error_rate" {
  description = "Page when errors / predictions exceed this fraction (the bot's default: 1 %)."
  type        = number
  default     = 0.01

  validation {
    condition     = var.error_rate > 0 && var.error_rate < 1
    error_message = "error_rate is a fraction between 0 and 1."
  }
}

variable "duration_seconds" {
  description = "How long a threshold must be breached before paging."
  type        = number
  default     = 300
}

variable "latency_extra_filter" {
  description = "Appended to the latency filter, e.g. ' AND metric.labels.latency_type = \"model\"' to page on model latency only. Empty: all latency the metric reports."
  type        = string
  default     = ""
}

variable "notification_emails" {
  description = "Label => e-mail address of an on-call mailbox or pager gateway that receives the pages."
  type        = map(string)
}

variable "extra_notification_channels" {
  description = "Existing notification channel ids (PagerDuty, Slack, ...) created outside this module, e.g. because their credentials must not be in Terraform."
  type        = list(string)
  default     = []
}

variable "bot_host" {
  description = "Hostname of the bot (App Engine default_hostname) for the /healthz uptime check, or null for none."
  type        = string
  default     = null
}

variable "bot_webhook" {
  description = "The bot's alert webhook: its https URL (…/alerts/cloud-monitoring), the HTTP Basic user, the Secret Manager secret (projects/P/secrets/S) and version number holding the password, and a number bumped whenever that password changes (it is write-only, so Terraform cannot see a change). null: no webhook channel."
  type = object({
    url           = string
    username      = optional(string, "cloud-monitoring")
    token_secret  = string
    token_version = string
    rotation      = number
  })
  default = null

  validation {
    condition     = var.bot_webhook == null ? true : startswith(var.bot_webhook.url, "https://")
    error_message = "bot_webhook.url must be https: the channel sends a password."
  }
}

variable "labels" {
  description = "User labels on policies and channels."
  type        = map(string)
  default     = {}
}
