output "name" {
  description = "Job name, for `gcloud run jobs update/execute`."
  value       = google_cloud_run_v2_job.this.name
}
