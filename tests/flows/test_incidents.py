"""Respond through the domain service, typed as people type it (the `Bot.run` harness), on
the sandbox and a real SQLite file: alerts in, incidents declared, acknowledged, raised,
mitigated by linked changes and resolved, pages out (a recording pager at the port), and
hand-off notes. Hostile input: PII in a summary, Slack markup, unknown ids, a resolve
without its cause, an endpoint that does not exist."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from commands.incidents.alerts import receive_alert
from commands.incidents.model import AlertNotice, AlertSource, AlertState, IncidentState
from commands.incidents.pager import Page, PageAction, PageResult
from commands.messages import Buttons, Post
from commands.model import ChangeState, Invocation
from commands.ports import AuditEvent, AuditQuery
from commands.runtime import NullNotifier
from tests.support.harness import ALICE, BOB, CAROL, DAVE, Bot, text_of

CARD = "4111 1111 1111 1111"


class GatedPager:
    """A pager that answers only when the test lets it (`gate`), as a slow PagerDuty
    retrying would: what the command answered before that did not wait for it."""

    name = "pagerduty"

    def __init__(self) -> None:
        self.pages: list[Page] = []
        self.gate = threading.Event()
        self.answered = threading.Event()

    def send(self, page: Page) -> PageResult:
        self.pages.append(page)
        self.gate.wait(10)  # the first event holds; a command that waits fails the test
        self.answered.set()
        return PageResult(delivered=True, attempts=3)


class RecordingPager:
    """The pager port's seam: records every page; answers as told."""

    name = "pagerduty"

    def __init__(self, deliver: bool = True) -> None:
        self.pages: list[Page] = []
        self.deliver = deliver

    def send(self, page: Page) -> PageResult:
        self.pages.append(page)
        if self.deliver:
            return PageResult(delivered=True)
        return PageResult(delivered=False, error="PagerDuty answered 503 three times", attempts=3)


@pytest.fixture
def pager(bot: Bot) -> RecordingPager:
    p = RecordingPager()
    bot.rt.pager = p
    return p


def posts(bot: Bot) -> list[Post]:
    notifier = bot.rt.notifier
    assert isinstance(notifier, NullNotifier)
    return notifier.posts


def shown(post: Post) -> str:
    """A post as the domain composed it (before the renderer's own masking)."""
    return json.dumps([repr(b) for b in post.reply.blocks]) + post.reply.text


def rows(bot: Bot, action: str) -> list[AuditEvent]:
    return [e for e in bot.rt.store.audit(AuditQuery()) if e.action == action]


def buttons(post: Post) -> list[str]:
    return [
        b.action_id for blk in post.reply.blocks if isinstance(blk, Buttons) for b in blk.buttons
    ]


VERTEX = "aiplatform.googleapis.com/prediction/online"


def notice(key: str = "cloud-monitoring:0.abc", **kw: Any) -> AlertNotice:
    fields: dict[str, Any] = dict(
        key=key,
        source=AlertSource.CLOUD_MONITORING,
        state=AlertState.OPEN,
        policy="loan-assessor error rate",
        condition="error rate > 1%",
        endpoint="loan-assessor",
        environment="prod",
        summary="error rate 4.2% on loan-assessor",
        observed="error rate 4.20% > 1%",
        url="https://console.cloud.google.com/monitoring/alerting/incidents/0.abc",
        labels={"metric_type": f"{VERTEX}/error_count"},
    )
    return AlertNotice(**(fields | kw))


def declare(bot: Bot, line: str = 'loan-assessor sev=P1 summary="5xx since 14:05"') -> Any:
    reply = bot.run(ALICE, f"/aiops incident declare {line}")
    assert reply.ok, text_of(reply)
    return reply


# --------------------------------------------------------------------- declare


def test_a_declared_p1_gets_its_thread_and_pages_the_on_call(
    bot: Bot, pager: RecordingPager
) -> None:
    reply = declare(bot, 'loan-assessor sev=P1 summary="5xx since 14:05" oncall=@bob')
    assert "INC-1" in reply.text and "Declared INC-1" in text_of(reply)
    incident = bot.rt.incidents.get_incident("INC-1")  # type: ignore[union-attr]
    assert incident is not None and incident.state is IncidentState.DECLARED
    assert (incident.commander, incident.on_call) == (ALICE.id, BOB.id)
    assert incident.environment == "prod" and incident.paged_at is not None
    [card, paged_line] = posts(bot)
    assert card.channel == "C0OPS" and card.thread_ts is None  # the head of its thread
    assert (incident.channel, incident.thread_ts) == (card.channel, "1.000")
    assert buttons(card) == [
        "incident.rollback",
        "incident.pause",
        "incident.scale",
        "incident.ack",
        "incident.resolve",
    ]
    assert paged_line.thread_ts == "1.000" and "Paged the on-call" in paged_line.reply.text
    [page] = pager.pages
    assert page.action is PageAction.TRIGGER and page.dedup_key == "INC-1"
    assert (page.environment, page.severity, page.source) == ("prod", "critical", "loan-assessor")
    assert page.custom_details["incident"] == "INC-1"
    [declared] = rows(bot, "incident_declared")
    assert declared.parameters["incident"] == "INC-1" and declared.target == "loan-assessor"
    assert declared.environment == "prod" and declared.parameters["severity"] == "P1"
    assert declared.parameters["suggested_severity"] == "P2"  # healthy figures: degraded
    [sent] = rows(bot, "page_sent")
    assert sent.parameters["incident"] == "INC-1" and sent.parameters["action"] == "trigger"


def test_a_p3_pages_no_one(bot: Bot, pager: RecordingPager) -> None:
    declare(bot, 'loan-assessor-stg sev=P3 summary="staging slow"')
    assert pager.pages == [] and not rows(bot, "page_sent")


