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
