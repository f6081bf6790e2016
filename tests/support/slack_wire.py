"""Signed requests in Slack's wire format, and a served bot to send them to."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import uvicorn

from tests.support.processes import free_port
from tests.support.wire import (
    action_body,
    home_action_body,
    home_opened_body,
    signature,
    slash_body,
    view_action_body,
    view_submission_body,
)

__all__ = [
    "SIGNING_SECRET",
    "Served",
    "action_body",
    "free_port",
    "home_action_body",
    "home_opened_body",
    "sign",
    "slash_body",
    "view_action_body",
    "view_submission_body",
]

SIGNING_SECRET = "test-signing-secret"  # a test value, not a credential


def sign(body: str, timestamp: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
    return signature(body, secret, timestamp)


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

    def post(
        self, body: str, headers: dict[str, str] | None = None, *, json: bool = False
    ) -> httpx.Response:
        """A signed request; `json` for an Events API callback (Slack posts those as JSON)."""
        h = {"content-type": "application/json" if json else "application/x-www-form-urlencoded"}
        h.update(sign(body) if headers is None else headers)
        return self.client.post("/slack/events", content=body, headers=h)

    def close(self) -> None:
        self.client.close()
        self.server.should_exit = True
        self.thread.join(10)