def test_severity_is_a_persons_choice_and_the_refusal_shows_the_suggestion(bot: Bot) -> None:
    reply = bot.run(ALICE, '/aiops incident declare loan-assessor summary="slow"')
    assert not reply.ok
    assert "Suggested: *P2*" in text_of(reply) and "sev=P2" in text_of(reply)
    reply = bot.run(ALICE, '/aiops incident declare loan-assessor-stg summary="slow"')
    assert "Suggested: *P3*" in text_of(reply) and "staging" in text_of(reply)
    reply = bot.run(ALICE, '/aiops incident declare loan-assessor sev=P7 summary="x"')
    assert not reply.ok and "not one of P1, P2, P3" in text_of(reply)
    assert bot.rt.incidents.list_incidents() == []  # type: ignore[union-attr]


def test_unknown_endpoint_is_refused_with_the_closest_names(bot: Bot) -> None:
    reply = bot.run(ALICE, '/aiops incident declare loan-asesor sev=P1 summary="x"')
    assert not reply.ok
    assert "unknown endpoint `loan-asesor`" in reply.text
    assert "did you mean `loan-assessor`" in reply.text
    assert bot.rt.incidents.list_incidents() == [] and posts(bot) == []  # type: ignore[union-attr]


def test_unknown_incident_and_verb_get_did_you_mean(bot: Bot) -> None:
    declare(bot)
    reply = bot.run(ALICE, "/aiops incident ack INC-11")
    assert not reply.ok and "no incident `INC-11`; did you mean `INC-1`?" in reply.text
    reply = bot.run(ALICE, "/aiops incident resolv INC-1")
    assert not reply.ok and "did you mean `resolve`" in reply.text
    reply = bot.run(ALICE, '/aiops incident declare loan-assessor-stg sev=P3 summary="x" cause="y"')
    assert not reply.ok and "not `cause=`" in reply.text


def test_one_open_incident_per_endpoint(bot: Bot) -> None:
    declare(bot)
    reply = bot.run(BOB, '/aiops incident declare loan-assessor sev=P2 summary="also slow"')
    assert not reply.ok and "already has an open incident: INC-1" in reply.text
    assert "/aiops incident update INC-1" in text_of(reply)


def test_a_read_only_person_cannot_declare_or_move_one(bot: Bot) -> None:
    reply = bot.run(DAVE, '/aiops incident declare loan-assessor sev=P1 summary="x"')
    assert not reply.ok and "may not declare incidents in `prod`" in reply.text
    declare(bot)
    assert not bot.run(DAVE, "/aiops incident ack INC-1").ok
    assert not bot.run(DAVE, '/aiops handoff "all quiet"').ok
    assert bot.run(DAVE, "/aiops incident show INC-1").ok  # reading is for everyone


# ------------------------------------------------------------- moves and pages


def test_ack_severity_mitigated_resolve_follow_the_pager(bot: Bot, pager: RecordingPager) -> None:
    declare(bot, 'loan-assessor sev=P3 summary="slow answers"')
    assert pager.pages == []
    reply = bot.run(BOB, '/aiops incident severity INC-1 P1 reason="customers see 5xx"')
    assert reply.ok, text_of(reply)
    assert [p.action for p in pager.pages] == [PageAction.TRIGGER]  # raised to P1: paged
    assert pager.pages[0].severity == "critical"
    assert not bot.run(BOB, "/aiops incident severity INC-1 P1").ok  # already P1

    assert bot.run(BOB, "/aiops incident ack INC-1").ok
    again = bot.run(CAROL, "/aiops incident ack INC-1")  # a second click: no second move
    assert again.ok and "already" in again.text
    incident = bot.rt.incidents.get_incident("INC-1")  # type: ignore[union-attr]
    assert incident is not None and incident.state is IncidentState.ACKNOWLEDGED
    assert incident.on_call == BOB.id  # whoever acknowledges is on it, if nobody was named
    assert [p.action for p in pager.pages] == [PageAction.TRIGGER, PageAction.ACKNOWLEDGE]
    assert len(rows(bot, "incident_acknowledged")) == 1

    bot.clock.advance(minutes=10)
    assert bot.run(BOB, "/aiops incident mitigated INC-1").ok
    bot.clock.advance(minutes=20)
    refused = bot.run(BOB, "/aiops incident resolve INC-1")
    assert not refused.ok and "needs its root cause" in refused.text
    assert bot.rt.incidents.get_incident("INC-1").state is IncidentState.MITIGATED  # type: ignore[union-attr]
    done = bot.run(BOB, '/aiops incident resolve INC-1 cause="1.3.0-rc1 tokenizer regression"')
    assert done.ok, text_of(done)
    resolved = bot.rt.incidents.get_incident("INC-1")  # type: ignore[union-attr]
    assert resolved is not None and resolved.state is IncidentState.RESOLVED
    assert resolved.root_cause == "1.3.0-rc1 tokenizer regression"
    assert resolved.mitigated_at is not None and resolved.resolved_at is not None
    assert resolved.resolved_at - resolved.mitigated_at == timedelta(minutes=20)
    assert [p.action for p in pager.pages][-1] is PageAction.RESOLVE
    assert all(p.dedup_key == "INC-1" for p in pager.pages)
    last_card = [p for p in posts(bot) if p.update][-1]
    assert buttons(last_card) == ["incident.review"] and "Root cause" in shown(last_card)
    # a resolved incident moves no more
    assert not bot.run(BOB, '/aiops incident update INC-1 "late note"').ok
    assert not bot.run(BOB, '/aiops incident resolve INC-1 cause="again"').ok
    for action in (
        "incident_severity",
        "incident_acknowledged",
        "incident_mitigated",
        "incident_resolved",
    ):
        [row] = rows(bot, action)
        assert row.parameters["incident"] == "INC-1" and row.target == "loan-assessor"
    assert [r.parameters["action"] for r in rows(bot, "page_sent")] == [
        "trigger",
        "acknowledge",
        "resolve",
    ]


def test_updates_go_to_the_thread(bot: Bot) -> None:
    declare(bot)
    reply = bot.run(BOB, '/aiops incident update INC-1 "rolled back; errors falling"')
    assert reply.ok
    last = posts(bot)[-1]
    assert last.thread_ts == "1.000" and "rolled back; errors falling" in last.reply.text
    [row] = rows(bot, "incident_updated")
    assert row.parameters == {
        "incident": "INC-1",
        "alert": None,
        "text": "rolled back; errors falling",
    }


