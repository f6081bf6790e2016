"""The Bolt app: slash commands and buttons. Every listener acks at once; the command
runs off the event loop (on a worker thread, or in a worker process with
`AIOPS_COMMAND_WORKERS`, see `bot/workers.py`) and answers through `respond`, so a slow
platform never holds up another request's ack. The reply is rendered to Block Kit (and
so redacted) where the command ran, not on the event loop that acks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk import WebClient
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.blocks import render_message
from bot.slack.groups import SlackUserGroups
from commands.catalog import SLASH_COMMANDS
from commands.model import Actor
from commands.requests import Invocation
from commands.service import Service

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """A reply rendered as `respond()`'s arguments (a dict: it pickles)."""

    payload: dict[str, Any]  # text, blocks, response_type[, replace_original]


def answer(service: Service, inv: Invocation, click: bool = False) -> Answer:
    """Run one command and render its reply; called off the event loop. A button's
    answer is always ephemeral and never replaces the card it came from (the domain
    updates the card itself, with chat.update); a slash command's follows the reply."""
    reply = service.handle(inv)
    if click:
        return Answer(
            {"response_type": "ephemeral", "replace_original": False, **render_message(reply)}
        )
    kind = "ephemeral" if reply.ephemeral else "in_channel"
    return Answer({"response_type": kind, **render_message(reply)})


# Runs a command off the loop and answers it on its response_url: (invocation, click?,
# respond) → done.
Runner = Callable[[Invocation, bool, AsyncRespond], Awaitable[None]]


def attach_groups(service: Service, bot_token: str, api_base_url: str | None) -> None:
    """Approvers may be user groups, read at click time through the Web API."""
    if service.rt.groups is None:
        service.rt.groups = SlackUserGroups(
            WebClient(token=bot_token, base_url=api_base_url or WebClient.BASE_URL)
        )


def _team_of(body: dict[str, Any]) -> tuple[str | None, str | None]:
    team = body.get("team_id") or (body.get("team") or {}).get("id")
    enterprise = body.get("enterprise_id") or (body.get("enterprise") or {}).get("id")
    return team, enterprise


def workspace_allowed(
    team_id: str | None, enterprise_id: str | None, team: str | None, enterprise: str | None
) -> bool:
    """A request must come from the configured workspace (`team_id`) and, when set, the
    configured Enterprise Grid org (`enterprise_id`; any of its workspaces when no
    `team_id` is set). An `E…` id written as `team_id` is taken as the org."""
    if team_id and team_id.startswith("E"):
        enterprise_id, team_id = enterprise_id or team_id, None
    if team_id and team != team_id:
        return False
    return not (enterprise_id and enterprise != enterprise_id)


def build_app(
    service: Service,
    *,
    bot_token: str,
    signing_secret: str,
    api_base_url: str | None = None,
    socket_mode: bool = False,
    runner: Runner | None = None,
) -> AsyncApp:
    """`runner` runs a command off the loop; by default on a thread of this process."""
    client = AsyncWebClient(token=bot_token, base_url=api_base_url or AsyncWebClient.BASE_URL)
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret,
        process_before_response=False,
    )
    config = service.rt.config
    attach_groups(service, bot_token, api_base_url)

    @app.middleware
    async def only_our_workspace(
        req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        team, enterprise = _team_of(req.body)
        if not workspace_allowed(config.team_id, config.enterprise_id, team, enterprise):
            log.warning("refused a request from workspace %s (enterprise %s)", team, enterprise)
            user = req.body.get("user_id") or (req.body.get("user") or {}).get("id")
            await asyncio.to_thread(
                service.rt.auditor.record,
                "workspace_refused",
                str(user or "unknown"),
                "refused: request from another workspace",
                parameters={"team_id": team, "enterprise_id": enterprise},
            )
            return BoltResponse(status=403, body="this bot serves only its own workspace")
        return await next()

    def actor(user_id: str, user_name: str | None) -> Actor:
        person = config.person_by_id(user_id)
        return Actor(user_id, person.name if person else user_name)

    async def in_thread(inv: Invocation, click: bool, respond: AsyncRespond) -> None:
        out = await asyncio.to_thread(answer, service, inv, click)
        await respond(**out.payload)

    run: Runner = runner or in_thread

    async def slash(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        inv = Invocation(
            actor=actor(command["user_id"], command.get("user_name")),
            command=command["command"],
            text=command.get("text", ""),
            channel_id=command.get("channel_id"),
            request_id=command.get("trigger_id"),
        )
        await run(inv, False, respond)

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
        await run(inv, True, respond)  # the clicker hears why (ephemeral)

    app.action("approve")(decision)
    app.action("reject")(decision)
    app.action("canary-rollback")(decision)  # a breaching canary's Rollback / Promote-anyway
    app.action("canary-promote")(decision)

    async def open_view(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        """The digests' "Open status" / "Open changes" buttons (value `all`: no argument)."""
        action = body["actions"][0]
        if action.get("value") == "all":
            action["value"] = ""
        await decision(ack, body, respond)

    app.action("status")(open_view)
    app.action("changes")(open_view)
    return app
