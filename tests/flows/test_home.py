"""The Home tab as the domain builds it (`commands.reports.home`): per person, inside
Slack's limits, and asked to be refreshed whenever a change moves."""

from __future__ import annotations

import copy
import json
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from sqlalchemy import Engine

from bot.settings import BUNDLED_CONFIG
from bot.slack.blocks import render_home
from commands.config import Config, load_config, parse_config
from commands.messages import Button, Buttons, Reply, Text
from commands.model import ChangeState
from commands.reports.home import MAX_APPROVALS, MAX_LINES, home_view, home_views
from commands.runtime import NullNotifier
from tests.flows.test_canary import tick, watch_of
from tests.support.harness import ALICE, BOB, CAROL, DAVE, Bot, FakeClock, make_runtime

DEPLOY = '/deploy loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="fix tokenizer bug"'
APPROVERS = ("U0BOB", "U0CAROL")


def config(extra_prod: int = 0, **prod: Any) -> Config:
    raw = copy.deepcopy(load_config(BUNDLED_CONFIG).raw)
    raw["environments"]["prod"].update(prod)
    for n in range(extra_prod):
        raw["endpoints"][f"scorer-{n:02d}"] = {"environment": "prod", "model": "gemma-3-1b-it"}
    return parse_config(raw, source="test")


def new_bot(engine: Engine, clock: FakeClock, cfg: Config | None = None) -> Bot:
    return Bot(make_runtime(engine, clock, NullNotifier(), cfg or config()), clock)


def view(reply: Reply) -> dict[str, Any]:
    """The rendered Home tab, checked by slack_sdk's models (they raise past a limit) and
    for block ids, which must be unique in a view."""
    rendered = render_home(reply)
    View(**rendered).validate_json()
    for raw in rendered["blocks"]:
        block = Block.parse(raw)
        assert block is not None
        block.validate_json()
    ids = [b["block_id"] for b in rendered["blocks"] if "block_id" in b]
    assert len(ids) == len(set(ids)), ids
    return rendered