def test_without_a_pager_the_thread_says_here(bot: Bot) -> None:
    assert bot.rt.pager.name == "none"  # the sandbox example: pager = "none"
    declare(bot)
    here = [p for p in posts(bot) if p.thread_ts and "<!here>" in p.reply.text]
    assert len(here) == 1 and "Paging is off" in here[0].reply.text
    # what happened, truthfully: an @here, nobody paged
    [here_row] = rows(bot, "here_posted")
    assert here_row.parameters["via"] == "@here" and here_row.parameters["incident"] == "INC-1"
    assert "nobody paged" in here_row.outcome and not rows(bot, "page_sent")
    assert bot.run(BOB, "/aiops incident ack INC-1").ok  # nothing to acknowledge at no pager
    assert not rows(bot, "page_sent") and len(rows(bot, "here_posted")) == 1
    # the end of day lists the declaration as Alice's intervention, not the bot's @here
    from commands.digests.gather import gather, schedule_for
    from commands.digests.schedule import DigestKind

    data = gather(bot.rt, DigestKind.EOD, schedule_for(bot.rt, "prod"), now=bot.clock())
    done = " ".join(line for lines in data.interventions.values() for line in lines)
    assert "incident declared" in done
    assert "page" not in done and "here" not in done


def test_a_page_not_delivered_is_said_and_audited(bot: Bot) -> None:
    bot.rt.pager = RecordingPager(deliver=False)
    reply = declare(bot)
    assert "the thread says when it is delivered" in text_of(reply)  # paged after the reply
    failed_line = [p for p in posts(bot) if p.thread_ts and "did not reach" in p.reply.text]
    assert len(failed_line) == 1 and "<!here>" in failed_line[0].reply.text
    [failed] = rows(bot, "page_failed")
    assert failed.parameters["incident"] == "INC-1" and "503" in failed.outcome
    assert failed.parameters["attempts"] == 3
    incident = bot.rt.incidents.get_incident("INC-1")  # type: ignore[union-attr]
    assert incident is not None and incident.paged_at is None  # never paged
    bot.run(BOB, "/aiops incident ack INC-1")
    assert len(bot.rt.pager.pages) == 1  # type: ignore[attr-defined]  # no ack for a page never sent


def test_a_raised_severity_is_answered_at_once_and_paged_after(bot: Bot) -> None:
    """The reply does not wait for the pager's retries; the page still goes, said in the
    thread and audited."""
    declare(bot, 'loan-assessor sev=P3 summary="slow answers"')
    pager = GatedPager()
    bot.rt.pager = pager
    reply = bot.service.handle(
        Invocation(BOB, "/aiops", "incident severity INC-1 P1", channel_id="C0TEST")
    )
    assert reply.ok and "Paging the on-call" in reply.text
    assert not pager.answered.is_set()  # answered before the pager did
    pager.gate.set()
    bot.rt.background.wait_idle(30)
    [trigger] = pager.pages
    assert trigger.action is PageAction.TRIGGER and trigger.severity == "critical"
    assert [p for p in posts(bot) if p.thread_ts and ":pager: Paged the on-call" in p.reply.text]
    [sent] = rows(bot, "page_sent")
    assert sent.parameters["incident"] == "INC-1" and sent.actor_id == BOB.id
    assert bot.rt.incidents.get_incident("INC-1").paged_at is not None  # type: ignore[union-attr]


def test_a_trigger_delivered_after_the_incident_moved_catches_up(bot: Bot) -> None:
    """Declared P1, then resolved while the pager was still answering its trigger: the
    trigger's `paged_at` came too late for the resolve to be sent, so the trigger sends
    it after itself: the pager keeps no alert open that the bot closed."""
    pager = GatedPager()
    bot.rt.pager = pager
    declared = bot.service.handle(
        Invocation(
            ALICE,
            "/aiops",
            'incident declare loan-assessor sev=P1 summary="5xx"',
            channel_id="C0TEST",
        )
    )
    assert declared.ok
    resolved = bot.service.handle(
        Invocation(BOB, "/aiops", 'incident resolve INC-1 cause="bad config"', channel_id="C0TEST")
    )
    assert resolved.ok, text_of(resolved)
    pager.gate.set()
    bot.rt.background.wait_idle(30)
    actions = [p.action for p in pager.pages]
    # the resolve's own event goes too when it ran after `paged_at` was set: harmless
    assert actions[0] is PageAction.TRIGGER and actions[-1] is PageAction.RESOLVE


# --------------------------------------------------------------- hostile input


def test_pii_in_a_summary_is_masked_in_slack_the_database_and_the_audit(
    bot: Bot, pager: RecordingPager
) -> None:
    # unquoted: the parser refuses the words after `summary=`, and its refusal (reply and
    # audit row) holds the card number masked
    refused = bot.run(
        ALICE, f"/aiops incident declare loan-assessor sev=P1 summary=customer {CARD} declined"
    )
    assert not refused.ok and "a value with spaces needs quotes" in refused.text
    assert "4111" not in text_of(refused) and "[CARD:" in refused.text
    [command_row] = rows(bot, "command")
    assert "4111" not in json.dumps(command_row.parameters) + command_row.outcome
    declare(bot, f'loan-assessor sev=P1 summary="customer {CARD} declined"')
    incident = bot.rt.incidents.get_incident("INC-1")  # type: ignore[union-attr]
    assert incident is not None and CARD not in incident.summary
    assert all("4111" not in shown(p) for p in posts(bot))
    assert all("4111" not in p.summary for p in pager.pages)
    assert all(
        "4111" not in json.dumps(e.parameters) + str(e.justification)
        for e in bot.rt.store.audit(AuditQuery())
    )
    engine = bot.rt.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        dump = " ".join(
            str(r)
            for table in ("incident", "audit_event")
            for r in conn.execute(text(f"SELECT * FROM {table}"))  # noqa: S608
        )
    assert "4111" not in dump
    bot.run(BOB, f'/aiops incident resolve INC-1 cause="card {CARD} in a log line"')
    assert "4111" not in (bot.rt.incidents.get_incident("INC-1").root_cause or "")  # type: ignore[union-attr]


