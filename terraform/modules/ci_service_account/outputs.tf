output "email" {
  description = "Deployer service account e-mail (GitHub variable GCP_DEPLOYER_SA_<ENV>)."
  value       = google_service_account.deployer.email
}

output "workload_identity_provider" {
  description = "Full provider name for google-github-actions/auth (GitHub variable GCP_WIF_PROVIDER_<ENV>)."
  value       = google_iam_workload_identity_pool_provider.github.name
}

output "pool_name" {
  description = "projects/NUMBER/locations/global/workloadIdentityPools/POOL (principal prefix)."
  value       = google_iam_workload_identity_pool.github.name
}
