"""The floor: a bare Bolt `AsyncApp` whose listeners only ack, behind the async
Starlette adapter under uvicorn (the fastest stack measured for a Bolt app: see bench/README.md), in its own process:
`python -m bench.floor_app PORT API_BASE_URL [--inline]`.

Bolt's default (`process_before_response=False`) runs the listener as a task and polls
for the ack every 10 ms; `--inline` sets `process_before_response=True`, as the bot does,
so the response goes as soon as the listener has acked: the floor for that choice."""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.support.wire import BOT_TOKEN, SIGNING_SECRET


def build(api_base_url: str, inline: bool = False) -> Starlette:
    app = AsyncApp(
        client=AsyncWebClient(token=BOT_TOKEN, base_url=api_base_url),
        signing_secret=SIGNING_SECRET,
        process_before_response=inline,
    )

    async def only_ack(ack: AsyncAck, **_: Any) -> None:
        await ack()

    for name in ("/aiops", "/deploy", "/promote", "/rollback"):
        app.command(name)(only_ack)
    app.action("approve")(only_ack)
    app.action("reject")(only_ack)
    handler = AsyncSlackRequestHandler(app)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/slack/events", events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


if __name__ == "__main__":
    uvicorn.run(
        build(sys.argv[2], inline="--inline" in sys.argv[3:]),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
    )