def test_slack_markup_in_a_summary_stays_inert(bot: Bot) -> None:
    declare(
        bot,
        'loan-assessor sev=P2 summary="<!channel> <@U0BOB> <https://evil.example|click me> & co"',
    )
    card = posts(bot)[0]
    composed = shown(card)
    assert "<!channel>" not in composed and "<@U0BOB>" not in composed
    assert "&lt;!channel&gt;" in composed and "&amp; co" in composed
    assert "<https://evil.example|" not in composed


# --------------------------------------------------------------------- alerts


def test_an_alert_is_posted_once_and_its_close_updates_that_message(bot: Bot) -> None:
    first = receive_alert(bot.rt, notice())
    assert first.id == "ALERT-1" and (first.channel, first.message_ts) == ("C0OPS", "1.000")
    [message] = posts(bot)
    assert message.channel == "C0OPS" and not message.update
    assert buttons(message) == ["incident.declare", "incident.rollback", "incident.ack"]
    composed = shown(message)
    assert "P1" in composed and "customer-facing" in composed  # the suggestion and its rule
    declare_value = json.loads(message.reply.blocks[-1].buttons[0].value)  # type: ignore[attr-defined]
    assert declare_value == {
        "alert": "ALERT-1",
        "endpoint": "loan-assessor",
        "severity": "P1",
        "summary": "loan-assessor error rate: error rate 4.2% on loan-assessor",
        "rule": "`loan-assessor` is a customer-facing production endpoint with errors",
    }
    receive_alert(bot.rt, notice())  # a retry, another replica: nothing shows
    assert len(posts(bot)) == 1
    bot.clock.advance(minutes=25)
    ended = bot.clock()
    closed = receive_alert(bot.rt, notice(state=AlertState.CLOSED, ended_at=ended))
    assert closed.closed_at == ended
    update = posts(bot)[-1]
    assert update.update and update.ts == "1.000" and update.channel == "C0OPS"
    assert "Resolved at" in shown(update) and buttons(update) == []  # nothing to click
    receive_alert(bot.rt, notice(state=AlertState.CLOSED, ended_at=ended))  # retried close
    assert len(posts(bot)) == 2
    assert [r.parameters["alert"] for r in rows(bot, "alert_received")] == ["ALERT-1"]
    assert [r.parameters["alert"] for r in rows(bot, "alert_closed")] == ["ALERT-1"]
    assert rows(bot, "alert_received")[0].parameters["incident"] is None


def test_an_alert_first_seen_closed_is_posted_resolved(bot: Bot) -> None:
    receive_alert(bot.rt, notice(state=AlertState.CLOSED, ended_at=bot.clock()))
    assert "Resolved at" in shown(posts(bot)[0])
    assert len(rows(bot, "alert_closed")) == 1
    # its open notice arriving late changes nothing: a closed alert has no buttons
    receive_alert(bot.rt, notice())
    assert all(buttons(p) == [] for p in posts(bot))
    assert "alert=ALERT-1" in shown(posts(bot)[-1])  # how to declare it after the fact


def test_suggested_severity_follows_the_team_rules(bot: Bot) -> None:
    from commands.incidents.severity import suggest_for_alert

    config = bot.rt.config
    assert suggest_for_alert(config, notice())[0].value == "P1"
    latency = notice(policy="loan-assessor P95", condition="p95 > 2s", observed="P95 2,340 ms")
    assert suggest_for_alert(config, latency)[0].value == "P1"  # the metric says errors
    # what breached decides, not the policy's free text: "errors" on a latency metric
    named = notice(
        policy="[prod] loan-assessor: errors and latency",
        condition="error budget burn",
        labels={"metric_type": f"{VERTEX}/prediction_latencies"},
    )
    assert suggest_for_alert(config, named)[0].value == "P2"
    five_xx = {"metric_type": f"{VERTEX}/response_count", "metric.response_code": "503"}
    assert suggest_for_alert(config, notice(policy="responses", labels=five_xx))[0].value == "P1"
    four_xx = five_xx | {"metric.response_code": "429"}
    assert suggest_for_alert(config, notice(labels=four_xx))[0].value == "P2"
    assert suggest_for_alert(config, notice(labels={}))[0].value == "P2"  # no metric named
    watch = notice(policy="health watch: errors", labels={"metric": "p95_latency_ms"})
    assert suggest_for_alert(config, watch)[0].value == "P2"
    assert suggest_for_alert(config, notice(labels={"metric": "error_rate"}))[0].value == "P1"
    staging = notice(endpoint="loan-assessor-stg", environment="staging")
    assert suggest_for_alert(config, staging)[0].value == "P3"
    assert suggest_for_alert(config, notice(endpoint=None))[0].value == "P3"
    not_facing = replace(config.endpoints["loan-assessor"], customer_facing=False)
    other = replace(config, endpoints={**config.endpoints, "loan-assessor": not_facing})
    assert suggest_for_alert(other, notice())[0].value == "P2"


def test_declared_from_an_alert_once(bot: Bot, pager: RecordingPager) -> None:
    receive_alert(bot.rt, notice(started_at=bot.clock() - timedelta(minutes=4)))
    reply = bot.run(ALICE, "/aiops incident declare sev=P1 alert=ALERT-1")
    assert reply.ok, text_of(reply)
    incident = bot.rt.incidents.get_incident("INC-1")  # type: ignore[union-attr]
    assert incident is not None and incident.alert_id == "ALERT-1"
    assert incident.endpoint == "loan-assessor"  # from the alert
    assert incident.summary == "loan-assessor error rate: error rate 4.2% on loan-assessor"
    assert incident.detected_at == bot.clock() - timedelta(minutes=4)  # when it fired
    alert = bot.rt.incidents.get_alert("ALERT-1")  # type: ignore[union-attr]
    assert alert is not None and alert.incident_id == "INC-1"
    alert_update = next(p for p in posts(bot) if p.update and p.ts == "1.000")
    assert "Declared as *INC-1*" in shown(alert_update)
    assert "incident.declare" not in buttons(alert_update)
    again = bot.run(BOB, '/aiops incident declare sev=P2 summary="dup" alert=ALERT-1')
    assert not again.ok and "ALERT-1 was already declared as INC-1" in again.text
    assert len(bot.rt.incidents.list_incidents()) == 1  # type: ignore[union-attr]
    assert rows(bot, "incident_declared")[0].parameters["alert"] == "ALERT-1"


