output "notification_channels" {
  description = "Notification channel ids (the budget notifies them too)."
  value       = local.channels
}

output "alert_policies" {
  description = "Alert policy names by endpoint slug and threshold, for the bot's config."
  value = {
    for slug in keys(var.endpoints) : slug => {
      p95_latency = google_monitoring_alert_policy.p95_latency[slug].name
      error_rate  = google_monitoring_alert_policy.error_rate[slug].name
    }
  }
}

output "dashboard_url" {
  description = "The environment's endpoint dashboard in the Cloud console (for the bot's config and the runbooks)."
  value       = "https://console.cloud.google.com/monitoring/dashboards/custom/${basename(google_monitoring_dashboard.endpoints.id)}?project=${var.project_id}"
}
