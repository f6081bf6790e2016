"""The Bolt app: slash commands, buttons, the forms a bare `/deploy`, `/promote` or
`/rollback` opens (`bot/slack/form_listeners.py`) and the Home tab's `app_home_opened`
event. Every listener acks at once; the command
runs off the event loop (in a worker process, see `bot/serve/workers.py`, or on a thread) and
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
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.clients import async_web_client
from bot.slack.clients import respond as respond_to
from bot.slack.form_listeners import Forms, IncidentForms, NotTaken
from bot.slack.home import HOME_OPENED
from commands.audit import AuditAction
from commands.catalog import BUTTONS, SLASH_COMMANDS, button_command
from commands.config import Config
from commands.model import Actor, Invocation
from commands.text import from_slack

if TYPE_CHECKING:
    from commands.service import Service

log = logging.getLogger(__name__)


# Runs a command off the loop and answers it on its response_url: (invocation, click?,
# respond) → done.
Runner = Callable[[Invocation, bool, AsyncRespond], Coroutine[Any, Any, None]]

# Records a request refused because it came from another workspace: (user, team, org).
Refusal = Callable[[str, str | None, str | None], Awaitable[None]]

# Stores a command durably before its ack leaves (`bot/serve/queue.py`): (invocation,
# click?, response_url, request key) → False when that request was taken before (a Slack
# retry or a replay: answered once); raises when it cannot be stored. Without a
# response_url (a form's submission) the answer goes to the actor as a direct message.
Submit = Callable[[Invocation, bool, str | None, str], Awaitable[bool]]

REPLAY_WINDOW = 600.0  # seconds: Slack refuses signatures older than 5 minutes


def request_key(kind: str, body: dict[str, Any]) -> str:
    """One Slack request's identity: its `trigger_id` (new for every invocation and
    every click, the same in a replay of the same body), else a digest of the body.
    Events carry `event_id`, which Slack's retries (`x-slack-retry-num`) repeat."""
    ident = body.get("trigger_id") or body.get("event_id")
    if ident:
        return f"{kind}:{ident}"
    import hashlib
    import json

    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return f"{kind}:sha256:{digest}"


class Replays:
    """Request keys seen in the last `REPLAY_WINDOW` seconds, in memory: the guard of a
    bot on one process (SQLite, or threads). On PostgreSQL the request key, unique among
    the queue's jobs, is the guard, shared by every replica and every restart."""

    def __init__(self, window: float = REPLAY_WINDOW, limit: int = 100_000) -> None:
        self.window = window
        self.limit = limit
        self._seen: dict[str, float] = {}

    def first(self, key: str, now: float | None = None) -> bool:
        import time

        t = time.monotonic() if now is None else now
        if len(self._seen) >= self.limit or (
            self._seen and next(iter(self._seen.values())) < t - self.window
        ):
            self._seen = {k: v for k, v in self._seen.items() if v >= t - self.window}
        if key in self._seen:
            return False
        self._seen[key] = t
        return True


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
        home = on_home(respond)
        out = await asyncio.to_thread(lambda: answer(service, inv, click, home=home))
        if out is not None:
            await answer_on(respond, out.payload)

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


def on_home(respond: AsyncRespond) -> bool:
    """Whether a request is answered on the person's Home tab (`bot.slack.home`): it came
    without a response URL (the Home tab's event, a click there), and is not a form's
    submission, whose `respond` is a direct message (`DirectMessage`)."""
    from bot.slack.form_listeners import DirectMessage

    return respond.response_url is None and not isinstance(respond, DirectMessage)


async def answer_on(respond: AsyncRespond, payload: dict[str, Any]) -> None:
    """Answer a command on its response URL through a client that retries rate limits and
    server errors (Bolt's `respond` builds one that does not)."""
    if respond.response_url is None:  # Bolt's error: nowhere to answer
        await respond(**payload)
        return
    status = await respond_to(respond.response_url, payload)
    if status != 200:
        log.warning("response_url answered %s", status)


def record_refusal(service: Service, user: str, team: str | None, enterprise: str | None) -> None:
    """The audit row of a request from another workspace."""
    service.rt.auditor.record(
        AuditAction.WORKSPACE_REFUSED,
        user,
        "refused: request from another workspace",
        parameters={"team_id": team, "enterprise_id": enterprise},
    )


# A change card's Approve / Reject, a breaching canary's Rollback / Promote anyway, and
# the digests' Open status / Open changes.
# The buttons come from the catalog: a "view" button's value `all` means no argument.
VIEW_BUTTONS = tuple(name for name, kind in BUTTONS.items() if kind == "view")
# Buttons that run their command at once (a "form" button opens its form first:
# `bot/slack/incident_forms.py`).
COMMAND_BUTTONS = tuple(name for name, kind in BUTTONS.items() if kind != "form")


class WorkspaceCheck(AsyncMiddleware):
    """Refuses (403, audited through `refused`) a request from another workspace. A class,
    not an `@app.middleware` function, which Bolt would call through a keyword-argument
    lookup on every request."""

    def __init__(self, config: Config, refused: Refusal) -> None:
        self.config = config
        self.refused = refused

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],
    ) -> BoltResponse:
        team, enterprise = _team_of(req.body)
        if workspace_allowed(self.config.team_id, self.config.enterprise_id, team, enterprise):
            return await next()
        log.warning("refused a request from workspace %s (enterprise %s)", team, enterprise)
        user = req.body.get("user_id") or (req.body.get("user") or {}).get("id")
        await self.refused(str(user or "unknown"), team, enterprise)
        return BoltResponse(status=403, body="this bot serves only its own workspace")