def test_acknowledging_an_alert_acknowledges_its_incident(bot: Bot, pager: RecordingPager) -> None:
    receive_alert(bot.rt, notice())
    bot.run(ALICE, "/aiops incident declare sev=P1 alert=ALERT-1")
    reply = bot.run(BOB, "/aiops incident ack ALERT-1")
    assert reply.ok and "Acknowledged ALERT-1" in reply.text and "INC-1 too" in reply.text
    assert bot.rt.incidents.get_incident("INC-1").state is IncidentState.ACKNOWLEDGED  # type: ignore[union-attr]
    [row] = rows(bot, "alert_acknowledged")
    assert row.parameters["alert"] == "ALERT-1" and row.parameters["incident"] == "INC-1"
    again = bot.run(CAROL, "/aiops incident ack ALERT-1")
    assert again.ok and "acknowledged already by <@U0BOB>" in again.text
    assert len(rows(bot, "alert_acknowledged")) == 1


def test_an_unknown_alert_is_refused(bot: Bot) -> None:
    reply = bot.run(ALICE, "/aiops incident ack ALERT-9")
    assert not reply.ok and "no alert `ALERT-9`" in reply.text


# ------------------------------------------------------------ linked changes


def test_changes_during_an_incident_are_linked_and_followed_in_its_thread(bot: Bot) -> None:
    deployed = bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=10")
    assert deployed.ok, text_of(deployed)
    before = bot.rt.store.list_changes(endpoint="loan-assessor-stg")[0]
    assert before.plan.incident is None  # before the incident: not linked
    declare(bot, 'loan-assessor-stg sev=P3 summary="staging canary errors"')
    reply = bot.run(BOB, "/aiops incident rollback INC-1")
    assert reply.ok, text_of(reply)
    assert "Linked to INC-1" in text_of(reply)
    # whoever mitigates an incident nobody had acknowledged is on it
    acked = bot.rt.incidents.get_incident("INC-1")  # type: ignore[union-attr]
    assert acked is not None and acked.state is IncidentState.ACKNOWLEDGED
    assert acked.on_call == BOB.id
    rollback = bot.rt.store.list_changes(endpoint="loan-assessor-stg")[0]
    assert rollback.id != before.id and rollback.plan.incident == "INC-1"
    assert rollback.state is ChangeState.SUCCEEDED, rollback.error
    assert rollback.reason == "mitigation of INC-1 (P3)"
    assert bot.split("loan-assessor-stg") == {"1.2.0": 100}
    of_change = [e for e in bot.rt.store.audit(AuditQuery(change_id=rollback.id))]
    assert {e.action for e in of_change} >= {
        "plan",
        "incident_linked",
        "execution_started",
        "execution_finished",
    }
    assert all(e.parameters.get("incident") == "INC-1" for e in of_change)
    incident = bot.rt.incidents.get_incident("INC-1")  # type: ignore[union-attr]
    assert incident is not None
    thread = [p.reply.text for p in posts(bot) if p.thread_ts == incident.thread_ts]
    assert any(rollback.id in t and "linked to INC-1" in t for t in thread)
    assert any(rollback.id in t and "started" in t for t in thread)
    assert any(rollback.id in t and "succeeded" in t for t in thread)
    show = bot.run(DAVE, "/aiops incident show INC-1")
    assert rollback.id in text_of(show) and before.id not in text_of(show)


def test_a_change_after_resolution_is_not_linked(bot: Bot) -> None:
    declare(bot, 'loan-assessor-stg sev=P3 summary="x"')
    bot.run(BOB, '/aiops incident resolve INC-1 cause="noise"')
    bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=10")
    change = bot.rt.store.list_changes(endpoint="loan-assessor-stg")[0]
    assert change.plan.incident is None and not rows(bot, "incident_linked")


def test_pause_from_an_incident_is_recorded_against_it(bot: Bot) -> None:
    bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=10")
    declare(bot, 'loan-assessor-stg sev=P3 summary="canary looks off"')
    reply = bot.run(BOB, "/aiops incident pause INC-1")
    assert reply.ok, text_of(reply)
    [linked] = [r for r in rows(bot, "incident_linked") if r.parameters.get("action") == "pause"]
    assert linked.parameters["incident"] == "INC-1"
    assert [r.justification for r in rows(bot, "canary_pause")] == ["mitigation of INC-1"]


def test_scale_up_from_an_incident_is_a_linked_change_approved_as_configured(bot: Bot) -> None:
    declare(bot, 'loan-assessor sev=P2 summary="P95 climbing under load"')
    before = bot.rt.platform.endpoint_state(bot.rt.config.endpoints["loan-assessor"])
    [serving] = before.deployed
    reply = bot.run(ALICE, "/aiops incident scale INC-1")
    assert reply.ok, text_of(reply)
    assert "Linked to INC-1" in text_of(reply)
    [scale] = [c for c in bot.rt.store.list_changes(endpoint="loan-assessor") if c.kind == "scale"]
    assert scale.plan.incident == "INC-1"
    assert scale.reason == "mitigation of INC-1 (P2)"
    assert scale.state is ChangeState.PENDING_APPROVAL  # prod: more replicas cost money
    approved = bot.run(BOB, f"/aiops approve {scale.id}")
    assert approved.ok, text_of(approved)
    done = bot.rt.store.get_change(scale.id)
    assert done is not None and done.state is ChangeState.SUCCEEDED, done and done.error
    after = bot.rt.platform.endpoint_state(bot.rt.config.endpoints["loan-assessor"])
    [scaled] = after.deployed
    assert scaled.replicas == serving.replicas + 1
    assert all(
        e.parameters.get("incident") == "INC-1"
        for e in bot.rt.store.audit(AuditQuery(change_id=scale.id))
    )


