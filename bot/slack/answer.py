"""Where a command runs (a worker process, or a thread of the server): the service
handles it and the reply is rendered to Block Kit, and so redacted, before it leaves.
A job from the Home tab (no response URL) is answered on the person's Home tab."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.slack.blocks import render_message
from bot.slack.clients import web_client
from bot.slack.groups import SlackUserGroups
from bot.slack.home import HOME_OPENED, attach_home, publish_home
from commands.messages import Reply
from commands.model import Invocation

if TYPE_CHECKING:
    from commands.service import Service

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """A reply rendered as `respond()`'s arguments (a dict: it pickles)."""

    payload: dict[str, Any]  # text, blocks, response_type[, replace_original]


def answer(
    service: Service, inv: Invocation, click: bool = False, *, home: bool = False
) -> Answer | None:
    """Run one command and render its reply; called off the event loop. A button's
    answer is always ephemeral and never replaces the card it came from (the domain
    updates the card itself, with chat.update); a slash command's follows the reply.

    `home`: the job has no response URL, it came from the Home tab (`bot.slack.home`):
    the person's Home tab is published instead (with a click's answer on top) and None
    is returned, as there is nothing to respond."""
    if inv.command == HOME_OPENED:
        publish_home(service, inv.actor.id)
        return None
    return delivered(service, inv, service.handle(inv), click, home=home)


def delivered(
    service: Service, inv: Invocation, reply: Reply, click: bool, *, home: bool = False
) -> Answer | None:
    """`reply` as `respond()`'s arguments, or (`home`) shown on the person's Home tab."""
    if home:
        publish_home(service, inv.actor.id, note=reply)
        return None
    return rendered(reply, click)


def rendered(reply: Reply, click: bool = False) -> Answer:
    """A reply as `respond()`'s arguments (see `answer`)."""
    if click:
        return Answer(
            {"response_type": "ephemeral", "replace_original": False, **render_message(reply)}
        )
    kind = "ephemeral" if reply.ephemeral else "in_channel"
    return Answer({"response_type": kind, **render_message(reply)})


def attach_groups(service: Service, bot_token: str, api_base_url: str | None) -> None:
    """Approvers may be user groups, read at click time through the Web API; and the
    Slack notifier republishes Home tabs when a change moves (`bot.slack.home`)."""
    if service.rt.groups is None:
        service.rt.groups = SlackUserGroups(web_client(bot_token, api_base_url))
    attach_home(service)


def direct_message(client: WebClient, user: str, payload: dict[str, Any], what: str) -> bool:
    """An answer that has no response URL to go to (a form's submission), posted to the
    person as a direct message from the bot (`chat.postMessage` to their user id). False,
    logged, when Slack refused it or could not be reached."""
    message = {k: payload[k] for k in ("text", "blocks") if payload.get(k) is not None}
    try:
        client.chat_postMessage(channel=user, **message)
    except SlackApiError as exc:
        log.error(
            "the answer to %s did not reach its author's DM: %s", what, exc.response.get("error")
        )
        return False
    except OSError as exc:
        log.error("the answer to %s did not reach its author's DM: %s", what, type(exc).__name__)
        return False
    return True
