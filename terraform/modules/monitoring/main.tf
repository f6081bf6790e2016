# Cloud Monitoring for the framework's paging thresholds (the `[thresholds]` table of the bot's config), per Vertex AI endpoint:
#   - P95 prediction latency > 2 s for 5 minutes  -> page (severity CRITICAL)
#   - error rate > 1 % for 5 minutes               -> page (severity CRITICAL)
# plus an uptime check on the bot's own /healthz. The bot reads these policies and their open
# alerts for the morning digest; people get them through the notification channels.
#
# Vertex AI metrics arrive 2-6 minutes late; the 5-minute duration keeps one slow minute from
# paging anyone.

resource "google_monitoring_notification_channel" "email" {
  for_each = var.notification_emails

  project      = var.project_id
  display_name = "aiops ${var.environment} on-call: ${each.key}"
  type         = "email"
  labels = {
    email_address = each.value
  }
  user_labels = var.labels
}

# The bot's own channel: every incident of the endpoint policies is POSTed to the bot
# (/alerts/cloud-monitoring, notification schema 1.2), which posts it once to the ops channel
# with its buttons and updates that message when the incident closes (bot/alerts).
# HTTP Basic (`webhook_basicauth`), not `webhook_tokenauth`: a token channel carries its token
# in the `url` label, which is in the state and in App Engine's request logs. The password is
# write-only (`password_wo`): read from Secret Manager during the apply, never stored. Its
# version input is the secret version's number, known only once that version is written, so a
# rotation reads the new value.
ephemeral "google_secret_manager_secret_version" "bot_webhook" {
  count = var.bot_webhook != null ? 1 : 0

  project = var.project_id
  secret  = var.bot_webhook.token_secret
  version = var.bot_webhook.token_version
}

resource "google_monitoring_notification_channel" "bot_webhook" {
  count = var.bot_webhook != null ? 1 : 0

  project      = var.project_id
  display_name = "aiops-bot ${var.environment}: alerts to Slack"
  description  = "Cloud Monitoring incidents of the endpoint policies, to the bot's /alerts/cloud-monitoring (HTTP Basic)."
  type         = "webhook_basicauth"
  labels = {
    url      = var.bot_webhook.url
    username = var.bot_webhook.username
  }
  sensitive_labels {
    password_wo         = ephemeral.google_secret_manager_secret_version.bot_webhook[0].secret_data
    password_wo_version = var.bot_webhook.rotation
  }
  user_labels = var.labels
}

locals {
  channels = concat([for c in google_monitoring_notification_channel.email : c.id], var.extra_notification_channels)
  # The endpoint policies also notify the bot; the budget and the bot's own uptime do not (a
  # budget notification is not an incident, and a bot that is down cannot hear it).
  endpoint_channels = concat(local.channels, google_monitoring_notification_channel.bot_webhook[*].id)

  endpoint_filter = {
    for slug, id in var.endpoints :
    slug => "resource.type = \"aiplatform.googleapis.com/Endpoint\" AND resource.labels.endpoint_id = \"${id}\""
  }
}

