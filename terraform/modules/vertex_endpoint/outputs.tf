output "id" {
  description = "Full resource name: projects/P/locations/L/endpoints/ID."
  value       = local.endpoint.id
}

output "endpoint_id" {
  description = "Numeric endpoint id (the alert policies' resource.labels.endpoint_id)."
  value       = var.endpoint_id
}

output "traffic_split_owner" {
  description = "\"bot\" or \"terraform\"."
  value       = var.traffic_split_owner
}
