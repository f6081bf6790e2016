# A monthly budget on the environment's project, alerting at each amount in
# var.alert_amounts (default $50 and $100) of actual spend, and when the forecast passes the
# largest. The bot's daily cost line comes from the BigQuery billing export; this budget is the
# independent safety net that reaches finance even when the bot is down.

locals {
  budget = max(var.alert_amounts...)
}

resource "google_billing_budget" "this" {
  billing_account = var.billing_account
  display_name    = "aiops ${var.environment} (${var.project_id})"

  budget_filter {
    projects               = ["projects/${var.project_number}"]
    calendar_period        = "MONTH"
    credit_types_treatment = "INCLUDE_ALL_CREDITS"
  }

  amount {
    specified_amount {
      currency_code = var.currency_code
      units         = tostring(floor(local.budget))
    }
  }

  dynamic "threshold_rules" {
    for_each = var.alert_amounts
    content {
      threshold_percent = threshold_rules.value / local.budget
      spend_basis       = "CURRENT_SPEND"
    }
  }

  threshold_rules {
    threshold_percent = 1.0
    spend_basis       = "FORECASTED_SPEND"
  }

  all_updates_rule {
    monitoring_notification_channels = var.notification_channels
    disable_default_iam_recipients   = false
    schema_version                   = "1.0"
  }
}
