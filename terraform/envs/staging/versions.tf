terraform {
  # 1.11+: write-only arguments and ephemeral resources keep the generated database password and
  # PII key out of plans and state.
  required_version = ">= 1.11.0, < 2.0.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }

  # State lives in a GCS bucket created once by hand (docs/deploy.md step 2): versioned, uniform
  # access, CMEK, in the approved region. Given at init:
  #   terraform init -backend-config="bucket=BUCKET" -backend-config="prefix=aiops-bot/ENVIRONMENT"
  backend "gcs" {}
}

provider "google" {
  project               = var.project_id
  region                = local.region
  user_project_override = true # the Billing Budgets API bills quota to this project
  billing_project       = var.project_id
  default_labels        = local.default_labels
}

provider "google-beta" {
  project               = var.project_id
  region                = local.region
  user_project_override = true
  billing_project       = var.project_id
  default_labels        = local.default_labels
}

locals {
  default_labels = {
    app         = "aiops-bot"
    environment = local.environment
    managed-by  = "terraform"
  }
}
