"""Approve, Reject, Roll back and Promote anyway ask before they act: a Block Kit
`confirm` naming the change and the traffic it moves, inside Slack's limits (checked by
slack_sdk's own models)."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import Block

from bot.slack.blocks import render_message
from commands.messages import Button, Buttons, Confirm, Reply
from commands.model import ChangeState
from commands.runtime import NullNotifier
from tests.flows.test_canary import PROD, config_with, deploy, new_bot, posts, tick, watch_of
from tests.support.harness import ALICE, CAROL, Bot, FakeClock

DEPLOY = '/deploy loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="fix tokenizer bug"'


def valid_buttons(payload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every block parsed and validated by slack_sdk (it raises past a limit); the buttons
    by action id."""
    out = {}
    for raw in payload["blocks"]:
        block = Block.parse(raw)
        assert block is not None
        block.validate_json()
        assert block.to_dict() == raw  # nothing the model does not know of
        for element in raw.get("elements", []):
            if element.get("type") == "button":
                out[element["action_id"]] = element
    return out


def card_posts(bot: Bot) -> list[dict[str, Any]]:
    notifier = bot.rt.notifier
    assert isinstance(notifier, NullNotifier)
    return [render_message(p.reply) for p in notifier.posts if p.change_id]


def test_approve_and_reject_name_the_change_and_the_traffic_it_moves(bot: Bot) -> None:
    assert bot.run(ALICE, DEPLOY).ok
    [card] = card_posts(bot)
    buttons = valid_buttons(card)
    approve, reject = buttons["approve"]["confirm"], buttons["reject"]["confirm"]
    assert approve["title"]["text"] == "Approve CHG-1?"
    assert approve["text"]["text"].startswith(
        "loan-assessor: 1.2.0 100% → 1.2.0 90% · 1.2.1 10% (deploy in prod:"
    )
    assert approve["confirm"]["text"] == "Approve" and approve["style"] == "primary"
    assert reject["title"]["text"] == "Reject CHG-1?"
    assert "1.2.0 100% → 1.2.0 90% · 1.2.1 10% will not happen" in reject["text"]["text"]
    assert reject["style"] == "danger"
    assert all(c["text"]["type"] == "plain_text" for c in (approve, reject))


def test_a_confirm_longer_than_slack_allows_is_cut_to_fit() -> None:
    long = Confirm(
        "Approve " + "CHG-1 " * 40 + "?", "1.2.0 90% · " * 60, "Approve " * 10, "No " * 20
    )
    reply = Reply("x", [Buttons((Button("Approve", "approve", "CHG-1", "t", "primary", long),))])
    confirm = valid_buttons(render_message(reply))["approve"]["confirm"]
    assert len(confirm["title"]["text"]) == 100 and confirm["title"]["text"].endswith("…")
    assert len(confirm["text"]["text"]) <= 300 and confirm["text"]["text"].endswith("…")
    assert len(confirm["confirm"]["text"]) <= 30 and len(confirm["deny"]["text"]) <= 30


def test_a_confirm_masks_what_it_quotes() -> None:
    leaky = Confirm("Approve CHG-1?", "for jane.citizen@example.com: 1.2.0 100%", "Approve")
    reply = Reply("x", [Buttons((Button("Approve", "approve", "CHG-1", "t", confirm=leaky),))])
    confirm = valid_buttons(render_message(reply))["approve"]["confirm"]
    assert "jane.citizen@example.com" not in confirm["text"]["text"]


def test_the_canarys_rollback_and_promote_anyway_name_the_traffic(
    sqlite_engine: Any, clock: FakeClock
) -> None:
    bot = new_bot(sqlite_engine, clock, config_with(prod={"canary_auto_rollback": "ask"}))
    deploy(bot, PROD, "1.3.0-rc1", 10)
    for _ in range(3):
        tick(bot, 5)
    w = watch_of(bot, PROD)
    [ask] = [p for p in posts(bot) if p.reply.text == f"{w.ref} needs a decision"]
    buttons = valid_buttons(render_message(ask.reply))
    rollback = buttons["canary-rollback"]["confirm"]
    promote = buttons["canary-promote"]["confirm"]
    assert rollback["title"]["text"] == f"Roll back {w.ref} on loan-assessor?"
    assert rollback["text"]["text"].startswith(
        "loan-assessor: 1.2.0 90% · 1.3.0-rc1 10% → 1.2.0 100%; the canary 1.3.0-rc1 is undeployed"
    )
    assert promote["title"]["text"] == f"Promote {w.ref} anyway?"
    assert promote["text"]["text"].startswith(
        "loan-assessor: 1.2.0 90% · 1.3.0-rc1 10% → 1.3.0-rc1 100%; 1.2.0 is undeployed."
    )
    assert "forced promote" in promote["text"]["text"]
    # what the dialog said is what the click does
    assert bot.run(CAROL, f"/aiops canary-promote {w.ref}").ok
    assert bot.split(PROD) == {"1.3.0-rc1": 100}
    assert bot.rt.store.list_changes(limit=1)[0].state is ChangeState.SUCCEEDED
