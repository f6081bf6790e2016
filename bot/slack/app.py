"""The Bolt app: slash commands and buttons. Every listener acks at once; the command
runs off the event loop (in a worker process, see `bot/workers.py`, or on a thread) and
answers through `respond`, so a slow platform never holds up another request's ack. The
reply is rendered to Block Kit (and so redacted) where the command ran
(`bot/slack/answer.py`), not on the event loop that acks.

`build_bolt` needs only the config: with worker processes the server that acks never
imports the domain's machinery or the store, which keeps its start-up and its event loop
light. `build_app` wires it to a `Service` in this process (tests, the console's peers,
`AIOPS_COMMAND_WORKERS=0`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from commands.catalog import SLASH_COMMANDS
from commands.config import Config
from commands.model import Actor, Invocation

if TYPE_CHECKING:
    from commands.service import Service

log = logging.getLogger(__name__)


# Runs a command off the loop and answers it on its response_url: (invocation, click?,
# respond) → done.
Runner = Callable[[Invocation, bool, AsyncRespond], Awaitable[None]]

# Records a request refused because it came from another workspace: (user, team, org).
Refusal = Callable[[str, str | None, str | None], Awaitable[None]]


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
    runner: Runner | None = None,
) -> AsyncApp:
    """The Bolt app over a service in this process. `runner` runs a command off the loop;
    by default on a thread of this process."""
    from bot.slack.answer import answer, attach_groups

    attach_groups(service, bot_token, api_base_url)

    async def in_thread(inv: Invocation, click: bool, respond: AsyncRespond) -> None:
        out = await asyncio.to_thread(answer, service, inv, click)
        await respond(**out.payload)

    async def record(user: str, team: str | None, enterprise: str | None) -> None:
        await asyncio.to_thread(record_refusal, service, user, team, enterprise)

    return build_bolt(
        service.rt.config,
        bot_token=bot_token,
        signing_secret=signing_secret,
        api_base_url=api_base_url,
        runner=runner or in_thread,
        refused=record,
    )


def record_refusal(service: Service, user: str, team: str | None, enterprise: str | None) -> None:
    """The audit row of a request from another workspace."""
    service.rt.auditor.record(
        "workspace_refused",
        user,
        "refused: request from another workspace",
        parameters={"team_id": team, "enterprise_id": enterprise},
    )


def build_bolt(
    config: Config,
    *,
    bot_token: str,
    signing_secret: str,
    api_base_url: str | None,
    runner: Runner,
    refused: Refusal,
) -> AsyncApp:
    """The listeners: they ack, check the workspace, name the actor and hand the command to
    `runner`; `refused` records a request from another workspace."""
    client = AsyncWebClient(token=bot_token, base_url=api_base_url or AsyncWebClient.BASE_URL)
    app = AsyncApp(
        # Without a name Bolt takes its caller's file name from `inspect.stack()`, which
        # resolves the source of every loaded module: ~0.15 s of start-up (bench startup).
        name="aiops-bot",
        client=client,
        signing_secret=signing_secret,
        process_before_response=False,
    )

    @app.middleware
    async def only_our_workspace(
        req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        team, enterprise = _team_of(req.body)
        if not workspace_allowed(config.team_id, config.enterprise_id, team, enterprise):
            log.warning("refused a request from workspace %s (enterprise %s)", team, enterprise)
            user = req.body.get("user_id") or (req.body.get("user") or {}).get("id")
            await refused(str(user or "unknown"), team, enterprise)
            return BoltResponse(status=403, body="this bot serves only its own workspace")
        return await next()

    def actor(user_id: str, user_name: str | None) -> Actor:
        person = config.person_by_id(user_id)
        return Actor(user_id, person.name if person else user_name)

    run = runner

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
