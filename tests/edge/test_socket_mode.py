"""Socket Mode: the same Bolt app, reached over a WebSocket as Slack's Socket Mode sends
envelopes. `apps.connections.open` goes to the Slack stub, which hands out the URL of a
local WebSocket server playing Slack's side."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.serve.server import socket_mode_handler
from bot.slack.app import build_app
from bot.slack.notifier import SlackNotifier
from commands.model import ChangeState
from commands.service import Service
from tests.support.harness import FakeClock, SlackStub, make_runtime
from tests.support.slack_wire import free_port


class FakeSocketSlack:
    """Slack's end of a Socket Mode connection: says hello, sends envelopes, collects acks."""

    def __init__(self) -> None:
        self.port = free_port()
        self.acks: list[dict[str, Any]] = []
        self.connected = threading.Event()
        self.outbox: asyncio.Queue[dict[str, Any]] | None = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> None:
        self.outbox = asyncio.Queue()
        app = web.Application()
        app.router.add_get("/link", self._ws)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str(
            json.dumps(
                {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0AIOPS"}}
            )
        )
        self.connected.set()

        async def sender() -> None:
            assert self.outbox is not None
            while True:
                envelope = await self.outbox.get()
                await ws.send_str(json.dumps(envelope))

        task = asyncio.create_task(sender())
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                self.acks.append(json.loads(msg.data))
        task.cancel()
        return ws

    def send(self, envelope: dict[str, Any]) -> None:
        assert self.outbox is not None
        asyncio.run_coroutine_threadsafe(self.outbox.put(envelope), self.loop).result(5)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def socket_slack() -> Iterator[FakeSocketSlack]:
    fake = FakeSocketSlack()
    yield fake
    fake.close()


def test_slash_command_over_socket_mode(
    sqlite_engine: Engine, socket_slack: FakeSocketSlack
) -> None:
    stub = SlackStub()
    stub.answers["apps.connections.open"] = {"ok": True, "url": socket_slack.url}
    rt = make_runtime(
        sqlite_engine, FakeClock(), SlackNotifier(WebClient(token="xoxb-t", base_url=stub.api_url))
    )
    service = Service(rt)
    bolt = build_app(
        service,
        bot_token="xoxb-t",
        signing_secret="unused",
        api_base_url=stub.api_url,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def make() -> Any:  # the client's aiohttp session belongs to this loop
        return socket_mode_handler(bolt, "xapp-test")

    handler = asyncio.run_coroutine_threadsafe(make(), loop).result(5)
    try:
        asyncio.run_coroutine_threadsafe(handler.connect_async(), loop).result(15)
        assert socket_slack.connected.wait(10)
        socket_slack.send(
            {
                "envelope_id": "env-1",
                "type": "slash_commands",
                "accepts_response_payload": True,
                "payload": {
                    "token": "legacy",
                    "team_id": "T0AIOPS",
                    "team_domain": "lender",
                    "channel_id": "C0OPS",
                    "channel_name": "ml-ops",
                    "user_id": "U0ALICE",
                    "user_name": "alice",
                    "command": "/deploy",
                    "text": "loan-assessor-stg gemma-3-1b-it@1.2.1 canary=20",
                    "api_app_id": "A0AIOPS",
                    "is_enterprise_install": "false",
                    "response_url": stub.url + "/respond/sm",
                    "trigger_id": "1.trigger",
                },
            }
        )
        stub.wait_for(lambda: any(a.get("envelope_id") == "env-1" for a in socket_slack.acks))
        stub.wait_for(lambda: bool(stub.responded("respond/sm")))
        rt.background.wait_idle()
        change = rt.store.list_changes(limit=1)[0]
        assert change.state is ChangeState.SUCCEEDED
        assert change.requester_id == "U0ALICE"
        assert "CHG-1" in stub.responded("respond/sm")[0]["text"]
    finally:
        asyncio.run_coroutine_threadsafe(handler.close_async(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        stub.close()
