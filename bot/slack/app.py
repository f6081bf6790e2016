"""The Bolt app: slash commands and buttons. Every listener acks at once; the command
runs on a worker thread and answers through `respond`, so a slow platform never holds up
another request's ack."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.blocks import render_message
from commands.catalog import SLASH_COMMANDS
from commands.messages import Reply
from commands.model import Actor
from commands.requests import Invocation
from commands.service import Service

log = logging.getLogger(__name__)


def _team_of(body: dict[str, Any]) -> tuple[str | None, str | None]:
    team = body.get("team_id") or (body.get("team") or {}).get("id")
    enterprise = body.get("enterprise_id") or (body.get("enterprise") or {}).get("id")
    return team, enterprise


def build_app(
    service: Service,
    *,
    bot_token: str,
    signing_secret: str,
    api_base_url: str | None = None,
    socket_mode: bool = False,
) -> AsyncApp:
    client = AsyncWebClient(token=bot_token, base_url=api_base_url or AsyncWebClient.BASE_URL)
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        process_before_response=False,
    )
    config = service.rt.config

    @app.middleware
    async def only_our_workspace(
        req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        team, enterprise = _team_of(req.body)
        allowed = config.team_id
        if allowed and team != allowed and enterprise != allowed:
            log.warning("refused a request from workspace %s (enterprise %s)", team, enterprise)
            return BoltResponse(status=403, body="this bot serves only its own workspace")
        return await next()

    def actor(user_id: str, user_name: str | None) -> Actor:
        return Actor(
            user_id, config.display_name(user_id) if config.person_by_id(user_id) else user_name
        )

    async def run(inv: Invocation) -> Reply:
        return await asyncio.to_thread(service.handle, inv)

    async def slash(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        inv = Invocation(
            actor=actor(command["user_id"], command.get("user_name")),
            command=command["command"],
            text=command.get("text", ""),
            channel_id=command.get("channel_id"),
            request_id=command.get("trigger_id"),
        )
        reply = await run(inv)
        await respond(
            response_type="ephemeral" if reply.ephemeral else "in_channel", **render_message(reply)
        )

    for name in SLASH_COMMANDS:
        app.command(name)(slash)

    async def decision(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        action = body["actions"][0]
        user = body["user"]
        inv = Invocation(
            actor=actor(user["id"], user.get("username") or user.get("name")),
            command="/aiops",
            text=f"{action['action_id']} {action.get('value', '')}",
            channel_id=(body.get("channel") or {}).get("id"),
            request_id=action.get("action_ts") or body.get("trigger_id"),
        )
        reply = await run(inv)
        # The card itself is updated by the domain (chat.update); the clicker hears why.
        await respond(response_type="ephemeral", replace_original=False, **render_message(reply))

    app.action("approve")(decision)
    app.action("reject")(decision)
    return app
