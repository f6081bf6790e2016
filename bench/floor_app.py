"""The floor: a bare Bolt `AsyncApp` whose listeners only ack, behind the async
Starlette adapter under uvicorn (the fastest stack measured for a Bolt app: see bench/README.md), in its own process:
`python -m bench.floor_app PORT API_BASE_URL [--inline] [--durable CONNINFO]`.

Bolt's default (`process_before_response=False`) runs the listener as a task and polls
for the ack every 10 ms; `--inline` sets `process_before_response=True`, as the bot does,
so the response goes as soon as the listener has acked: the floor for that choice.

`--durable CONNINFO` (with `--inline`): before it acks, each listener commits one row
holding the request (command or action, user, text) to PostgreSQL at CONNINFO (table
`floor_requests`, made if absent), one INSERT in autocommit on a psycopg pool of at most
8 connections, as the bot's queue has: "floor-durable", the least any ack that is durable
before it leaves can cost (the commit's WAL flush), with none of the bot's work."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.support.wire import BOT_TOKEN, SIGNING_SECRET

TABLE = """CREATE TABLE IF NOT EXISTS floor_requests (
    id bigserial PRIMARY KEY, body jsonb NOT NULL, at timestamptz NOT NULL DEFAULT now())"""


def build(api_base_url: str, inline: bool = False, durable: str | None = None) -> Starlette:
    app = AsyncApp(
        client=AsyncWebClient(token=BOT_TOKEN, base_url=api_base_url),
        signing_secret=SIGNING_SECRET,
        process_before_response=inline,
    )
    pool: AsyncConnectionPool[Any] | None = None
    if durable:
        pool = AsyncConnectionPool(
            durable, min_size=1, max_size=8, open=False, kwargs={"autocommit": True}
        )

    async def only_ack(ack: AsyncAck, body: dict[str, Any], **_: Any) -> None:
        if pool is not None:
            row = {
                "what": body.get("command") or body.get("type"),
                "user": body.get("user_id") or (body.get("user") or {}).get("id"),
                "text": body.get("text"),
            }
            async with pool.connection() as conn:
                await conn.execute("INSERT INTO floor_requests (body) VALUES (%s)", [Jsonb(row)])
        await ack()

    for name in ("/aiops", "/deploy", "/promote", "/rollback"):
        app.command(name)(only_ack)
    app.action("approve")(only_ack)
    app.action("reject")(only_ack)
    handler = AsyncSlackRequestHandler(app)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if pool is None:
            yield
            return
        await pool.open()
        async with pool.connection() as conn:
            await conn.execute(TABLE)
        yield
        await pool.close()

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(
        lifespan=lifespan,
        routes=[
            Route("/slack/events", events, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
    )


def _durable(args: list[str]) -> str | None:
    return args[args.index("--durable") + 1] if "--durable" in args else None


if __name__ == "__main__":
    uvicorn.run(
        build(sys.argv[2], inline="--inline" in sys.argv[3:], durable=_durable(sys.argv[3:])),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
    )
