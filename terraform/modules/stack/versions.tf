terraform {
  # 1.11+: write-only arguments and ephemeral resources (in cloud_sql and secrets); 1.9+: input
  # validations that refer to other variables (region against allowed_regions).
  required_version = ">= 1.11.0"
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
}
