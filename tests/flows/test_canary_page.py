"""The canary `page` policy (prod in the bundled config) feeds the alert path: a regression
the bot rolls back is one alert message in the ops channel (Declare incident / Roll back /
Acknowledge, the figures, "already rolling back"), closed when the rollback has run; it
pages the on-call through the pager port when one is configured (a recording pager, and
PagerDuty's Events API fake over HTTP), and keeps its `@here` when paging is off."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from commands.canary.model import WatchState
from commands.incidents.pager import PageAction
from commands.messages import Buttons, Post
from tests.flows.test_canary import PROD, audit, deploy, new_bot, posts, tick, watch_of
from tests.flows.test_incidents import RecordingPager
from tests.support.harness import BOB, Bot, FakeClock

FAULTY = "1.3.0-rc1"


@pytest.fixture
def cbot(sqlite_engine: Engine, clock: FakeClock) -> Iterator[Bot]:
    b = new_bot(sqlite_engine, clock)
    yield b
    b.rt.background.wait_idle(30)


def shown(post: Post) -> str:
    from bot.slack.blocks import render_message

    return json.dumps(render_message(post.reply), ensure_ascii=False)


def alert_messages(bot: Bot) -> list[Post]:
    return [p for p in posts(bot) if p.reply.text.startswith("ALERT-") and not p.update]


def until_rolled_back(bot: Bot) -> None:
    """Five-minute ticks until the bot has rolled the faulty canary back (the regression
    is confirmed within a few windows on prod's traffic)."""
    for _ in range(6):
        tick(bot, 5)
        if bot.split(PROD) == {"1.2.0": 100}:
            return
    raise AssertionError(f"not rolled back: {bot.split(PROD)}")


def buttons(post: Post) -> list[str]:
    return [
        b.action_id for blk in post.reply.blocks if isinstance(blk, Buttons) for b in blk.buttons
    ]


def test_without_a_pager_the_alert_is_posted_and_the_here_stays(cbot: Bot) -> None:
    assert cbot.rt.pager.name == "none"  # the bundled config: `[incidents] pager = "none"`
    deploy(cbot, PROD, FAULTY, 10)
    until_rolled_back(cbot)
    [message] = alert_messages(cbot)
    assert message.channel == cbot.rt.config.channels.ops
    assert buttons(message) == ["incident.declare", "incident.rollback", "incident.ack"]
    seen = shown(message)
    assert "ALERT-1 · canary regression" in seen and PROD in seen
    assert f"canary {FAULTY} regressed against 1.2.0" in seen and "ms" in seen
    assert "already rolling this canary back" in seen and "CHG-" in seen
    # the first confirmed regression is on P95 (errors need more requests): by the team's
    # rule, production degraded, not failing
    assert "P2: `loan-assessor` is production, degraded (not errors)" in seen
    assert "Observed:* canary P95" in seen and "Observed:* canary errors" not in seen
    assert "runbooks/loan-assessor|Runbook>" in seen  # the endpoint's runbook
    [here] = [p for p in posts(cbot) if "<!here>" in p.reply.text]
    assert here.channel == cbot.rt.config.channels.ops and "(ALERT-1)" in here.reply.text
    assert audit(cbot, "page_sent") == [] and audit(cbot, "page_failed") == []
    [received] = audit(cbot, "alert_received")
    assert received.parameters["source"] == "canary"
    assert received.parameters["key"] == f"canary:{watch_of(cbot, PROD).ref}"

    tick(cbot)  # the rollback has succeeded: the watch ends, the alert closes
    assert watch_of(cbot, PROD).state is WatchState.ROLLED_BACK
    alert = cbot.rt.incidents.get_alert("ALERT-1")  # type: ignore[union-attr]
    assert alert is not None and alert.closed_at is not None
    [closed] = [p for p in posts(cbot) if p.update and p.ts == alert.message_ts]
    assert "Resolved at" in shown(closed) and "rolled back by CHG-" in shown(closed)
    assert buttons(closed) == []  # closed: nothing to declare, roll back or acknowledge
    assert len(audit(cbot, "alert_closed")) == 1
    tick(cbot, 10)
    assert len(alert_messages(cbot)) == 1 and len(audit(cbot, "alert_closed")) == 1


def test_a_pager_is_paged_for_the_alert_and_resolved_with_it(cbot: Bot) -> None:
    pager = RecordingPager()
    cbot.rt.pager = pager
    deploy(cbot, PROD, FAULTY, 10)
    until_rolled_back(cbot)
    assert [p for p in posts(cbot) if "<!here>" in p.reply.text] == []  # the page is the alarm
    [trigger] = pager.pages
    assert trigger.action is PageAction.TRIGGER and trigger.dedup_key == "ALERT-1"
    assert trigger.severity == "error"  # P2: prod degraded (its P95 regressed)
    assert trigger.environment == "prod" and trigger.source == PROD
    assert trigger.summary.startswith("ALERT-1 P2 loan-assessor: loan-assessor: canary")
    assert trigger.custom_details["policy"] == "canary regression"
    alert = cbot.rt.incidents.get_alert("ALERT-1")  # type: ignore[union-attr]
    assert alert is not None and alert.paged_at is not None
    thread = [p for p in posts(cbot) if p.thread_ts == alert.message_ts]
    assert any(
        ":pager: Paged the on-call (pagerduty, error) for ALERT-1" in p.reply.text for p in thread
    )
    [sent] = audit(cbot, "page_sent")
    assert sent.parameters["alert"] == "ALERT-1" and sent.parameters["action"] == "trigger"

    assert cbot.run(BOB, "/aiops incident ack ALERT-1").ok  # the on-call is on it
    tick(cbot)  # rolled back: the alert closes and the page resolves
    assert [p.action for p in pager.pages] == [
        PageAction.TRIGGER,
        PageAction.ACKNOWLEDGE,
        PageAction.RESOLVE,
    ]
    assert {p.dedup_key for p in pager.pages} == {"ALERT-1"}
    assert [r.parameters["action"] for r in audit(cbot, "page_sent")] == [
        "trigger",
        "acknowledge",
        "resolve",
    ]


def test_a_page_not_delivered_is_said_under_the_alert_and_audited(cbot: Bot) -> None:
    pager = RecordingPager(deliver=False)
    cbot.rt.pager = pager
    deploy(cbot, PROD, FAULTY, 10)
    until_rolled_back(cbot)
    [failed] = audit(cbot, "page_failed")
    assert failed.parameters["alert"] == "ALERT-1" and failed.parameters["attempts"] == 3
    assert "503" in failed.outcome
    alert = cbot.rt.incidents.get_alert("ALERT-1")  # type: ignore[union-attr]
    assert alert is not None and alert.paged_at is None
    [said] = [
        p
        for p in posts(cbot)
        if p.thread_ts == alert.message_ts and "did not reach" in p.reply.text
    ]
    assert said.reply.text.startswith("<!here>") and "Call the on-call directly" in said.reply.text
    tick(cbot)  # it closes; a page never delivered is not resolved
    assert [p.action for p in pager.pages] == [PageAction.TRIGGER]


def test_the_pagerduty_fake_gets_one_alert_triggered_and_resolved(cbot: Bot) -> None:
    from bot.pager.pagerduty import PagerDuty, RetryPolicy
    from tests.support.fakes.pagerduty_server import FakePagerDuty

    fake = FakePagerDuty().serve()
    try:
        key = "P" * 32  # a test routing key, not a credential
        cbot.rt.pager = PagerDuty(
            {"PAGERDUTY_ROUTING_KEY_PROD": key},
            url=fake.url,
            retry=RetryPolicy(max_attempts=2, base_delay=0.0),
            sleep=lambda s: None,
        )
        fake.fail(503)  # one 5xx: retried
        deploy(cbot, PROD, FAULTY, 10)
        until_rolled_back(cbot)
        alert = fake.alert("ALERT-1")
        assert alert is not None and alert.routing_key == key
        assert (alert.status, alert.severity, alert.source) == ("triggered", "error", PROD)
        event: dict[str, Any] = fake.events[0]
        assert event["payload"]["custom_details"]["alert"] == "ALERT-1"
        tick(cbot)
        assert alert.actions == ["trigger", "resolve"] and alert.status == "resolved"
        [sent, resolved] = audit(cbot, "page_sent")
        assert sent.parameters["attempts"] == 2 and resolved.parameters["action"] == "resolve"
    finally:
        fake.close()


def test_an_incident_declared_from_a_paged_alert_carries_its_page_on(cbot: Bot) -> None:
    """The canary paged under ALERT-1; declaring it P1 does not open a second page: the
    incident's events use ALERT-1 as dedup key (one alert at the pager), the canary's
    rollback ending closes the Slack alert but not the incident's page, and resolving
    the incident resolves it."""
    pager = RecordingPager()
    cbot.rt.pager = pager
    deploy(cbot, PROD, FAULTY, 10)
    until_rolled_back(cbot)
    assert [(p.action, p.dedup_key) for p in pager.pages] == [(PageAction.TRIGGER, "ALERT-1")]
    declared = cbot.run(BOB, f'/aiops incident declare {PROD} sev=P1 summary="rc1" alert=ALERT-1')
    assert declared.ok, declared.text
    assert [(p.action, p.dedup_key) for p in pager.pages][1:] == [
        (PageAction.TRIGGER, "ALERT-1")  # the same alert at the pager, now the incident's
    ]
    carried = pager.pages[1]
    assert carried.severity == "critical" and carried.custom_details["incident"] == "INC-1"
    assert carried.custom_details["carries_page_of"] == "ALERT-1"
    incident = cbot.rt.incidents.get_incident("INC-1")  # type: ignore[union-attr]
    assert incident is not None and incident.paged_at is not None
    thread = [p.reply.text for p in posts(cbot) if p.thread_ts == incident.thread_ts]
    assert any("for INC-1 (carrying on ALERT-1's page)" in t for t in thread)
    tick(cbot)  # the rollback has run: the alert closes in Slack, the page stays open
    alert = cbot.rt.incidents.get_alert("ALERT-1")  # type: ignore[union-attr]
    assert alert is not None and alert.closed_at is not None
    assert len(pager.pages) == 2
    assert cbot.run(BOB, '/aiops incident resolve INC-1 cause="rc1 tokenizer"').ok
    assert [(p.action, p.dedup_key) for p in pager.pages][2:] == [(PageAction.RESOLVE, "ALERT-1")]
    assert {r.parameters["dedup_key"] for r in audit(cbot, "page_sent")} == {"ALERT-1"}
