variable "project_id" {
  description = "Project that owns the network."
  type        = string
}

variable "region" {
  description = "Region of the subnet, router and NAT (the approved region)."
  type        = string
}

variable "name" {
  description = "Network name; app.yaml's network.name must match it."
  type        = string
  default     = "aiops-bot"
}

variable "subnet_cidr" {
  description = "Primary range of the bot's subnet."
  type        = string
  default     = "10.20.0.0/24"
}

variable "private_services_prefix_length" {
  description = "Size of the private-services-access range Cloud SQL allocates from (/20 = 4096 addresses)."
  type        = number
  default     = 20
}
