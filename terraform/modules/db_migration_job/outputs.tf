output "name" {
  description = "Job name, for `gcloud run jobs update/execute`."
  value       = google_cloud_run_v2_job.this.name
}

output "service_account_email" {
  description = "The job's identity (aiops-db-migrator)."
  value       = google_service_account.migrator.email
}
