"""The listeners of the forms (`bot/slack/forms.py`, and the respond forms of
`bot/slack/incident_forms.py`: `IncidentForms`): a bare `/deploy`, `/promote` or
`/rollback` opens the form with `views.open` before its ack leaves (the `trigger_id` lives
3 s); choosing an endpoint redraws it with `views.update`; a submission is checked here,
in the server process, and answered with an error next to each wrong field, or handed on
as the typed command it spells, exactly as `build_bolt` hands on a typed one (queued or
run; a replay taken once). A submission has no response URL, so its answer goes to the
person as a direct message from the bot (`DirectMessage`)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook import WebhookResponse

from bot.slack.forms import (
    CALLBACK_ID,
    ENDPOINT,
    ENDPOINT_ACTION,
    FORM_COMMANDS,
    FormMeta,
    check_submission,
    form_view,
    open_view,
)
from bot.slack.incident_forms import (
    CAUSE,
    DECLARE_BUTTON,
    DECLARE_CALLBACK,
    RESOLVE_BUTTON,
    RESOLVE_CALLBACK,
    SUMMARY,
    IncidentMeta,
    Prefill,
    check_declare,
    check_resolve,
    declare_view,
    resolve_view,
)
from commands.catalog import SLASH_COMMANDS
from commands.config import Config
from commands.model import Actor, Invocation

log = logging.getLogger(__name__)

# Says, in place of the ack's text, that the command was not taken (a form stays open
# with the message next to its first field).
NotTaken = Callable[[str], Awaitable[None]]


class HandOn(Protocol):
    """`build_bolt`'s `hand_on`: store or schedule the command, then ack."""

    def __call__(
        self,
        inv: Invocation,
        click: bool,
        respond: AsyncRespond,
        key: str,
        ack: AsyncAck,
        not_taken: NotTaken | None = None,
    ) -> Awaitable[None]: ...


class DirectMessage(AsyncRespond):
    """`respond` for a request that came without a response URL (a form's submission):
    the answer is posted to the person as a direct message from the bot
    (`chat.postMessage` to their user id, as the domain's `tell` does)."""

    def __init__(self, client: AsyncWebClient, user: str) -> None:
        super().__init__(response_url=None)
        self.client = client
        self.user = user

    async def __call__(
        self,
        text: str | dict[str, Any] = "",
        blocks: Any = None,
        attachments: Any = None,
        response_type: str | None = None,
        replace_original: bool | None = None,
        delete_original: bool | None = None,
        unfurl_links: bool | None = None,
        unfurl_media: bool | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> WebhookResponse:
        message: dict[str, Any] = dict(text) if isinstance(text, dict) else {"text": text}
        if blocks is not None:
            message["blocks"] = blocks
        fields = {k: message[k] for k in ("text", "blocks") if message.get(k) is not None}
        try:
            resp = await self.client.chat_postMessage(channel=self.user, **fields)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or exc.response.status_code)
            log.error("the answer to a form did not reach its author's DM: %s", error)
            return WebhookResponse(
                url="chat.postMessage",
                status_code=int(exc.response.status_code),
                body=json.dumps({"ok": False, "error": error}),
                headers={},
            )
        return WebhookResponse(
            url="chat.postMessage",
            status_code=int(resp.status_code),
            body=json.dumps({"ok": bool(resp.get("ok"))}),
            headers={},
        )


def view_key(
    view: dict[str, Any],
    body: dict[str, Any],
    request_key: Callable[[str, dict[str, Any]], str],
) -> str:
    """A submitted form's request key: the view (its id and hash), because a double-clicked
    Submit sends the same view twice, each time with a new trigger — one request, answered
    once; a view without them falls back to the request's own key."""
    if view.get("id") and view.get("hash"):
        return f"view:{view['id']}:{view['hash']}"
    return request_key("view", body)


class FormListeners:
    """What every form's listeners need: the config the forms are drawn from, who clicked
    (`actor`), where a checked submission goes (`hand_on`, as the typed command) and a
    request's key (`request_key`)."""

    def __init__(
        self,
        config: Config,
        actor: Callable[[str, str | None], Actor],
        hand_on: HandOn,
        request_key: Callable[[str, dict[str, Any]], str],
    ) -> None:
        self.config = config
        self.actor = actor
        self.hand_on = hand_on
        self.request_key = request_key