def test_scale_up_at_the_configured_maximum_is_refused_with_what_to_do(bot: Bot) -> None:
    declare(bot, 'loan-assessor sev=P2 summary="P95 climbing under load"')
    top = bot.rt.config.endpoints["loan-assessor"].max_replicas
    for _ in range(top + 1):
        state = bot.rt.platform.endpoint_state(bot.rt.config.endpoints["loan-assessor"])
        if state.deployed[0].replicas >= top:
            break
        reply = bot.run(ALICE, "/aiops incident scale INC-1")
        assert reply.ok, text_of(reply)
        [pending] = [
            c
            for c in bot.rt.store.list_changes(endpoint="loan-assessor")
            if c.state is ChangeState.PENDING_APPROVAL
        ]
        assert bot.run(BOB, f"/aiops approve {pending.id}").ok
    refused = bot.run(ALICE, "/aiops incident scale INC-1")
    assert not refused.ok
    assert f"its configured maximum is {top}" in refused.text
    assert "max_replicas" in text_of(refused)


def test_rollback_from_a_resolved_incident_is_refused(bot: Bot) -> None:
    declare(bot, 'loan-assessor-stg sev=P3 summary="x"')
    bot.run(BOB, '/aiops incident resolve INC-1 cause="noise"')
    reply = bot.run(BOB, "/aiops incident rollback INC-1")
    assert not reply.ok and "INC-1 is resolved" in reply.text


# ------------------------------------------------------------- list, show, handoff


def test_list_and_show(bot: Bot) -> None:
    declare(bot)
    declare(bot, 'loan-assessor-stg sev=P3 summary="slow"')
    bot.run(BOB, '/aiops incident resolve INC-2 cause="noise"')
    listed = text_of(bot.run(DAVE, "/aiops incident list"))
    assert "INC-1" in listed and "INC-2" not in listed
    everything = text_of(bot.run(DAVE, "/aiops incident list all"))
    assert "INC-1" in everything and "INC-2" in everything
    assert "INC-1" in text_of(bot.run(DAVE, "/aiops incident"))  # bare: the open ones
    shown_one = text_of(bot.run(DAVE, "/aiops incident show INC-2"))
    assert "noise" in shown_one and "Linked changes" in shown_one


def test_handoff_is_stored_masked_and_audited(bot: Bot) -> None:
    declare(bot)
    reply = bot.run(
        BOB, f'/aiops handoff "INC-1 mitigated; customer card {CARD} in logs" environment=prod'
    )
    assert reply.ok, text_of(reply)
    assert "INC-1" in text_of(reply) and "4111" not in text_of(reply)
    [note] = bot.rt.incidents.handoffs(bot.clock() - timedelta(hours=1))  # type: ignore[union-attr]
    assert note.environment == "prod" and "4111" not in note.text and note.author == BOB.id
    [row] = rows(bot, "handoff")
    assert row.parameters["open_incidents"] == ["INC-1"] and "4111" not in str(row.justification)
    bad = bot.run(BOB, '/aiops handoff "x" environment=prdo')
    assert not bad.ok and "did you mean `prod`" in bad.text
    assert not bot.run(BOB, "/aiops handoff").ok


def test_help_shows_the_incident_verbs(bot: Bot) -> None:
    helped = text_of(bot.run(ALICE, "/aiops help incident"))
    for verb in ("declare", "update", "severity", "ack", "mitigated", "resolve", "rollback"):
        assert verb in helped
    assert "/aiops handoff" in text_of(bot.run(ALICE, "/aiops help"))


# ------------------------------------------------------------------ the review


def test_the_review_is_drawn_from_the_rows_these_commands_write(
    bot: Bot, pager: RecordingPager
) -> None:
    """Alert → declared from it → paged → a linked rollback → mitigated → resolved, all
    typed; `review_for` (commands/incidents/review.py) puts the story together from the
    audit rows and the SQL incident store alone, each timeline entry naming its row."""
    from commands.incidents.metrics import span, span_text
    from commands.incidents.review import render_review, review_for

    bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=10")
    started = bot.clock() - timedelta(minutes=3)
    receive_alert(
        bot.rt,
        notice(
            endpoint="loan-assessor-stg",
            environment="staging",
            policy="loan-assessor-stg error rate",
            started_at=started,
        ),
    )
    bot.clock.advance(minutes=2)
    assert bot.run(ALICE, "/aiops incident declare sev=P2 alert=ALERT-1").ok
    bot.clock.advance(minutes=3)
    assert bot.run(BOB, "/aiops incident rollback INC-1").ok  # acknowledges it too
    bot.clock.advance(minutes=5)
    assert bot.run(BOB, "/aiops incident mitigated INC-1").ok
    bot.clock.advance(minutes=30)
    assert bot.run(BOB, '/aiops incident resolve INC-1 cause="1.2.1 tokenizer regression"').ok
    assert bot.rt.incidents is not None
    review = review_for(bot.rt.store, bot.rt.incidents, bot.rt.config, "INC-1")
    kinds = [e["kind"] for e in review["timeline"]]
    for kind in (
        "alert_fired",
        "declared",
        "page_sent",
        "acknowledged",
        "mitigation",
        "mitigated",
        "resolved",
    ):
        assert kind in kinds, kinds
    assert all(isinstance(e["row"], int) for e in review["timeline"])
    assert review["untraced"] == []
    [linked] = [c for c in review["changes"] if c["role"] == "linked"]
    assert linked["kind"] == "rollback" and linked["state"] == "succeeded"
    times = review["times"]
    assert times["time_to_detect"]["text"] == "3m"  # the alert's start → its arrival
    # the rollback's polling moves the test's clock too: the rest from the records
    incident = bot.rt.incidents.get_incident("INC-1")
    alert = bot.rt.incidents.get_alert("ALERT-1")
    assert incident is not None and alert is not None
    assert incident.mitigated_at and incident.resolved_at and incident.acknowledged_at
    for key, moment in (
        ("time_to_acknowledge", incident.acknowledged_at),
        ("time_to_mitigate", incident.mitigated_at),
        ("time_to_resolve", incident.resolved_at),
    ):
        assert times[key]["text"] == span_text(span(alert.received_at, moment)), key
    assert incident.resolved_at - incident.mitigated_at == timedelta(minutes=30)
    assert review["root_cause"] == "1.2.1 tokenizer regression"
    assert "INC-1" in render_review(review, "md")


