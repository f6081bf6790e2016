"""Secrets by reference, read from a local stand-in for Secret Manager's REST API."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from bot.secrets import SecretError, resolve_secrets

SECRETS = {
    "projects/p1/secrets/slack-bot-token/versions/latest": "xoxb-from-secret-manager",
    "projects/p1/secrets/pd-prod/versions/latest": "pd-prod-routing-key\n",
    "projects/p1/secrets/aiops-alert-webhook-token/versions/latest": "webhook-token",
}


@pytest.fixture
def secret_manager() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            name = self.path.removeprefix("/v1/").removesuffix(":access")
            seen.append(name)
            if name not in SECRETS:
                self.send_response(404)
                self.end_headers()
                return
            body = json.dumps(
                {
                    "name": name,
                    "payload": {"data": base64.b64encode(SECRETS[name].encode()).decode()},
                }
            )
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def test_bare_id_resolves_in_the_project(secret_manager: tuple[str, list[str]]) -> None:
    url, seen = secret_manager
    env = {"SLACK_BOT_TOKEN_SECRET": "slack-bot-token", "GOOGLE_CLOUD_PROJECT": "p1"}
    assert resolve_secrets(env, session=requests.Session(), api=url) == ["SLACK_BOT_TOKEN"]
    assert env["SLACK_BOT_TOKEN"] == "xoxb-from-secret-manager"
    assert seen == ["projects/p1/secrets/slack-bot-token/versions/latest"]


def test_a_set_variable_wins_and_nothing_is_fetched(secret_manager: tuple[str, list[str]]) -> None:
    url, seen = secret_manager
    env = {"SLACK_BOT_TOKEN": "xoxb-env", "SLACK_BOT_TOKEN_SECRET": "slack-bot-token"}
    assert resolve_secrets(env, session=requests.Session(), api=url) == []
    assert env["SLACK_BOT_TOKEN"] == "xoxb-env" and seen == []


def test_missing_secret_is_a_clear_error_without_values(
    secret_manager: tuple[str, list[str]],
) -> None:
    url, _ = secret_manager
    env = {"SLACK_SIGNING_SECRET_SECRET": "projects/p1/secrets/nope/versions/1"}
    with pytest.raises(SecretError, match="HTTP 404") as err:
        resolve_secrets(env, session=requests.Session(), api=url)
    assert "SLACK_SIGNING_SECRET" in str(err.value)
    assert "SLACK_SIGNING_SECRET" not in env


def test_per_environment_keys_and_the_webhook_token_resolve_by_reference(
    secret_manager: tuple[str, list[str]],
) -> None:
    """`PAGERDUTY_ROUTING_KEY_<ENV>_SECRET` is found by its prefix (one per environment, no
    code change for a new one); the alert webhook's token is one of SECRET_VARS."""
    url, seen = secret_manager
    env = {
        "GOOGLE_CLOUD_PROJECT": "p1",
        "PAGERDUTY_ROUTING_KEY_PROD_SECRET": "pd-prod",
        "AIOPS_ALERT_WEBHOOK_TOKEN_SECRET": "aiops-alert-webhook-token",
        "PAGERDUTY_ROUTING_KEY_prod_SECRET": "pd-prod",  # lower case: not a variable we read
    }
    filled = resolve_secrets(env, session=requests.Session(), api=url)
    assert filled == ["AIOPS_ALERT_WEBHOOK_TOKEN", "PAGERDUTY_ROUTING_KEY_PROD"]
    assert env["PAGERDUTY_ROUTING_KEY_PROD"] == "pd-prod-routing-key"
    assert env["AIOPS_ALERT_WEBHOOK_TOKEN"] == "webhook-token"
    assert "PAGERDUTY_ROUTING_KEY_prod" not in env
    assert len(seen) == 2
