"""Renders domain replies as Block Kit, inside Slack's limits, with PII masked. Texts are
cut with `commands.text.cut`, which never splits an entity, a mention or a link."""

from __future__ import annotations

from typing import Any

from commands.messages import (
    Block,
    Button,
    Buttons,
    Confirm,
    Context,
    Divider,
    Fields,
    Header,
    Reply,
    Text,
)
from commands.redaction import redact, redact_value
from commands.text import cut, visible

MAX_BLOCKS = 50  # a message
MAX_VIEW_BLOCKS = 100  # a view (the Home tab)
SECTION_TEXT = 3000
FIELD_TEXT = 2000
HEADER_TEXT = 150
BUTTON_TEXT = 75
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300
CONFIRM_BUTTON = 30
FALLBACK_TEXT = 3000


def _cut(text: str, limit: int) -> str:
    return cut(redact(visible(text)), limit)


def _block(block: Block, actions: int = 0) -> dict[str, Any]:
    """One block; `actions` counts the actions blocks before it (block ids are unique in
    a message or a view: the first is `change_actions`, then `change_actions_2`, …)."""
    if isinstance(block, Header):
        return {
            "type": "header",
            "text": {"type": "plain_text", "text": _cut(block.text, HEADER_TEXT), "emoji": True},
        }
    if isinstance(block, Text):
        return {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _cut(block.text or " ", SECTION_TEXT)},
        }
    if isinstance(block, Fields):
        return {
            "type": "section",
            "fields": [
                # the label gives the value its context (`Customer` → a name)
                {
                    "type": "mrkdwn",
                    "text": _cut(f"*{label}*\n{redact_value({label: value})[label]}", FIELD_TEXT),
                }
                for label, value in block.pairs[:10]
            ],
        }
    if isinstance(block, Context):
        return {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": _cut(i, SECTION_TEXT)} for i in block.items[:10]
            ],
        }
    if isinstance(block, Divider):
        return {"type": "divider"}
    assert isinstance(block, Buttons)
    return {
        "type": "actions",
        "block_id": "change_actions" + (f"_{actions + 1}" if actions else ""),
        "elements": [_button(b) for b in block.buttons[:25]],
    }


def _button(button: Button) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "button",
        "action_id": button.action_id,
        "text": {"type": "plain_text", "text": _cut(button.label, BUTTON_TEXT)},
        "value": button.value[:2000],
    }
    if button.style:
        out["style"] = button.style
    if button.confirm is not None:
        out["confirm"] = _confirm(button.confirm, button.style)
    return out


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": _cut(text, limit), "emoji": True}


def _confirm(confirm: Confirm, style: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "title": _plain(confirm.title, CONFIRM_TITLE),
        "text": _plain(confirm.text, CONFIRM_TEXT),
        "confirm": _plain(confirm.ok, CONFIRM_BUTTON),
        "deny": _plain(confirm.deny, CONFIRM_BUTTON),
    }
    if style:
        out["style"] = style  # the dialog's confirming button, coloured as the button
    return out


def render_blocks(reply: Reply, limit: int = MAX_BLOCKS) -> list[dict[str, Any]]:
    blocks = []
    actions = 0
    for b in reply.blocks:
        blocks.append(_block(b, actions))
        actions += isinstance(b, Buttons)
    if len(blocks) > limit:
        blocks = [
            *blocks[: limit - 1],
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"{len(reply.blocks) - limit + 1} more blocks left out to fit Slack's limit.",
                    }
                ],
            },
        ]
    return blocks


def render_message(reply: Reply) -> dict[str, Any]:
    """Arguments for chat.postMessage / chat.update / respond()."""
    return {"text": _cut(reply.text, FALLBACK_TEXT), "blocks": render_blocks(reply)}


def render_home(reply: Reply) -> dict[str, Any]:
    """The `view` of views.publish: a Home tab of at most 100 blocks."""
    return {"type": "home", "blocks": render_blocks(reply, MAX_VIEW_BLOCKS)}