def test_pager_pagerduty_pages_through_the_events_api(bot: Bot) -> None:
    """`[incidents] pager = "pagerduty"` builds the Events API v2 adapter (bot/wiring.py);
    an incident's trigger, acknowledge and resolve reach the local fake over HTTP as one
    alert (its dedup key the incident's id), and a page that fails is said and audited."""
    import tomllib

    from bot.pager.pagerduty import PagerDuty, RetryPolicy
    from bot.settings import BUNDLED_CONFIG
    from bot.wiring import make_pager
    from commands.config import parse_config
    from tests.support.fakes.pagerduty_server import FakePagerDuty

    raw = tomllib.loads(BUNDLED_CONFIG.read_text())
    raw["incidents"] = {"pager": "pagerduty"}
    assert isinstance(make_pager(parse_config(raw, "pd")), PagerDuty)
    fake = FakePagerDuty().serve()
    try:
        key = "R" * 32  # a test routing key, not a credential
        bot.rt.pager = PagerDuty(
            {"PAGERDUTY_ROUTING_KEY_PROD": key},
            url=fake.url,
            retry=RetryPolicy(max_attempts=2, base_delay=0.0),
            sleep=lambda s: None,
        )
        declare(bot)
        assert bot.run(BOB, "/aiops incident ack INC-1").ok
        assert bot.run(BOB, '/aiops incident resolve INC-1 cause="bad canary"').ok
        alert = fake.alert("INC-1")
        assert alert is not None and alert.routing_key == key
        assert alert.actions == ["trigger", "acknowledge", "resolve"]
        assert alert.status == "resolved" and alert.severity == "critical"
        assert [r.parameters["action"] for r in rows(bot, "page_sent")] == [
            "trigger",
            "acknowledge",
            "resolve",
        ]
        fake.fail(503, times=2)
        declare(bot, 'loan-assessor sev=P1 summary="again"')
        [failed] = rows(bot, "page_failed")
        assert failed.parameters["incident"] == "INC-2" and failed.parameters["attempts"] == 2
        assert key not in json.dumps([e.parameters for e in bot.rt.store.audit(AuditQuery())])
    finally:
        fake.close()


# ------------------------------------------------------------- pages lost with their process


def lose_pages(bot: Bot) -> list[Any]:
    """Make `rt.background` drop what it is given, as a process that dies right after its
    reply would (the page it was to send is never attempted); the dropped work."""
    dropped: list[Any] = []
    bot.rt.background.submit = dropped.append  # type: ignore[method-assign,assignment]
    return dropped


def test_a_page_lost_with_its_process_is_sent_by_the_sweep_once(
    bot: Bot, pager: RecordingPager
) -> None:
    """A P1's trigger, then its acknowledge, then its resolve, each lost (the process that
    was to send it after the reply stopped): the scheduler's `pages` job sends each once
    it is `OWED_AFTER` overdue, says so in the thread, and never twice."""
    from commands.incidents.paging import OWED_AFTER, catch_up

    submit = bot.rt.background.submit
    assert len(lose_pages(bot)) == 0
    declare(bot)
    assert pager.pages == []
    assert catch_up(bot.rt) == []  # not overdue yet: its sender may still be at it
    bot.clock.advance(seconds=OWED_AFTER.total_seconds() + 1)
    assert catch_up(bot.rt) == ["INC-1:trigger"]
    assert [p.action for p in pager.pages] == [PageAction.TRIGGER]
    [late] = rows(bot, "page_sent")  # its row says it was caught up, and since when
    assert late.parameters["caught_up"] is True and late.parameters["owed_since"]
    from commands.incidents.review import review_for

    assert bot.rt.incidents is not None
    review = review_for(bot.rt.store, bot.rt.incidents, bot.rt.config, "INC-1")
    [paged] = [e for e in review["timeline"] if e["kind"] == "page_sent"]
    assert "late (owed since" in paged["text"] and "first sender stopped" in paged["text"]
    incident = bot.rt.incidents.get_incident("INC-1")  # type: ignore[union-attr]
    assert incident is not None and incident.paged_at is not None
    assert any("had not gone out" in shown(p) for p in posts(bot))
    assert catch_up(bot.rt) == []  # sent: nothing owed

    assert bot.run(BOB, "/aiops incident ack INC-1").ok  # its acknowledge lost too
    bot.clock.advance(seconds=OWED_AFTER.total_seconds() + 1)
    assert catch_up(bot.rt) == ["INC-1:acknowledge"] and catch_up(bot.rt) == []
    bot.rt.background.submit = submit  # type: ignore[method-assign]
    done = bot.run(BOB, '/aiops incident resolve INC-1 cause="bad tokenizer"')
    assert done.ok, text_of(done)  # this one is delivered after the reply
    bot.clock.advance(seconds=OWED_AFTER.total_seconds() + 1)
    assert catch_up(bot.rt) == []
    assert [p.action for p in pager.pages] == [
        PageAction.TRIGGER,
        PageAction.ACKNOWLEDGE,
        PageAction.RESOLVE,
    ]
    assert len(rows(bot, "page_sent")) == 3


