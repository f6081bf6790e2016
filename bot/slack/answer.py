"""Where a command runs (a worker process, or a thread of the server): the service
handles it and the reply is rendered to Block Kit, and so redacted, before it leaves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.slack.blocks import render_message
from bot.slack.clients import web_client
from bot.slack.groups import SlackUserGroups
from commands.messages import Reply
from commands.model import Invocation

if TYPE_CHECKING:
    from commands.service import Service


@dataclass(frozen=True)
class Answer:
    """A reply rendered as `respond()`'s arguments (a dict: it pickles)."""

    payload: dict[str, Any]  # text, blocks, response_type[, replace_original]


def answer(service: Service, inv: Invocation, click: bool = False) -> Answer:
    """Run one command and render its reply; called off the event loop. A button's
    answer is always ephemeral and never replaces the card it came from (the domain
    updates the card itself, with chat.update); a slash command's follows the reply."""
    return rendered(service.handle(inv), click)


def rendered(reply: Reply, click: bool = False) -> Answer:
    """A reply as `respond()`'s arguments (see `answer`)."""
    if click:
        return Answer(
            {"response_type": "ephemeral", "replace_original": False, **render_message(reply)}
        )
    kind = "ephemeral" if reply.ephemeral else "in_channel"
    return Answer({"response_type": kind, **render_message(reply)})


def attach_groups(service: Service, bot_token: str, api_base_url: str | None) -> None:
    """Approvers may be user groups, read at click time through the Web API."""
    if service.rt.groups is None:
        service.rt.groups = SlackUserGroups(web_client(bot_token, api_base_url))
