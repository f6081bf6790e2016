"""Slack's wire format, minimal: signed slash commands and button clicks (as in
`tests/slack_wire.py`, copied so the benchmarks do not import the tests)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

SIGNING_SECRET = "bench-signing-secret"  # a benchmark value, not a credential
BOT_TOKEN = "xoxb-bench"  # likewise
TEAM = "T0AIOPS"


def sign(body: str, secret: str = SIGNING_SECRET) -> dict[str, str]:
    ts = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": f"v0={digest}",
    }


def slash_body(command: str, text: str, user_id: str, user_name: str, response_url: str) -> str:
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": TEAM,
            "team_domain": "lender",
            "channel_id": "C0OPS",
            "channel_name": "ml-ops",
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": "A0AIOPS",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": f"{time.time_ns()}.trigger",
        }
    )


def action_body(action_id: str, value: str, user_id: str, user_name: str, response_url: str) -> str:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": TEAM},
        "api_app_id": "A0AIOPS",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": "1001.000100",
            "channel_id": "C0APPROVALS",
            "is_ephemeral": False,
        },
        "trigger_id": f"{time.time_ns()}.trigger",
        "team": {"id": TEAM, "domain": "lender"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": "C0APPROVALS", "name": "approvals"},
        "message": {"type": "message", "ts": "1001.000100", "text": "plan", "blocks": []},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": "change_actions",
                "value": value,
                "type": "button",
                "text": {"type": "plain_text", "text": action_id.title()},
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})