def test_a_page_that_failed_or_was_never_owed_is_not_sent_by_the_sweep(bot: Bot) -> None:
    """A trigger that was attempted and failed was said (with an `@here`) and audited: the
    sweep leaves it to people. A P3 pages no one, and a P3 raised to P2 owes its trigger
    from the raise, not from the declaration."""
    from commands.incidents.paging import OWED_AFTER, catch_up

    failing = RecordingPager(deliver=False)
    bot.rt.pager = failing
    declare(bot)
    bot.clock.advance(seconds=OWED_AFTER.total_seconds() + 1)
    assert catch_up(bot.rt) == [] and len(failing.pages) == 1

    pager = RecordingPager()
    bot.rt.pager = pager
    declare(bot, 'loan-assessor-stg sev=P3 summary="slow"')
    bot.clock.advance(hours=1)
    assert catch_up(bot.rt) == []
    lose_pages(bot)
    assert bot.run(BOB, '/aiops incident severity INC-2 P2 reason="customers see it"').ok
    assert catch_up(bot.rt) == []  # owed from the raise: not overdue yet
    bot.clock.advance(seconds=OWED_AFTER.total_seconds() + 1)
    assert catch_up(bot.rt) == ["INC-2:trigger"]
    assert [p.dedup_key for p in pager.pages] == ["INC-2"]


def test_with_no_pager_the_sweep_owes_nothing_after_the_here(bot: Bot) -> None:
    """`pager = "none"` (the default): the trigger is an `@here`; an acknowledge or resolve
    sends nothing and so leaves no row. The sweep must not take that for a lost page and
    post "had not gone out" in the thread every 30 s for a day."""
    from commands.incidents.pager import NoPager
    from commands.incidents.paging import OWED_AFTER, catch_up

    bot.rt.pager = NoPager()
    declare(bot)
    assert bot.run(BOB, "/aiops incident ack INC-1").ok
    bot.clock.advance(seconds=OWED_AFTER.total_seconds() + 1)
    assert catch_up(bot.rt) == []
    assert bot.run(BOB, '/aiops incident resolve INC-1 cause="bad tokenizer"').ok
    bot.clock.advance(seconds=OWED_AFTER.total_seconds() + 1)
    assert catch_up(bot.rt) == []
    assert not any("had not gone out" in shown(p) for p in posts(bot))
    assert len(rows(bot, "here_posted")) == 1


def test_the_sweep_owes_the_resolve_of_an_incident_open_for_days(
    bot: Bot, pager: RecordingPager
) -> None:
    """An incident declared two days ago and resolved now, its resolve lost: the sweep
    still sends it (the pager's alert would stay open otherwise)."""
    from commands.incidents.paging import OWED_AFTER, catch_up

    declare(bot)
    bot.clock.advance(days=2)
    lose_pages(bot)
    assert bot.run(BOB, '/aiops incident resolve INC-1 cause="bad tokenizer"').ok
    bot.clock.advance(seconds=OWED_AFTER.total_seconds() + 1)
    assert catch_up(bot.rt) == ["INC-1:resolve"]
    assert [p.action for p in pager.pages] == [PageAction.TRIGGER, PageAction.RESOLVE]


def test_a_failed_trigger_is_not_resent_when_the_severity_is_lowered(bot: Bot) -> None:
    """A P1 whose trigger failed (said with an `@here`), lowered to P2: lowering sends no
    trigger, so the sweep owes none (it would resend the failed page, with a second
    `@here`, saying wrongly that its process stopped)."""
    from commands.incidents.paging import OWED_AFTER, catch_up

    failing = RecordingPager(deliver=False)
    bot.rt.pager = failing
    declare(bot)
    bot.clock.advance(minutes=1)
    assert bot.run(BOB, '/aiops incident severity INC-1 P2 reason="fewer customers"').ok
    bot.clock.advance(seconds=OWED_AFTER.total_seconds() + 1)
    assert catch_up(bot.rt) == [] and len(failing.pages) == 1


def test_a_trigger_that_waited_past_the_resolve_does_not_reopen_the_alert(
    bot: Bot, pager: RecordingPager
) -> None:
    """A trigger still queued (or retrying) while the sweep sent it and the incident was
    resolved: when it finally runs it sends nothing, and a trigger that reached the pager
    after someone else's resolve is followed by a resolve."""
    from commands.incidents.paging import OWED_AFTER, catch_up, page_now

    dropped = lose_pages(bot)
    declare(bot)
    bot.clock.advance(seconds=OWED_AFTER.total_seconds() + 1)
    assert catch_up(bot.rt) == ["INC-1:trigger"]
    assert bot.run(BOB, '/aiops incident resolve INC-1 cause="bad tokenizer"').ok
    bot.clock.advance(seconds=OWED_AFTER.total_seconds() + 1)
    assert catch_up(bot.rt) == ["INC-1:resolve"]
    dropped[0]()  # the declaration's trigger, late
    assert [p.action for p in pager.pages] == [PageAction.TRIGGER, PageAction.RESOLVE]

    # A trigger in flight when the sweep's trigger and the resolve went out (reaching the
    # pager last) is followed by a resolve.
    declare(bot)
    slow = bot.rt.incidents.get_incident("INC-2")  # type: ignore[union-attr]
    assert slow is not None

    class Slow(RecordingPager):
        def send(self, page: Page) -> PageResult:
            if page.action is PageAction.TRIGGER and len(self.pages) == 0:
                bot.rt.pager = pager  # meanwhile: the sweep's trigger, then the resolve
                page_now(bot.rt, "INC-2", PageAction.TRIGGER, BOB.id)
                done = bot.run(BOB, '/aiops incident resolve INC-2 cause="x"')
                assert done.ok
                dropped[-1]()
                bot.rt.pager = self
            return super().send(page)

    bot.rt.pager = Slow()
    page_now(bot.rt, "INC-2", PageAction.TRIGGER, ALICE.id)
    inc2 = [p.action for p in pager.pages if p.dedup_key == "INC-2"]
    slow_pages = [p.action for p in bot.rt.pager.pages]  # type: ignore[attr-defined]
    assert inc2 == [PageAction.TRIGGER, PageAction.RESOLVE]
    assert slow_pages == [PageAction.TRIGGER, PageAction.RESOLVE]
