"""The Terraform for production, read as text (no terraform binary runs in the tests; CI
validates it): the dashboard draws every endpoint's P95, errors, requests by deployed model, replicas and duty cycle with the paging thresholds, the bot's
database login is an IAM user outside `cloudsqlsuperuser`, the migration job runs as the
owner under its own identity, and only that identity reads the owner's DSN."""

from __future__ import annotations

import re
from pathlib import Path

MODULES = Path(__file__).resolve().parents[2] / "terraform" / "modules"


def read(path: str) -> str:
    return (MODULES / path).read_text()


def test_the_dashboard_has_every_chart_with_the_thresholds_drawn() -> None:
    tf = read("monitoring/dashboard.tf")
    assert 'resource "google_monitoring_dashboard" "endpoints"' in tf
    for metric in (
        "prediction_latencies",
        "error_count",
        "prediction_count",
        "replicas",
        "accelerator/duty_cycle",
    ):
        assert f"/{metric}" in tf, metric
    assert "REDUCE_PERCENTILE_95" in tf and "timeSeriesFilterRatio" in tf
    assert "metric.labels.deployed_model_id" in tf  # requests by deployed model
    assert "value      = var.p95_latency_ms" in tf and "value      = var.error_rate" in tf
    for root in ("dev", "staging", "prod"):
        outputs = (MODULES.parent / "envs" / root / "outputs.tf").read_text()
        assert 'output "dashboard_url"' in outputs


def test_the_bot_logs_in_as_an_iam_user_and_migrations_run_as_the_owner() -> None:
    sql = read("cloud_sql/main.tf")
    runtime = re.search(r'resource "google_sql_user" "runtime" \{(.*?)\n\}', sql, re.S)
    assert runtime and 'type            = "CLOUD_IAM_SERVICE_ACCOUNT"' in runtime.group(1)
    owner = re.search(r'resource "google_sql_user" "owner" \{(.*?)\n\}', sql, re.S)
    assert owner and '"BUILT_IN"' in owner.group(1) and "password_wo" in owner.group(1)
    job = read("db_migration_job/main.tf")
    assert "service_account = google_service_account.migrator.email" in job
    assert "secret  = var.owner_database_url_secret_id" in job
    assert 'name  = "AIOPS_DB_RUNTIME_ROLE"' in job
    stack = read("stack/main.tf")
    assert 'not_for_accessors = ["aiops-database-owner-url"]' in stack
    assert "roles/cloudsql.instanceUser" in read("bot_service_account/main.tf")
    app = (MODULES.parent.parent / "app.yaml").read_text()
    assert 'AIOPS_DB_IAM_AUTH: "1"' in app


def test_alerts_reach_the_bot_through_a_basic_auth_webhook_whose_password_is_never_stored() -> None:
    monitoring = read("monitoring/main.tf")
    channel = re.search(
        r'resource "google_monitoring_notification_channel" "bot_webhook" \{(.*?)\n\}',
        monitoring,
        re.S,
    )
    assert channel, "no webhook channel to the bot"
    body = channel.group(1)
    # webhook_tokenauth would hold the token in its url label: in the state and request logs
    assert 'type         = "webhook_basicauth"' in body
    assert "password_wo         = ephemeral.google_secret_manager_secret_version" in body
    assert "password_wo_version = var.bot_webhook.rotation" in body
    assert "password " not in body and "auth_token" not in body
    assert 'ephemeral "google_secret_manager_secret_version" "bot_webhook"' in monitoring
    # on the endpoint policies, not on the bot's own uptime policy (nor the budget)
    for policy, channels in (
        ("p95_latency", "local.endpoint_channels"),
        ("error_rate", "local.endpoint_channels"),
        ("bot_down", "local.channels"),
    ):
        block = re.search(
            rf'resource "google_monitoring_alert_policy" "{policy}" \{{(.*?)\n\}}', monitoring, re.S
        )
        assert block and f"notification_channels = {channels}" in block.group(1), policy
    assert "aiops_endpoint = each.key" in monitoring  # the bot maps the alert by this label

    stack = read("stack/main.tf")
    assert '"aiops-alert-webhook-token" = var.alert_webhook_token_version' in stack  # generated
    assert '"aiops-pagerduty-routing-key"' in stack  # a container; a person adds the key
    assert '/alerts/cloud-monitoring"' in stack
    assert 'token_version = module.secrets.generated_versions["aiops-alert-webhook-token"]' in stack
    app = (MODULES.parent.parent / "app.yaml").read_text()
    assert "  AIOPS_ALERT_WEBHOOK_TOKEN_SECRET: aiops-alert-webhook-token" in app
    assert "\n  PAGERDUTY_ROUTING_KEY_" not in app  # only once the key exists (else no start)
