output "network_id" {
  description = "VPC id (projects/P/global/networks/N), for Cloud SQL's private_network."
  value       = google_compute_network.this.id
}

output "network_name" {
  description = "VPC name, for app.yaml network.name."
  value       = google_compute_network.this.name
}

output "subnetwork_name" {
  description = "Subnet name, for app.yaml network.subnetwork_name."
  value       = google_compute_subnetwork.this.name
}

output "subnetwork_id" {
  description = "Subnet id, for Cloud Run Direct VPC egress (the migration job)."
  value       = google_compute_subnetwork.this.id
}

output "private_services_connection" {
  description = "The private-services-access peering (Cloud SQL depends on it)."
  value       = google_service_networking_connection.private_services.id
}
