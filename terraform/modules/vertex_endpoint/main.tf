# One Vertex AI endpoint in the approved region, encrypted with a CMEK.
#
# Who owns the traffic split is a per-environment choice (var.traffic_split_owner):
#
# - "bot" (default): aiops-bot owns the split. Deploy / promote / rollback from Slack change it
#   through the Vertex AI API, and Terraform ignores it (lifecycle.ignore_changes), so the next
#   `terraform apply` never undoes a promotion.
# - "terraform": the split is code. Teams that promote by pull request set var.traffic_split
#   (deployed-model id => percent) and `terraform apply` enforces it; the bot's /promote then
#   only reports the drift.
#
# A lifecycle block cannot be conditional, so the two modes are two resources selected with
# count. Switching an existing endpoint from one mode to the other is a state move, not a
# replacement (terraform/README.md shows the command):
#   terraform state mv 'module.endpoint["slug"].google_vertex_ai_endpoint.bot_owned[0]' \
#                      'module.endpoint["slug"].google_vertex_ai_endpoint.terraform_owned[0]'

resource "google_vertex_ai_endpoint" "bot_owned" {
  # checkov:skip=CKV2_GCP_33:A VPC-peered private endpoint does not support the traffic splitting that the bot's canaries, promotions and rollbacks rely on. Callers reach predictions through the Vertex AI API authorised by IAM (aiplatform.endpoints.predict, which the bot itself does not hold); restrict the network path with an organisation-level VPC Service Controls perimeter.
  count = var.traffic_split_owner == "bot" ? 1 : 0

  project      = var.project_id
  location     = var.region
  name         = var.endpoint_id
  display_name = var.display_name
  description  = var.description
  labels       = var.labels

  encryption_spec {
    kms_key_name = var.kms_key_name
  }

  lifecycle {
    # aiops-bot owns the split in this mode: never revert a promotion or rollback.
    ignore_changes = [traffic_split]

    precondition {
      condition     = length(var.traffic_split) == 0
      error_message = "traffic_split is owned by aiops-bot for this endpoint (traffic_split_owner = \"bot\"): promote from Slack, or switch the environment to traffic_split_owner = \"terraform\"."
    }
  }
}

resource "google_vertex_ai_endpoint" "terraform_owned" {
  # checkov:skip=CKV2_GCP_33:A VPC-peered private endpoint does not support the traffic splitting that the bot's canaries, promotions and rollbacks rely on. Callers reach predictions through the Vertex AI API authorised by IAM (aiplatform.endpoints.predict, which the bot itself does not hold); restrict the network path with an organisation-level VPC Service Controls perimeter.
  count = var.traffic_split_owner == "terraform" ? 1 : 0

  project      = var.project_id
  location     = var.region
  name         = var.endpoint_id
  display_name = var.display_name
  description  = var.description
  labels       = var.labels

  # Empty map = leave the split as the deployments left it (Terraform cannot deploy models;
  # a split can only name deployed-model ids that already serve on this endpoint).
  traffic_split = length(var.traffic_split) > 0 ? jsonencode(var.traffic_split) : null

  encryption_spec {
    kms_key_name = var.kms_key_name
  }
}

locals {
  endpoint = one(concat(google_vertex_ai_endpoint.bot_owned, google_vertex_ai_endpoint.terraform_owned))
}
