output "bucket_name" {
  description = "The 7-year audit bucket."
  value       = google_storage_bucket.audit.name
}

output "sink_writer_identity" {
  description = "Identity the sink writes as."
  value       = google_logging_project_sink.audit.writer_identity
}

output "log_name" {
  description = "Log name the bot must write its audit copy to."
  value       = var.log_name
}