class Forms(FormListeners):
    """The form listeners of one Bolt app: `opened` is asked first by the slash command
    listener; `register` adds the endpoint choice and the submission."""

    async def opened(self, command: dict[str, Any], client: AsyncWebClient, ack: AsyncAck) -> bool:
        """Open the form for a bare `/deploy`, `/promote` or `/rollback` and ack; False
        for any other command (it goes on as typed)."""
        name = command.get("command")
        if name not in FORM_COMMANDS or str(command.get("text") or "").strip():
            return False
        view = open_view(self.config, name, command["user_id"], command.get("channel_id"))
        try:
            await client.views_open(trigger_id=command["trigger_id"], view=view)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or exc.response.status_code)
            log.warning("views.open failed for %s: %s", name, error)
            await ack(
                text=f":warning: The form did not open (Slack said `{error}`). Type the"
                f" command instead: `{SLASH_COMMANDS[name].usage}`"
            )
            return True
        await ack()
        return True

    def register(self, app: AsyncApp) -> None:
        app.action(ENDPOINT_ACTION)(self.endpoint_chosen)
        app.view(CALLBACK_ID)(self.submitted)

    async def endpoint_chosen(
        self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        """The endpoint select changed: redraw the form's fields for it."""
        await ack()
        view = body.get("view") or {}
        meta = FormMeta.loads(view.get("private_metadata"))
        if meta is None or not view.get("id"):
            return
        chosen = (body["actions"][0].get("selected_option") or {}).get("value")
        new = form_view(self.config, meta.command, body["user"]["id"], meta.channel, chosen)
        try:
            # `hash`: if the view changed meanwhile (a quicker second choice), Slack
            # refuses this update rather than draw a stale form over the newer one.
            await client.views_update(view_id=view["id"], hash=view.get("hash"), view=new)
        except SlackApiError as exc:
            log.warning("views.update failed: %s", exc.response.get("error"))

    async def submitted(self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        """Errors next to their fields, or the command handed on and the form closed."""
        view = body["view"]
        meta = FormMeta.loads(view.get("private_metadata"))
        user = body["user"]
        if meta is None:
            await ack(response_action="errors", errors={ENDPOINT: "This form is stale; reopen it."})
            return
        checked = check_submission(
            self.config, meta, user["id"], view["state"]["values"], datetime.now(UTC)
        )
        if checked.text is None:
            await ack(response_action="errors", errors=checked.errors)
            return
        inv = Invocation(
            actor=self.actor(user["id"], user.get("username") or user.get("name")),
            command=meta.command,
            text=checked.text,  # plain, not Slack-encoded: nothing to undo
            channel_id=meta.channel,
            request_id=body.get("trigger_id"),
        )

        async def not_taken(message: str) -> None:
            await ack(response_action="errors", errors={ENDPOINT: message})

        key = view_key(view, body, self.request_key)
        await self.hand_on(inv, False, DirectMessage(client, user["id"]), key, ack, not_taken)


class IncidentForms(FormListeners):
    """The respond forms' listeners (`bot/slack/incident_forms.py`): the Declare incident
    and Resolve buttons open their form with `views.open` before the ack (the trigger
    lives 3 s); a submission is checked here and handed on as the typed `/aiops incident`
    command, answered in a direct message, exactly as the change forms are."""

    def register(self, app: AsyncApp) -> None:
        # One listener for the two buttons and one for the two forms: Bolt tries every
        # listener's matchers on every request.
        buttons = "|".join(map(re.escape, (DECLARE_BUTTON, RESOLVE_BUTTON)))
        app.action(re.compile(f"^(?:{buttons})$"))(self.clicked)
        forms = "|".join(map(re.escape, (DECLARE_CALLBACK, RESOLVE_CALLBACK)))
        app.view(re.compile(f"^(?:{forms})$"))(self.submitted)

    async def clicked(
        self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        if body["actions"][0]["action_id"] == DECLARE_BUTTON:
            await self.open_declare(ack, body, client, respond)
        else:
            await self.open_resolve(ack, body, client, respond)

    async def _open(
        self,
        view: Any,
        body: dict[str, Any],
        client: AsyncWebClient,
        ack: AsyncAck,
        respond: AsyncRespond,
        typed: str,
    ) -> None:
        try:
            await client.views_open(trigger_id=body["trigger_id"], view=view)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or exc.response.status_code)
            log.warning("views.open failed for an incident form: %s", error)
            await ack()
            if respond.response_url is not None:
                await respond(
                    text=f":warning: The form did not open (Slack said `{error}`)."
                    f" Type the command instead: `{typed}`",
                    response_type="ephemeral",
                    replace_original=False,
                )
            return
        await ack()

    async def open_declare(
        self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        """An alert's Declare incident: the form, filled in from the button's value."""
        prefill = Prefill.from_value(body["actions"][0].get("value"))
        channel = (body.get("channel") or {}).get("id")
        view = declare_view(self.config, prefill, body["user"]["id"], channel)
        typed = f'/aiops incident declare {prefill.endpoint or ""} sev=… summary="…"'
        await self._open(view, body, client, ack, respond, typed)

    async def open_resolve(
        self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        """An incident's Resolve: the form asking for the root cause."""
        incident = str(body["actions"][0].get("value") or "")
        view = resolve_view(incident, (body.get("channel") or {}).get("id"))
        if view is None:
            await ack()
            return
        await self._open(
            view, body, client, ack, respond, f'/aiops incident resolve {incident} cause="…"'
        )

    async def submitted(self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        """Errors next to their fields, or the command handed on and the form closed."""
        view = body["view"]
        meta = IncidentMeta.loads(view.get("private_metadata"))
        user = body["user"]
        first = CAUSE if view.get("callback_id") == RESOLVE_CALLBACK else SUMMARY
        if meta is None:
            await ack(response_action="errors", errors={first: "This form is stale; reopen it."})
            return
        values = view["state"]["values"]
        checked = (
            check_resolve(meta, values)
            if meta.form == "resolve"
            else check_declare(self.config, meta, values)
        )
        if checked.text is None:
            await ack(response_action="errors", errors=checked.errors)
            return
        inv = Invocation(
            actor=self.actor(user["id"], user.get("username") or user.get("name")),
            command="/aiops",
            text=checked.text,  # plain, not Slack-encoded: nothing to undo
            channel_id=meta.channel,
            request_id=body.get("trigger_id"),
        )

        async def not_taken(message: str) -> None:
            await ack(response_action="errors", errors={first: message})

        key = view_key(view, body, self.request_key)
        await self.hand_on(inv, False, DirectMessage(client, user["id"]), key, ack, not_taken)