resource "google_monitoring_alert_policy" "p95_latency" {
  for_each = var.endpoints

  project               = var.project_id
  display_name          = "[${var.environment}] ${each.key}: P95 prediction latency > ${var.p95_latency_ms} ms"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = local.endpoint_channels
  user_labels           = merge(var.labels, { endpoint = each.key, aiops_endpoint = each.key, threshold = "p95-latency" })

  conditions {
    display_name = "P95 latency above ${var.p95_latency_ms} ms for ${var.duration_seconds} s"

    condition_threshold {
      filter          = "${local.endpoint_filter[each.key]} AND metric.type = \"aiplatform.googleapis.com/prediction/online/prediction_latencies\"${var.latency_extra_filter}"
      comparison      = "COMPARISON_GT"
      threshold_value = var.p95_latency_ms
      duration        = "${var.duration_seconds}s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_PERCENTILE_95"
        group_by_fields      = ["resource.labels.endpoint_id"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "[P1] ${each.key} (${var.environment}) P95 latency above ${var.p95_latency_ms} ms"
    content   = <<-EOT
      P95 prediction latency of Vertex AI endpoint `${each.key}` (id ${each.value}, ${var.environment}) has been above ${var.p95_latency_ms} ms for ${var.duration_seconds} s.

      1. In Slack: `/aiops status ${each.key}` shows the deployed models, their traffic and replicas.
      2. If a canary or a new version started the regression: `/rollback ${each.key} reason="P95 above ${var.p95_latency_ms} ms"` (runs at once, announced).
      3. Otherwise check replicas and accelerator duty cycle (capacity) before scaling out.
    EOT
  }
}

resource "google_monitoring_alert_policy" "error_rate" {
  for_each = var.endpoints

  project               = var.project_id
  display_name          = "[${var.environment}] ${each.key}: error rate > ${var.error_rate * 100} %"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = local.endpoint_channels
  user_labels           = merge(var.labels, { endpoint = each.key, aiops_endpoint = each.key, threshold = "error-rate" })

  conditions {
    display_name = "errors / predictions above ${var.error_rate * 100} % for ${var.duration_seconds} s"

    condition_threshold {
      filter             = "${local.endpoint_filter[each.key]} AND metric.type = \"aiplatform.googleapis.com/prediction/online/error_count\""
      denominator_filter = "${local.endpoint_filter[each.key]} AND metric.type = \"aiplatform.googleapis.com/prediction/online/prediction_count\""
      comparison         = "COMPARISON_GT"
      threshold_value    = var.error_rate
      duration           = "${var.duration_seconds}s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.endpoint_id"]
      }

      denominator_aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.endpoint_id"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "[P1] ${each.key} (${var.environment}) error rate above ${var.error_rate * 100} %"
    content   = <<-EOT
      More than ${var.error_rate * 100} % of predictions on Vertex AI endpoint `${each.key}` (id ${each.value}, ${var.environment}) have failed for ${var.duration_seconds} s.

      1. In Slack: `/aiops status ${each.key}`; a canary in progress is rolled back by the bot's canary watch.
      2. Otherwise `/rollback ${each.key} reason="error rate above ${var.error_rate * 100} %"` restores the previous traffic split.
    EOT
  }
}

# The bot itself: /healthz over HTTPS from several locations, paging when it is down.
resource "google_monitoring_uptime_check_config" "bot" {
  count = var.bot_host != null ? 1 : 0

  project      = var.project_id
  display_name = "aiops-bot ${var.environment} /healthz"
  timeout      = "10s"
  period       = "300s"
  user_labels  = var.labels

  http_check {
    path         = "/healthz"
    port         = 443
    use_ssl      = true
    validate_ssl = true
  }

  monitored_resource {
    type = "uptime_url"
    labels = {
      project_id = var.project_id
      host       = var.bot_host
    }
  }
}

resource "google_monitoring_alert_policy" "bot_down" {
  count = var.bot_host != null ? 1 : 0

  project               = var.project_id
  display_name          = "[${var.environment}] aiops-bot /healthz failing"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.channels
  user_labels           = merge(var.labels, { threshold = "bot-uptime" })

  conditions {
    display_name = "uptime check failing"

    condition_threshold {
      filter          = "metric.type = \"monitoring.googleapis.com/uptime_check/check_passed\" AND resource.type = \"uptime_url\" AND metric.labels.check_id = \"${google_monitoring_uptime_check_config.bot[0].uptime_check_id}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1
      duration        = "600s"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_NEXT_OLDER"
        cross_series_reducer = "REDUCE_COUNT_FALSE"
        group_by_fields      = ["resource.labels.host"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "aiops-bot (${var.environment}) is not answering /healthz"
    content   = "The ChatOps bot is down: digests, approvals and canary watches are not running. Check the App Engine version's logs (`gcloud app logs tail --service=default`) and the instance's health."
  }
}
