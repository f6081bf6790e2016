# Seven-year copy of the bot's audit log (log name `aiops-audit`): a log sink exports every
# entry to a Cloud Storage bucket in the approved region whose retention policy is LOCKED, so
# that no one - an administrator, Terraform, Google support - can delete or overwrite an entry
# before it is seven years old. The database's hash-chained audit table is the working copy;
# this bucket is the record of last resort that auditors (APRA CPS 234, SOC 2) can rely on.
#
# Locking is irreversible: once applied with lock_retention_policy = true, the bucket (and the
# project, through a lien) cannot be deleted until every object has aged out.

locals {
  # 7 years of 365 days plus the 2 leap days any 7-year span can contain: 2557 days.
  seven_years_seconds = 2557 * 24 * 60 * 60
}

resource "google_storage_bucket" "audit" {
  # checkov:skip=CKV_GCP_78:Object Versioning cannot be enabled together with a bucket retention policy (GCS makes them mutually exclusive); the locked retention policy is the stronger control: no object can be deleted or replaced for 7 years.
  # checkov:skip=CKV_GCP_62:Access to this bucket is recorded by Cloud Audit Logs Data Access logs for storage.googleapis.com (google_project_iam_audit_config below), which Google recommends over usage logs and which need no second bucket.
  project                     = var.project_id
  name                        = var.bucket_name
  location                    = upper(var.region)
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = var.labels

  versioning {
    enabled = false
  }

  retention_policy {
    is_locked        = var.lock_retention_policy
    retention_period = local.seven_years_seconds
  }

  encryption {
    default_kms_key_name = var.kms_key_name
  }

  # Audit exports are written once and rarely read: move them to cheaper classes as they age.
  lifecycle_rule {
    condition {
      age = 90
    }
    action {
      type          = "SetStorageClass"
      storage_class = "COLDLINE"
    }
  }

  lifecycle_rule {
    condition {
      age = 365
    }
    action {
      type          = "SetStorageClass"
      storage_class = "ARCHIVE"
    }
  }
}

resource "google_logging_project_sink" "audit" {
  project                = var.project_id
  name                   = var.sink_name
  description            = "aiops-bot audit log (${var.log_name}) to the locked 7-year bucket."
  destination            = "storage.googleapis.com/${google_storage_bucket.audit.name}"
  filter                 = "logName=\"projects/${var.project_id}/logs/${var.log_name}\""
  unique_writer_identity = true
}

# The sink's own identity may only create objects (no read, no delete) in this bucket.
resource "google_storage_bucket_iam_member" "sink_writer" {
  bucket = google_storage_bucket.audit.name
  role   = "roles/storage.objectCreator"
  member = google_logging_project_sink.audit.writer_identity
}

resource "google_storage_bucket_iam_member" "readers" {
  for_each = var.readers

  bucket = google_storage_bucket.audit.name
  role   = "roles/storage.objectViewer"
  member = each.value
}

# Data Access audit logs for the services that hold RESTRICTED data or keys: who read which
# object, secret or key, and who changed the database's settings.
resource "google_project_iam_audit_config" "data_access" {
  for_each = toset(var.data_access_audit_services)

  project = var.project_id
  service = each.value

  audit_log_config {
    log_type = "ADMIN_READ"
  }

  audit_log_config {
    log_type = "DATA_READ"
  }

  audit_log_config {
    log_type = "DATA_WRITE"
  }
}
