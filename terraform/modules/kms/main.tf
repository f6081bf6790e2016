# Customer-managed encryption keys (CMEK) in the approved region, one per data store, so that
# RESTRICTED data (audit rows, secrets, model endpoints) is encrypted with keys the lender
# controls, rotates and can revoke. Keys cannot be destroyed by Terraform.

resource "google_kms_key_ring" "this" {
  project  = var.project_id
  name     = var.name
  location = var.region
}

resource "google_kms_crypto_key" "this" {
  for_each = var.keys

  name            = each.key
  key_ring        = google_kms_key_ring.this.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = var.rotation_period
  labels          = var.labels

  version_template {
    algorithm        = "GOOGLE_SYMMETRIC_ENCRYPTION"
    protection_level = var.protection_level
  }

  lifecycle {
    prevent_destroy = true
  }
}

locals {
  # "key/label" => { key, member }. Keyed by static labels, never by member e-mails, so that
  # for_each is known at plan time even when a service agent's e-mail is not yet.
  grants = merge([
    for key, members in var.keys : {
      for label, member in members : "${key}/${label}" => { key = key, member = member }
    }
  ]...)
}

resource "google_kms_crypto_key_iam_member" "users" {
  for_each = local.grants

  crypto_key_id = google_kms_crypto_key.this[each.value.key].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = each.value.member
}
