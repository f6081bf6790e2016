"""`/aiops approve|reject` typed with an endpoint shows the plan it names and decides
nothing; typed with the change's id it decides that change only, and only while it is
still its endpoint's pending change."""

from __future__ import annotations

import pytest

from commands.messages import Buttons
from commands.model import ChangeState
from commands.ports import AuditQuery
from tests.support.harness import ALICE, BOB, CAROL, DAVE, Bot, text_of

DEPLOY = '/deploy loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="fix tokenizer bug"'


def pending(bot: Bot) -> str:
    change = bot.rt.store.open_change("loan-assessor")
    assert change is not None and change.state is ChangeState.PENDING_APPROVAL
    return change.id


def decisions(bot: Bot) -> list[str]:
    return [
        e.action
        for e in bot.rt.store.audit(AuditQuery())
        if e.action in ("approve", "reject", "decision_refused")
    ]


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_an_endpoint_shows_the_plan_and_decides_nothing(bot: Bot, decision: str) -> None:
    assert bot.run(ALICE, DEPLOY).ok
    change_id = pending(bot)
    reply = bot.run(BOB, f"/aiops {decision} loan-assessor")
    assert reply.ok and reply.ephemeral
    shown = str(reply.blocks)
    # the traffic it would move, as the card draws it
    from commands.changes.card import traffic_bars

    assert traffic_bars(bot.change(change_id)) in shown.replace("\\n", "\n")
    assert f"/aiops {decision} {change_id}" in reply.text
    assert f"nothing was {decision}d" in shown.lower()
    assert not [b for b in reply.blocks if isinstance(b, Buttons)]  # typed, not clicked
    assert bot.change(change_id).state is ChangeState.PENDING_APPROVAL
    assert bot.rt.store.approvals(change_id) == []
    assert decisions(bot) == []
    assert bot.split("loan-assessor") == {"1.2.0": 100}


def test_the_id_decides_the_plan_that_was_shown_and_no_newer_one(bot: Bot) -> None:
    """Bob looks at CHG-1 by its endpoint; before he types its id, Alice cancels it and
    asks for another version. His typed id still means CHG-1 (closed: nothing is
    approved), and the endpoint now shows him CHG-2, which he has not approved."""
    bot.run(ALICE, DEPLOY)
    first = pending(bot)
    assert f"/aiops approve {first}" in bot.run(BOB, "/aiops approve loan-assessor").text
    assert bot.run(ALICE, f"/aiops cancel {first}").ok
    assert bot.run(ALICE, DEPLOY.replace("1.2.1", "1.1.0")).ok
    second = pending(bot)
    assert second != first

    late = bot.run(BOB, f"/aiops approve {first}")
    assert not late.ok and "cancelled" in late.text
    assert bot.change(second).state is ChangeState.PENDING_APPROVAL
    shown = bot.run(BOB, "/aiops approve loan-assessor")
    assert f"/aiops approve {second}" in shown.text and "1.1.0" in str(shown.blocks)
    assert bot.change(second).state is ChangeState.PENDING_APPROVAL

    done = bot.run(BOB, f"/aiops approve {second}")
    assert done.ok, text_of(done)
    assert bot.change(second).state is ChangeState.SUCCEEDED
    [approval] = bot.rt.store.approvals(second)
    assert approval.plan_hash == bot.change(second).plan.plan_hash  # bound as shown
    assert bot.split("loan-assessor") == {"1.2.0": 90, "1.1.0": 10}


def test_who_may_not_decide_is_refused_before_any_plan_is_shown(bot: Bot) -> None:
    bot.run(ALICE, DEPLOY)
    own = bot.run(ALICE, "/aiops approve loan-assessor")
    assert not own.ok and "someone else" in own.text
    stranger = bot.run(DAVE, "/aiops reject loan-assessor")
    assert not stranger.ok and "may not reject" in stranger.text
    assert decisions(bot) == ["decision_refused", "decision_refused"]


def test_a_change_that_is_no_longer_its_endpoints_pending_one_is_not_decided(
    bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot.run(ALICE, DEPLOY)
    change_id = pending(bot)
    monkeypatch.setattr(bot.rt.store, "open_change", lambda endpoint: None)
    reply = bot.run(CAROL, f"/aiops approve {change_id}")
    assert not reply.ok and "no longer the pending change" in reply.text
    assert bot.rt.store.approvals(change_id) == []
    assert decisions(bot) == ["decision_refused"]


def test_reject_by_id_still_rejects(bot: Bot) -> None:
    bot.run(ALICE, DEPLOY)
    change_id = pending(bot)
    shown = bot.run(CAROL, '/aiops reject loan-assessor reason="month end"')
    assert f'/aiops reject {change_id} reason="…"' in shown.text
    assert bot.change(change_id).state is ChangeState.PENDING_APPROVAL
    assert bot.run(CAROL, f'/aiops reject {change_id} reason="month end"').ok
    assert bot.change(change_id).state is ChangeState.REJECTED