def buttons(rendered: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (e["action_id"], e["value"])
        for b in rendered["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]


def texts(rendered: dict[str, Any]) -> str:
    return json.dumps(rendered, ensure_ascii=False)


def homes(bot: Bot) -> list[tuple[str, ...]]:
    notifier = bot.rt.notifier
    assert isinstance(notifier, NullNotifier)
    return notifier.homes


def test_each_person_sees_what_waits_for_them_and_their_own_changes(bot: Bot) -> None:
    assert bot.run(ALICE, DEPLOY).ok
    change = bot.rt.store.open_change("loan-assessor")
    assert change is not None
    tabs = {uid: view(r) for uid, r in home_views(bot.rt, [ALICE.id, BOB.id, DAVE.id]).items()}

    bob = tabs[BOB.id]
    assert buttons(bob) == [("approve", change.id), ("reject", change.id)]  # the card's ids
    shown = texts(bob)
    assert "Waiting for your approval (1)" in shown
    assert "1.2.0 100%  →  1.2.0 90% · 1.2.1 10%" in shown
    assert "fix tokenizer bug" in shown and "<@U0ALICE>" in shown
    confirm = next(e for b in bob["blocks"] if b["type"] == "actions" for e in b["elements"])
    assert confirm["confirm"]["title"]["text"] == f"Approve {change.id}?"

    alice = tabs[ALICE.id]
    assert buttons(alice) == []  # never their own change to approve
    assert "Waiting for your approval (0)" in texts(alice)
    assert "Your open changes (1)" in texts(alice) and change.id in texts(alice)

    dave = tabs[DAVE.id]  # a reader: approves nothing, requested nothing, sees the estate
    assert buttons(dave) == []
    assert "Your open changes (0)" in texts(dave)
    for tab in tabs.values():
        assert "`loan-assessor` (prod) · 1.2.0 100%" in texts(tab)
        assert "`loan-assessor-stg` (staging) · 1.2.0 100%" in texts(tab)


def test_an_approval_already_given_is_no_longer_asked_for(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    bot = new_bot(sqlite_engine, clock, config(approvals_required=2))
    bot.run(ALICE, DEPLOY)
    change = bot.rt.store.open_change("loan-assessor")
    assert change is not None
    assert bot.run(BOB, f"/aiops approve {change.id}").ok
    assert bot.change(change.id).state is ChangeState.PENDING_APPROVAL
    assert buttons(view(home_view(bot.rt, BOB.id))) == []
    carol = view(home_view(bot.rt, CAROL.id))
    assert buttons(carol) == [("approve", change.id), ("reject", change.id)]
    assert "Needs 2 approvals." in texts(carol)


def test_canaries_with_their_verdict_and_scheduled_changes_are_listed(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    bot = new_bot(sqlite_engine, clock)
    bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=25")
    tick(bot, 5)
    w = watch_of(bot, "loan-assessor-stg")
    assert w.last_verdict is not None
    bot.run(ALICE, '/deploy loan-assessor gemma-3-1b-it@1.2.1 at="2026-12-01 11:00" reason="x"')
    shown = texts(view(home_view(bot.rt, DAVE.id)))
    assert f"*{w.ref}* `loan-assessor-stg` · 1.2.1 at 25% vs 1.2.0 · " in shown
    assert w.last_verdict.words in shown
    assert "Scheduled changes (1)" in shown and "2026-12-01 11:00 AEDT" in shown


def test_long_lists_are_cut_and_say_how_many_more(sqlite_engine: Engine, clock: FakeClock) -> None:
    bot = new_bot(sqlite_engine, clock, config(extra_prod=40))
    for n in range(12):
        assert bot.run(ALICE, DEPLOY.replace("loan-assessor", f"scorer-{n:02d}")).ok
    rendered = view(home_view(bot.rt, BOB.id, note=bot.run(BOB, "/aiops status")))
    assert len(rendered["blocks"]) <= 100
    assert len(buttons(rendered)) == 2 * MAX_APPROVALS
    shown = texts(rendered)
    assert f"… and {12 - MAX_APPROVALS} more: `/aiops changes`" in shown
    assert f"… and {42 - MAX_LINES} more: `/aiops status`" in shown
    alice = texts(view(home_view(bot.rt, ALICE.id)))
    assert "Your open changes (12)" in alice and "… and" not in alice.split("Endpoints")[0]


def test_the_people_a_change_concerns_are_refreshed_each_time_it_moves(bot: Bot) -> None:
    everyone = (ALICE.id, *APPROVERS)
    bot.run(ALICE, DEPLOY)
    assert homes(bot) == [everyone]  # asked for: in the approvers' tabs with its buttons
    change = bot.rt.store.open_change("loan-assessor")
    assert change is not None
    before = len(homes(bot))
    bot.run(BOB, f"/aiops approve {change.id}")
    assert bot.change(change.id).state is ChangeState.SUCCEEDED
    # approved, started, finished: each move asks again, always for the same people
    assert len(homes(bot)) - before >= 3
    assert set(homes(bot)) == {everyone}


def test_a_click_answer_is_shown_on_top_without_its_buttons(bot: Bot) -> None:
    bot.run(ALICE, DEPLOY)
    change = bot.rt.store.open_change("loan-assessor")
    assert change is not None
    note = bot.run(CAROL, f"/aiops approve {change.id}")
    rendered = view(home_view(bot.rt, CAROL.id, note=note))
    top = texts({"blocks": rendered["blocks"][:6]})
    assert "Your last click here:" in top and f"Approved {change.id}" in texts(rendered)
    assert buttons(rendered) == []  # decided: nothing waits for Carol any more
    # a note's own buttons are left out: the Home's lists hold the ones that still apply
    stale = Reply(
        "Approve?", [Text("Approve CHG-9?"), Buttons((Button("A", "approve", "CHG-9", "t"),))]
    )
    assert buttons(view(home_view(bot.rt, DAVE.id, note=stale))) == []