def build_bolt(
    config: Config,
    *,
    bot_token: str,
    signing_secret: str,
    api_base_url: str | None,
    runner: Runner,
    refused: Refusal,
    submit: Submit | None = None,
) -> AsyncApp:
    """The listeners: they check the workspace, name the actor and hand the command on,
    then ack; `refused` records a request from another workspace. With `submit` (the
    durable queue) the command is stored before the ack leaves and the queue's workers run
    it; without, `runner` runs it after the ack. A request seen before (a retry, a
    replay) is acked and not run again."""
    client = async_web_client(bot_token, api_base_url)  # Bolt copies its retries per request
    app = AsyncApp(
        # Without a name Bolt takes its caller's file name from `inspect.stack()`, which
        # resolves the source of every loaded module: ~0.15 s of start-up (bench startup).
        name="aiops-bot",
        client=client,
        signing_secret=signing_secret,
        # The listener runs before the response is sent, and the response is the ack: with
        # the default (False) Bolt runs the listener as a task and polls every 10 ms for
        # the ack. Our listeners only hand the command on (`hand_on`) and ack, so they are
        # done in well under a millisecond.
        process_before_response=True,
    )
    pending: set[asyncio.Task[None]] = set()

    def finished(task: asyncio.Task[None]) -> None:
        pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a command failed after its ack", exc_info=task.exception())

    replays = Replays()

    async def hand_on(
        inv: Invocation,
        click: bool,
        respond: AsyncRespond,
        key: str,
        ack: AsyncAck,
        not_taken: NotTaken | None = None,
    ) -> None:
        """Store (`submit`) or schedule (`runner`, a task the loop holds until it ends) the
        command, then ack: with `process_before_response` the ack is the HTTP response,
        sent when the listener returns. `not_taken` says it was not stored where an ack
        cannot carry text (a form's submission)."""
        if submit is not None:
            try:
                taken = await submit(inv, click, respond.response_url, key)
            except Exception as exc:
                log.error("could not queue %s: %s", inv.command, type(exc).__name__)
                message = (
                    "The bot could not take this command (its database did not answer);"
                    " nothing was done. Try again in a minute."
                )
                await (not_taken(message) if not_taken else ack(text=f":warning: {message}"))
                return
            if not taken:
                log.info("request %s was taken before (a retry or replay); not run again", key)
            await ack()
            return
        await ack()
        if not replays.first(key):
            log.info("request %s was taken before (a retry or replay); not run again", key)
            return
        task = asyncio.get_running_loop().create_task(runner(inv, click, respond))
        pending.add(task)
        task.add_done_callback(finished)

    app.use(WorkspaceCheck(config, refused))

    def actor(user_id: str, user_name: str | None) -> Actor:
        person = config.person_by_id(user_id)
        return Actor(user_id, person.name if person else user_name)

    # A bare /deploy, /promote or /rollback opens a form (`bot/slack/form_listeners.py`).
    forms = Forms(config, actor, hand_on, request_key)
    forms.register(app)
    # An alert's Declare incident and an incident's Resolve open a form first.
    IncidentForms(config, actor, hand_on, request_key).register(app)

    async def slash(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        if await forms.opened(command, client, ack):
            return
        inv = Invocation(
            actor=actor(command["user_id"], command.get("user_name")),
            command=command["command"],
            # Slack's encoding (`&lt;`, `<@U1|alice>`, `<!here>`) undone once, here; the
            # service checks and masks the result (`commands.text`).
            text=from_slack(command.get("text", "")),
            channel_id=command.get("channel_id"),
            request_id=command.get("trigger_id"),
        )
        await hand_on(inv, False, respond, request_key("command", command), ack)

    # One listener for the commands and one for the buttons: Bolt tries each listener's
    # matchers in turn, with a keyword-argument lookup each, on every request.
    app.command(re.compile("^(?:" + "|".join(map(re.escape, SLASH_COMMANDS)) + ")$"))(slash)

    async def decision(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        action = body["actions"][0]
        value = action.get("value", "")
        if action["action_id"] in VIEW_BUTTONS and value == "all":
            value = ""  # the digests' "Open status" / "Open changes": no argument
        user = body["user"]
        inv = Invocation(
            actor=actor(user["id"], user.get("username") or user.get("name")),
            command="/aiops",
            # JSON, not Slack-encoded: nothing to undo
            text=f"{button_command(action['action_id'])} {value}",
            channel_id=(body.get("channel") or {}).get("id"),
            request_id=action.get("action_ts") or body.get("trigger_id"),
        )
        # the clicker hears why (ephemeral)
        await hand_on(inv, True, respond, request_key("action", body), ack)

    app.action(re.compile("^(?:" + "|".join(map(re.escape, COMMAND_BUTTONS)) + ")$"))(decision)

    async def home_opened(
        ack: AsyncAck, event: dict[str, Any], body: dict[str, Any], respond: AsyncRespond
    ) -> None:
        """Someone opened the bot's Home tab: their view is built and published where
        commands run (`bot.slack.home`), handed on as a job without a response URL."""
        if event.get("tab") != "home":  # the Messages tab: nothing to draw
            await ack()
            return
        inv = Invocation(
            actor=actor(str(event["user"]), None),
            command=HOME_OPENED,
            text="",
            request_id=body.get("event_id"),
        )
        await hand_on(inv, False, respond, request_key("event", body), ack)

    app.event(HOME_OPENED)(home_opened)
    return app
