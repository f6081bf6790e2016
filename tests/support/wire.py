"""Slack's wire format: signed slash commands and button clicks, as Slack sends them.
The tests (`tests/support/slack_wire.py`) and the benchmarks both build their requests here."""

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


def signature(body: str, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Slack's request signature headers for `body` (v0, HMAC-SHA256 of the timestamp and
    the body with the signing secret)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"x-slack-request-timestamp": ts, "x-slack-signature": f"v0={digest}"}


def sign(body: str, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """All the headers of a signed form post (what a load generator sends)."""
    return {"content-type": "application/x-www-form-urlencoded", **signature(body, secret)}


def slash_body(
    command: str,
    text: str,
    user_id: str,
    user_name: str,
    response_url: str,
    team_id: str = TEAM,
) -> str:
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": team_id,
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


def action_body(
    action_id: str,
    value: str,
    user_id: str,
    user_name: str,
    response_url: str,
    channel: str = "C0APPROVALS",
    message_ts: str = "1001.000100",
    team_id: str = TEAM,
) -> str:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": "A0AIOPS",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": f"{time.time_ns()}.trigger",
        "team": {"id": team_id, "domain": "lender"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "approvals"},
        "message": {"type": "message", "ts": message_ts, "text": "plan", "blocks": []},
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


def event_body(event: dict[str, Any], event_id: str | None = None, team_id: str = TEAM) -> str:
    """An Events API callback as Slack posts it (JSON): `event` in its envelope."""
    return json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": team_id,
            "api_app_id": "A0AIOPS",
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{time.time_ns()}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": team_id,
                    "user_id": "U0BOT",
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
    )


def home_opened_body(
    user_id: str, tab: str = "home", event_id: str | None = None, team_id: str = TEAM
) -> str:
    """`app_home_opened`: someone opened the bot's Home tab (or its Messages tab)."""
    event = {
        "type": "app_home_opened",
        "user": user_id,
        "channel": f"D{user_id[1:]}",
        "tab": tab,
        "event_ts": f"{time.time():.6f}",
    }
    return event_body(event, event_id, team_id)


def home_action_body(
    action_id: str, value: str, user_id: str, user_name: str, team_id: str = TEAM
) -> str:
    """A button clicked on the Home tab: a view, so no channel and no response URL."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": "A0AIOPS",
        "token": "legacy-verification-token",
        "container": {"type": "view", "view_id": "V0HOME"},
        "trigger_id": f"{time.time_ns()}.trigger",
        "team": {"id": team_id, "domain": "lender"},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": {
            "id": "V0HOME",
            "team_id": team_id,
            "type": "home",
            "blocks": [],
            "private_metadata": "",
            "callback_id": "",
            "state": {"values": {}},
            "hash": "1700000000.abcdef",
            "app_id": "A0AIOPS",
            "external_id": "",
            "app_installed_team_id": team_id,
            "bot_id": "B0BOT",
        },
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


def _person(user_id: str, user_name: str, team_id: str) -> dict[str, Any]:
    return {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id}


def _opened(view: dict[str, Any], values: dict[str, Any], view_id: str) -> dict[str, Any]:
    """A view as Slack sends it back in an interaction: what the app opened, with its id,
    hash and the state of its inputs (`state.values[block_id][action_id]`)."""
    return {
        **view,
        "id": view_id,
        "team_id": TEAM,
        "app_id": "A0AIOPS",
        "bot_id": "B0BOT",
        "root_view_id": view_id,
        "previous_view_id": None,
        "hash": f"{time.time_ns()}.hash",
        "private_metadata": view.get("private_metadata", ""),
        "state": {"values": values},
    }


def view_action_body(
    view: dict[str, Any],
    block_id: str,
    action_id: str,
    selected: str,
    user_id: str,
    user_name: str,
    values: dict[str, Any] | None = None,
    view_id: str = "V0FORM",
    team_id: str = TEAM,
) -> str:
    """A `block_actions` from a static select inside a modal (`container.type: view`):
    no response URL, the view with its id, hash and state."""
    option = {"text": {"type": "plain_text", "text": selected}, "value": selected}
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _person(user_id, user_name, team_id),
        "api_app_id": "A0AIOPS",
        "token": "legacy-verification-token",
        "container": {"type": "view", "view_id": view_id},
        "trigger_id": f"{time.time_ns()}.trigger",
        "team": {"id": team_id, "domain": "lender"},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": _opened(view, values or {}, view_id),
        "actions": [
            {
                "type": "static_select",
                "action_id": action_id,
                "block_id": block_id,
                "selected_option": option,
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


def view_submission_body(
    view: dict[str, Any],
    values: dict[str, Any],
    user_id: str,
    user_name: str,
    view_id: str = "V0FORM",
    team_id: str = TEAM,
) -> str:
    """A `view_submission`: the modal's `state.values[block_id][action_id]` holds each
    input's `selected_option`, `value`, `selected_date` or `selected_time`."""
    payload: dict[str, Any] = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": "lender"},
        "user": _person(user_id, user_name, team_id),
        "api_app_id": "A0AIOPS",
        "token": "legacy-verification-token",
        "trigger_id": f"{time.time_ns()}.trigger",
        "view": _opened(view, values, view_id),
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return urlencode({"payload": json.dumps(payload)})
