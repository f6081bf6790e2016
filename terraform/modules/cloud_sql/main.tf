# Cloud SQL for PostgreSQL: the audit store and the bot's state (changes, approvals, locks).
#
# - Private IP only (no public IP, no authorised networks), reachable from the bot's VPC.
# - TLS required for every connection (ssl_mode = ENCRYPTED_ONLY; the DSN says sslmode=require).
# - Automated daily backups kept in the approved region, point-in-time recovery, deletion
#   protection both in Terraform and in the Cloud SQL API.
# - CMEK encryption; the flags a security review asks for (connection, lock-wait, checkpoint
#   and error logging, pgAudit for DDL and role changes, no statement text in logs because
#   statements can carry PII).
# - Two logins. The migration owner (`aiops_owner`, built-in, in Cloud SQL's superuser role)
#   owns every table; its password is generated write-only and goes only to Cloud SQL and to
#   the owner's DSN secret, which only the migration job's identity may read. The bot runs as
#   the Cloud SQL IAM user of its service account: no password (a token per connection), no
#   privilege of its own; the migrations make it a member of `aiops_runtime`, which holds only
#   SELECT and INSERT on the audit tables (docs/cloud-sql-roles.md), so append-only holds
#   against the bot's own credentials.

resource "google_sql_database_instance" "this" {
  # checkov:skip=CKV_GCP_6:TLS is required on every connection (ssl_mode = ENCRYPTED_ONLY, the issue's requirement). TRUSTED_CLIENT_CERTIFICATE_REQUIRED would add client certificates, whose long-lived private key Terraform would have to store in state and ship to the app; the bot authenticates with a write-only generated password over TLS on a private IP instead.
  project             = var.project_id
  name                = var.name
  region              = var.region
  database_version    = var.database_version
  encryption_key_name = var.kms_key_name
  deletion_protection = true

  settings {
    tier                        = var.tier
    edition                     = var.edition
    availability_type           = var.availability_type
    disk_type                   = "PD_SSD"
    disk_size                   = var.disk_size_gb
    disk_autoresize             = true
    deletion_protection_enabled = true
    user_labels                 = var.labels

    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = var.network_id
      ssl_mode                                      = "ENCRYPTED_ONLY"
      enable_private_path_for_google_cloud_services = false
    }

    backup_configuration {
      enabled                        = true
      start_time                     = var.backup_start_time
      location                       = var.region
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = 7

      backup_retention_settings {
        retained_backups = var.retained_backups
        retention_unit   = "COUNT"
      }
    }

    maintenance_window {
      day          = 7  # Sunday
      hour         = 16 # 16:00 UTC = 02:00 / 03:00 in Sydney
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      query_string_length     = 1024
      record_application_tags = false
      record_client_address   = false
    }

    password_validation_policy {
      enable_password_policy      = true
      min_length                  = 32
      complexity                  = "COMPLEXITY_DEFAULT"
      disallow_username_substring = true
    }

    # Flags a security review expects. Statement text is never logged (it can carry PII):
    # log_min_duration_statement = -1, log_statement = ddl, pgAudit limited to DDL and role
    # changes without parameters. Durations are logged without the statement.
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_messages"
      value = "warning"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }
    database_flags {
      name  = "pgaudit.log_parameter"
      value = "off"
    }
    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }
  }

  lifecycle {
    prevent_destroy = true
  }
}

resource "google_sql_database" "this" {
  project         = var.project_id
  name            = var.database_name
  instance        = google_sql_database_instance.this.name
  deletion_policy = "ABANDON"
}

# The migration owner. Its password is ephemeral: generated at apply time, written to Cloud SQL
# and to the owner's DSN secret, and forgotten. Bump var.password_version to rotate both.
# Only URL-unreserved punctuation, so the password needs no escaping inside the DSN; the mix
# satisfies the instance's password policy (COMPLEXITY_DEFAULT).
ephemeral "random_password" "owner" {
  length           = 40
  special          = true
  override_special = "-_.~"
  min_lower        = 4
  min_upper        = 4
  min_numeric      = 4
  min_special      = 2
}

resource "google_sql_user" "owner" {
  project             = var.project_id
  name                = var.owner_user_name
  instance            = google_sql_database_instance.this.name
  type                = "BUILT_IN"
  password_wo         = ephemeral.random_password.owner.result
  password_wo_version = var.password_version
  deletion_policy     = "ABANDON"
}

resource "google_secret_manager_secret_version" "owner_database_url" {
  secret                 = var.owner_database_url_secret_id
  secret_data_wo         = "postgresql+psycopg://${google_sql_user.owner.name}:${ephemeral.random_password.owner.result}@${google_sql_database_instance.this.private_ip_address}:5432/${google_sql_database.this.name}?sslmode=require"
  secret_data_wo_version = var.password_version
}

# The bot's login: the IAM database user of its service account (user name = the email without
# `.gserviceaccount.com`). Cloud SQL creates the PostgreSQL role with no privileges; the
# migrations grant it `aiops_runtime` (AIOPS_DB_RUNTIME_ROLE on the migration job).
resource "google_sql_user" "runtime" {
  project         = var.project_id
  name            = local.runtime_user
  instance        = google_sql_database_instance.this.name
  type            = "CLOUD_IAM_SERVICE_ACCOUNT"
  deletion_policy = "ABANDON"
}

locals {
  runtime_user = trimsuffix(var.runtime_service_account_email, ".gserviceaccount.com")
}

# The bot's DATABASE_URL: no password in it (AIOPS_DB_IAM_AUTH=1 makes the bot present an
# access token per connection), so nothing secret; kept in Secret Manager beside the others.
resource "google_secret_manager_secret_version" "database_url" {
  secret                 = var.database_url_secret_id
  secret_data_wo         = "postgresql+psycopg://${urlencode(google_sql_user.runtime.name)}@${google_sql_database_instance.this.private_ip_address}:5432/${google_sql_database.this.name}?sslmode=require"
  secret_data_wo_version = var.password_version
}
