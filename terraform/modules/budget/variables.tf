variable "billing_account" {
  description = "Billing account id (XXXXXX-XXXXXX-XXXXXX) that pays for the project."
  type        = string
}

variable "project_id" {
  description = "Project the budget covers."
  type        = string
}

variable "project_number" {
  description = "Its number (budget filters take numbers)."
  type        = string
}

variable "environment" {
  description = "dev, staging or prod (shown in the budget's name)."
  type        = string
}

variable "alert_amounts" {
  description = "Spend amounts (in currency_code) that each send an alert; the largest is the budget."
  type        = list(number)
  default     = [50, 100]

  validation {
    condition     = length(var.alert_amounts) > 0 && alltrue([for a in var.alert_amounts : a > 0])
    error_message = "alert_amounts must be positive."
  }
}

variable "currency_code" {
  description = "Currency of the amounts; it must be the billing account's currency."
  type        = string
  default     = "USD"
}

variable "notification_channels" {
  description = "Monitoring notification channels that receive the alerts (at most 5)."
  type        = list(string)
  default     = []
}
