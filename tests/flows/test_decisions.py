"""A decision is stored only if it took effect: clicks racing on one change (approve
against reject, approve against approve, a click checked before another approver ran the
change) on SQLite and PostgreSQL. After each race the approval table, the dossier and the
audit's decision rows hold exactly the decisions that counted, and every clicker was told
what became of theirs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Engine

import commands.changes.approve as approve_module
from commands.audit import AuditAction
from commands.config import Config
from commands.messages import Reply, mention
from commands.model import Actor, ChangeState, Invocation
from commands.ports import AuditQuery
from commands.reports.dossier import build, to_markdown
from commands.runtime import NullNotifier
from tests.support.harness import ALICE, BOB, CAROL, DAVE, Bot, FakeClock, example_config

ERIN = Actor("U0ERIN", "erin")
DEPLOY = '/deploy loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="fix tokenizer bug"'
APPROVERS = (BOB.id, CAROL.id, DAVE.id, ERIN.id)


def configured(required: int) -> Config:
    config = example_config()
    envs = dict(config.environments)
    envs["prod"] = replace(envs["prod"], approvers=APPROVERS, approvals_required=required)
    return replace(config, environments=envs)


def requested(engine: Engine, required: int) -> tuple[Bot, str]:
    from tests.support.harness import make_runtime

    clock = FakeClock()
    bot = Bot(make_runtime(engine, clock, NullNotifier(), configured(required)), clock)
    assert bot.run(ALICE, DEPLOY).ok
    change = bot.rt.store.open_change("loan-assessor")
    assert change is not None and change.state is ChangeState.PENDING_APPROVAL
    return bot, change.id


def race(bot: Bot, clicks: list[tuple[Actor, str]]) -> dict[str, Reply]:
    """Every click at once (one thread each, released together); each clicker's reply."""
    barrier = threading.Barrier(len(clicks))
    replies: dict[str, Reply] = {}

    def click(actor: Actor, line: str) -> None:
        command, _, text = line.partition(" ")
        barrier.wait()
        replies[actor.id] = bot.service.handle(
            Invocation(actor, command, text, channel_id="C0TEST")
        )

    threads = [threading.Thread(target=click, args=c) for c in clicks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bot.rt.background.wait_idle(60)
    return replies


def assert_only_effective_decisions(
    bot: Bot, change_id: str, replies: dict[str, Reply]
) -> list[str]:
    """The approval table, the dossier and the audit's decision rows name exactly the
    clickers told their decision counted; everyone else heard who decided and that nothing
    was done. Returns the effective deciders, in the order they were stored."""
    store = bot.rt.store
    change = store.get_change(change_id)
    assert change is not None
    stored = [a.approver_id for a in store.approvals(change_id)]
    counted = sorted(who for who, reply in replies.items() if reply.ok)
    assert sorted(stored) == counted, {w: r.text for w, r in replies.items()}
    for reply in replies.values():
        if reply.ok:
            assert "nothing was done" not in reply.text
        else:
            assert reply.text.endswith("nothing was done"), reply.text
            # the state it was in when told (approved, running, succeeded…), and who decided
            verb = "rejected" if change.state is ChangeState.REJECTED else "approved"
            assert f"({verb} by {mention(str(change.decided_by))} at" in reply.text, reply.text
    dossier = build(store, bot.rt.config, change_id)
    decisions = dossier["decisions"]
    assert [a["by"]["id"] for a in decisions["approvals"]] == stored
    assert all(a["bound_to_plan_shown"] for a in decisions["approvals"])
    effective = {AuditAction.APPROVE.value, AuditAction.REJECT.value}
    assert sorted(
        r["actor"]["id"] for r in decisions["audit"] if r["action"] in effective
    ) == sorted(stored)
    refused_rows = {
        e.actor_id
        for e in store.audit(AuditQuery(change_id=change_id))
        if e.action == AuditAction.DECISION_REFUSED
    }
    assert refused_rows == {who for who, reply in replies.items() if not reply.ok}
    lines = [
        line
        for line in to_markdown(dossier).splitlines()
        if line.startswith(("- approve by ", "- reject by "))
    ]
    for who, reply in replies.items():
        assert any(who in line for line in lines) is reply.ok, (who, lines)
    return stored


def requester_heard(bot: Bot) -> list[str]:
    notifier = bot.rt.notifier
    assert isinstance(notifier, NullNotifier)
    return [
        p.reply.text
        for p in notifier.posts
        if p.channel == ALICE.id
        and ("approved by" in p.reply.text or "rejected by" in p.reply.text)
    ]


def executions(bot: Bot, change_id: str) -> int:
    return sum(
        e.action == AuditAction.EXECUTION_STARTED
        for e in bot.rt.store.audit(AuditQuery(change_id=change_id))
    )


@pytest.mark.parametrize("required", [1, 2])
def test_approve_and_reject_racing_store_only_what_took_effect(
    engine: Engine, required: int
) -> None:
    bot, change_id = requested(engine, required)
    replies = race(
        bot,
        [
            (BOB, f"/aiops approve {change_id}"),
            (CAROL, f"/aiops reject {change_id} reason=not-today"),
            (DAVE, f"/aiops approve {change_id}"),
            (ERIN, f"/aiops reject {change_id}"),
        ],
    )
    stored = assert_only_effective_decisions(bot, change_id, replies)
    change = bot.change(change_id)
    if change.state is ChangeState.REJECTED:
        # the first reject stored closed it; approvals before it stay (each counted then)
        decisions = [a.decision for a in bot.rt.store.approvals(change_id)]
        assert decisions[-1] == "reject" and decisions.count("reject") == 1
        assert decisions.count("approve") < required
        assert executions(bot, change_id) == 0
        assert requester_heard(bot) == [
            f"{change_id} (deploy loan-assessor) was rejected by {mention(stored[-1])}."
            if stored[-1] == ERIN.id
            else f"{change_id} (deploy loan-assessor) was rejected by {mention(stored[-1])}:"
            " not-today"
        ]
    else:
        assert change.state is ChangeState.SUCCEEDED
        decisions = [a.decision for a in bot.rt.store.approvals(change_id)]
        assert decisions == ["approve"] * required
        assert executions(bot, change_id) == 1
        (heard,) = requester_heard(bot)
        assert f"approved by {mention(stored[-1])}" in heard


@pytest.mark.parametrize("required", [1, 2])
def test_approvals_racing_store_only_what_took_effect(engine: Engine, required: int) -> None:
    bot, change_id = requested(engine, required)
    replies = race(bot, [(who, f"/aiops approve {change_id}") for who in (BOB, CAROL, DAVE, ERIN)])
    stored = assert_only_effective_decisions(bot, change_id, replies)
    assert len(stored) == required  # the one that completed the quorum closed it
    assert bot.change(change_id).state is ChangeState.SUCCEEDED
    assert executions(bot, change_id) == 1
    (heard,) = requester_heard(bot)
    assert f"approved by {mention(stored[-1])}" in heard
    told = sorted(r.text for r in replies.values() if r.ok)
    assert told == sorted(
        [f"Approval recorded ({n} of {required})." for n in range(1, required)]
        + [f"Approved {change_id}; running now."]
    )


def test_the_same_person_clicking_twice_at_once_counts_once(engine: Engine) -> None:
    bot, change_id = requested(engine, 2)
    barrier = threading.Barrier(4)
    replies: list[Reply] = []

    def click() -> None:
        barrier.wait()
        replies.append(
            bot.service.handle(
                Invocation(BOB, "/aiops", f"approve {change_id}", channel_id="C0TEST")
            )
        )

    threads = [threading.Thread(target=click) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.ok for r in replies) == 1
    assert all("already decided" in r.text for r in replies if not r.ok)
    assert [a.approver_id for a in bot.rt.store.approvals(change_id)] == [BOB.id]
    assert bot.change(change_id).state is ChangeState.PENDING_APPROVAL


def test_a_click_checked_before_another_approver_ran_the_change_stores_nothing(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Carol's click passes every check while the change is pending; Bob's approval then
    runs the change before Carol's decision reaches the store."""
    bot, change_id = requested(engine, 1)
    carol_checked, bob_done = threading.Event(), threading.Event()
    real_check: Callable[..., Any] = approve_module.check_approval

    def check_then_wait(rt: Any, change: Any, actor: Actor, request_id: Any = None) -> Any:
        bound = real_check(rt, change, actor, request_id)
        if actor.id == CAROL.id:
            carol_checked.set()
            assert bob_done.wait(30)
        return bound

    monkeypatch.setattr(approve_module, "check_approval", check_then_wait)
    replies: dict[str, Reply] = {}

    def carol() -> None:
        replies[CAROL.id] = bot.service.handle(
            Invocation(CAROL, "/aiops", f"approve {change_id}", channel_id="C0TEST")
        )

    thread = threading.Thread(target=carol)
    thread.start()
    assert carol_checked.wait(30)
    replies[BOB.id] = bot.run(BOB, f"/aiops approve {change_id}")
    assert bot.change(change_id).state is ChangeState.SUCCEEDED  # it ran
    bob_done.set()
    thread.join()
    late = replies[CAROL.id]
    assert not late.ok
    assert late.text.startswith(f"{change_id} is already succeeded (approved by {mention(BOB.id)}")
    assert_only_effective_decisions(bot, change_id, replies)
    assert executions(bot, change_id) == 1
    # and a click after it all, which sees the change closed at once, is the same story
    replies[DAVE.id] = bot.run(DAVE, f"/aiops approve {change_id}")
    assert not replies[DAVE.id].ok
    assert_only_effective_decisions(bot, change_id, replies)
