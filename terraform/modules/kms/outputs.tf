output "key_ids" {
  description = "Key name => crypto key id (projects/P/locations/L/keyRings/R/cryptoKeys/K)."
  value       = { for k, v in google_kms_crypto_key.this : k => v.id }

  # Consumers must not use a key before its service agent may use it.
  depends_on = [google_kms_crypto_key_iam_member.users]
}
