"""Signed requests in Slack's wire format, and a served bot to send them to."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import uvicorn

SIGNING_SECRET = "test-signing-secret"  # a test value, not a credential


def sign(body: str, timestamp: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = f"v0:{ts}:{body}".encode()
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"x-slack-request-timestamp": ts, "x-slack-signature": f"v0={digest}"}


def slash_body(
    command: str,
    text: str,
    user_id: str,
    user_name: str,
    response_url: str,
    team_id: str = "T0AIOPS",
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
    team_id: str = "T0AIOPS",
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """An ASGI app under uvicorn on loopback, in a thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def post(self, body: str, headers: dict[str, str] | None = None) -> httpx.Response:
        h = {"content-type": "application/x-www-form-urlencoded"}
        h.update(sign(body) if headers is None else headers)
        return self.client.post("/slack/events", content=body, headers=h)

    def close(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(10)
