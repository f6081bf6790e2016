"""Respond over Slack's wire: signed button clicks and form submissions to the Bolt app
under its ASGI server, Web API calls to the recording stub. An alert's message and its
buttons (Declare incident opens a form filled in from the alert; Acknowledge; Roll back),
the incident's card and its buttons (Acknowledge, Resolve's form, Roll back), double
submissions, and a channel of its own per incident."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from sqlalchemy import Engine

from bot.serve.server import make_asgi
from bot.settings import BUNDLED_CONFIG
from bot.slack.app import build_app
from bot.slack.clients import web_client
from bot.slack.incident_forms import (
    CAUSE,
    COMMANDER,
    ENDPOINT,
    ONCALL,
    SEVERITY,
    SUMMARY,
    VALUE,
)
from bot.slack.notifier import SlackNotifier
from commands.config import parse_config
from commands.incidents.alerts import receive_alert
from commands.incidents.model import AlertNotice, AlertSource, AlertState, IncidentState
from commands.model import ChangeState
from commands.ports import AuditQuery
from commands.service import Service
from tests.flows.test_incidents import RecordingPager
from tests.support.harness import FakeClock, SlackStub, make_runtime
from tests.support.slack_wire import (
    SIGNING_SECRET,
    Served,
    action_body,
    slash_body,
    view_submission_body,
)


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def notice(**kw: Any) -> AlertNotice:
    fields: dict[str, Any] = dict(
        key="cloud-monitoring:0.abc",
        source=AlertSource.CLOUD_MONITORING,
        state=AlertState.OPEN,
        policy="loan-assessor error rate",
        condition="error rate > 1%",
        endpoint="loan-assessor",
        environment="prod",
        summary="error rate 4.2% on loan-assessor",
        observed="error rate 4.20% > 1%",
        labels={"metric_type": "aiplatform.googleapis.com/prediction/online/error_count"},
    )
    return AlertNotice(**(fields | kw))


def serve(engine: Engine, stub: SlackStub, **incidents: Any) -> tuple[Served, Service]:
    raw = tomllib.loads(BUNDLED_CONFIG.read_text())
    raw["incidents"] = raw.get("incidents", {}) | incidents
    rt = make_runtime(
        engine,
        FakeClock(),
        SlackNotifier(web_client("xoxb-test", stub.api_url)),
        config=parse_config(raw, "incident-test"),
    )
    rt.pager = RecordingPager()
    service = Service(rt)
    bolt = build_app(
        service, bot_token="xoxb-test", signing_secret=SIGNING_SECRET, api_base_url=stub.api_url
    )
    return Served(make_asgi(service, bolt)), service


@pytest.fixture
def respond_bot(sqlite_engine: Engine, stub: SlackStub) -> Iterator[tuple[Served, Service]]:
    server, service = serve(sqlite_engine, stub)
    yield server, service
    service.rt.background.wait_idle(30)
    server.close()


def valid_message(body: dict[str, Any]) -> dict[str, Any]:
    blocks = body["blocks"] if isinstance(body["blocks"], list) else json.loads(body["blocks"])
    assert len(blocks) <= 50
    for raw in blocks:
        parsed = Block.parse(raw)
        assert parsed is not None
        parsed.validate_json()
    return {**body, "blocks": blocks}


def valid_modal(view: Any) -> dict[str, Any]:
    view = json.loads(view) if isinstance(view, str) else view
    View(**view).validate_json()
    assert view["type"] == "modal" and len(view["title"]["text"]) <= 24
    return dict(view)


def action_ids(body: dict[str, Any]) -> list[str]:
    return [e["action_id"] for b in body["blocks"] if b["type"] == "actions" for e in b["elements"]]


def button(body: dict[str, Any], action_id: str) -> dict[str, Any]:
    return next(
        e
        for b in body["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == action_id
    )


def posted(stub: SlackStub, channel: str) -> list[dict[str, Any]]:
    return [c.body for c in stub.of("chat.postMessage") if c.body.get("channel") == channel]


def updates(stub: SlackStub, ts: str) -> list[dict[str, Any]]:
    return [valid_message(c.body) for c in stub.of("chat.update") if c.body.get("ts") == ts]


def declare_values(
    endpoint: str = "loan-assessor",
    severity: str = "P1",
    summary: str | None = "error rate 4.2%",
    commander: str = "U0ALICE",
    on_call: str | None = "U0BOB",
) -> dict[str, Any]:
    def picked(value: str | None) -> dict[str, Any]:
        option = {"text": {"type": "plain_text", "text": value}, "value": value}
        return {"selected_option": option if value else None}

    return {
        ENDPOINT: {VALUE: {"type": "static_select", **picked(endpoint)}},
        SEVERITY: {VALUE: {"type": "radio_buttons", **picked(severity)}},
        SUMMARY: {VALUE: {"type": "plain_text_input", "value": summary}},
        COMMANDER: {VALUE: {"type": "users_select", "selected_user": commander}},
        ONCALL: {VALUE: {"type": "users_select", "selected_user": on_call}},
    }


def alert_posted(service: Service, stub: SlackStub) -> dict[str, Any]:
    receive_alert(service.rt, notice())
    [message] = posted(stub, "C0OPS")
    return valid_message(message)


def open_declare(
    server: Served, stub: SlackStub, message: dict[str, Any], who: str
) -> dict[str, Any]:
    before = len(stub.of("views.open"))
    value = button(message, "incident.declare")["value"]
    click = action_body(
        "incident.declare", value, who, who.lower(), stub.url + "/respond/d", channel="C0OPS"
    )
    resp = server.post(click)
    assert resp.status_code == 200
    call = stub.of("views.open")[before]  # opened before the ack left
    assert call.body["trigger_id"] == json.loads(parse_qs(click)["payload"][0])["trigger_id"]
    return valid_modal(call.body["view"])


def dms(stub: SlackStub, user: str) -> list[str]:
    return [dumps(b) for b in posted(stub, user)]


# --------------------------------------------------------------------- alerts


def test_an_alerts_message_and_its_declare_form(
    respond_bot: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = respond_bot
    message = alert_posted(service, stub)
    assert action_ids(message) == ["incident.declare", "incident.rollback", "incident.ack"]
    assert button(message, "incident.rollback")["confirm"]["title"]["text"] == (
        "Roll back loan-assessor?"
    )
    view = open_declare(server, stub, message, "U0ALICE")
    assert view["callback_id"] == "aiops_incident_declare"
    by_block = {b.get("block_id"): b for b in view["blocks"]}
    assert by_block[ENDPOINT]["element"]["initial_option"]["value"] == "loan-assessor"
    assert by_block[SEVERITY]["element"]["initial_option"]["value"] == "P1"
    assert by_block[SUMMARY]["element"]["initial_value"] == (
        "loan-assessor error rate: error rate 4.2% on loan-assessor"
    )
    assert by_block[COMMANDER]["element"]["initial_user"] == "U0ALICE"
    assert "Suggested *P1*" in dumps(view) and "customer-facing" in dumps(view)
    assert not service.rt.store.audit(AuditQuery()) or all(
        e.action != "incident_declared" for e in service.rt.store.audit(AuditQuery())
    )


def test_the_declare_form_declares_once_however_often_it_is_submitted(
    respond_bot: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = respond_bot
    message = alert_posted(service, stub)
    alert_ts = service.rt.incidents.get_alert("ALERT-1").message_ts  # type: ignore[union-attr]
    view = open_declare(server, stub, message, "U0ALICE")
    body = view_submission_body(view, declare_values(), "U0ALICE", "alice")
    first = server.post(body)
    second = server.post(body)  # a double-clicked Submit: the same view, id and hash
    assert first.status_code == second.status_code == 200
    assert first.text == second.text == ""  # the form closes
    stub.wait_for(lambda: any("INC-1" in d for d in dms(stub, "U0ALICE")))
    service.rt.background.wait_idle(30)
    # another person's form on the same alert, submitted a moment later: refused
    other = open_declare(server, stub, message, "U0CAROL")
    late = view_submission_body(
        other, declare_values(severity="P2"), "U0CAROL", "carol", view_id="V0OTHER"
    )
    assert server.post(late).status_code == 200
    stub.wait_for(lambda: any("already declared as INC-1" in d for d in dms(stub, "U0CAROL")))
    service.rt.background.wait_idle(30)
    incidents = service.rt.incidents.list_incidents()  # type: ignore[union-attr]
    assert [i.id for i in incidents] == ["INC-1"]
    incident = incidents[0]
    assert (incident.alert_id, incident.severity.value, incident.on_call) == (
        "ALERT-1",
        "P1",
        "U0BOB",
    )
    declared = [e for e in service.rt.store.audit(AuditQuery()) if e.action == "incident_declared"]
    assert len(declared) == 1
    # what ran is the typed command, audited as such
    commands = [
        e.parameters["text"] for e in service.rt.store.audit(AuditQuery()) if e.action == "command"
    ]
    assert commands[0].startswith("incident declare loan-assessor sev=P1 summary=")
    assert commands[0].endswith("commander=U0ALICE oncall=U0BOB alert=ALERT-1")
    # the alert's message now says so, and offers no second Declare
    alert_update = updates(stub, str(alert_ts))[-1]
    assert "INC-1" in dumps(alert_update) and "incident.declare" not in action_ids(alert_update)
    # the incident's card heads its thread in the incidents channel (the ops one here)
    [card] = [m for m in posted(stub, "C0OPS") if "INC-1 · P1" in dumps(m)]
    assert action_ids(valid_message(card)) == [
        "incident.rollback",
        "incident.pause",
        "incident.scale",
        "incident.ack",
        "incident.resolve",
    ]
    pages = service.rt.pager.pages  # type: ignore[attr-defined]
    assert [p.dedup_key for p in pages] == ["INC-1"]


def test_a_submission_with_errors_names_its_fields_and_declares_nothing(
    respond_bot: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = respond_bot
    view = open_declare(server, stub, alert_posted(service, stub), "U0ALICE")
    bad = declare_values(severity="P9", summary="   ")
    resp = server.post(view_submission_body(view, bad, "U0ALICE", "alice"))
    answer = resp.json()
    assert answer["response_action"] == "errors" and set(answer["errors"]) == {SEVERITY, SUMMARY}
    service.rt.background.wait_idle(30)
    assert service.rt.incidents.list_incidents() == []  # type: ignore[union-attr]


def test_acknowledge_on_the_alert(respond_bot: tuple[Served, Service], stub: SlackStub) -> None:
    server, service = respond_bot
    message = alert_posted(service, stub)
    ts = service.rt.incidents.get_alert("ALERT-1").message_ts  # type: ignore[union-attr]
    value = button(message, "incident.ack")["value"]
    assert value == "ALERT-1"
    click = action_body("incident.ack", value, "U0BOB", "bob", stub.url + "/respond/a", "C0OPS")
    assert server.post(click).status_code == 200
    stub.wait_for(lambda: bool(stub.responded("/respond/a")))
    [answer] = stub.responded("/respond/a")
    assert answer["response_type"] == "ephemeral" and "Acknowledged ALERT-1" in answer["text"]
    service.rt.background.wait_idle(30)
    after = updates(stub, str(ts))[-1]
    assert "incident.ack" not in action_ids(after) and "<@U0BOB>" in dumps(after)
    alert = service.rt.incidents.get_alert("ALERT-1")  # type: ignore[union-attr]
    assert alert is not None and alert.acknowledged_by == "U0BOB"


# ------------------------------------------------------------------- incidents


def declared(server: Served, stub: SlackStub, service: Service, line: str) -> dict[str, Any]:
    body = slash_body(
        "/aiops", f"incident declare {line}", "U0ALICE", "alice", stub.url + "/respond/x"
    )
    assert server.post(body).status_code == 200
    stub.wait_for(lambda: bool(stub.responded("/respond/x")))
    service.rt.background.wait_idle(30)
    assert "declared" in stub.responded("/respond/x")[0]["text"]
    [card] = [m for m in posted(stub, "C0OPS") if "INC-1 ·" in dumps(m)]
    return valid_message(card)


def test_the_incident_cards_acknowledge_and_resolve_buttons(
    respond_bot: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = respond_bot
    card = declared(server, stub, service, 'loan-assessor sev=P2 summary="slow answers"')
    ts = service.rt.incidents.get_incident("INC-1").thread_ts  # type: ignore[union-attr]
    click = action_body("incident.ack", "INC-1", "U0BOB", "bob", stub.url + "/respond/k", "C0OPS")
    assert server.post(click).status_code == 200
    stub.wait_for(lambda: bool(stub.responded("/respond/k")))
    service.rt.background.wait_idle(30)
    acked = updates(stub, str(ts))[-1]
    assert "incident.ack" not in action_ids(acked) and "acknowledged" in dumps(acked)

    value = button(card, "incident.resolve")["value"]
    resolve = action_body(
        "incident.resolve", value, "U0BOB", "bob", stub.url + "/respond/r", "C0OPS"
    )
    assert server.post(resolve).status_code == 200
    view = valid_modal(stub.of("views.open")[-1].body["view"])
    assert view["callback_id"] == "aiops_incident_resolve" and "INC-1" in view["title"]["text"]
    empty = {CAUSE: {VALUE: {"type": "plain_text_input", "value": "  "}}}
    answer = server.post(view_submission_body(view, empty, "U0BOB", "bob")).json()
    assert answer["response_action"] == "errors" and CAUSE in answer["errors"]
    service.rt.background.wait_idle(30)
    assert service.rt.incidents.get_incident("INC-1").state is IncidentState.ACKNOWLEDGED  # type: ignore[union-attr]
    cause = {CAUSE: {VALUE: {"type": "plain_text_input", "value": 'tokenizer "fast path" bug'}}}
    ok = server.post(view_submission_body(view, cause, "U0BOB", "bob", view_id="V0RES2"))
    assert ok.status_code == 200 and ok.text == ""
    stub.wait_for(lambda: any("Resolved INC-1" in d for d in dms(stub, "U0BOB")))
    service.rt.background.wait_idle(30)
    done = service.rt.incidents.get_incident("INC-1")  # type: ignore[union-attr]
    assert done is not None and done.state is IncidentState.RESOLVED
    assert done.root_cause == 'tokenizer "fast path" bug'  # quotes survive the typed form
    final = updates(stub, str(ts))[-1]
    assert action_ids(final) == ["incident.review"] and "Root cause" in dumps(final)


def test_roll_back_from_the_incident_is_linked(
    respond_bot: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = respond_bot
    deploy = slash_body(
        "/deploy",
        "loan-assessor-stg gemma-3-1b-it@1.2.1 canary=10",
        "U0ALICE",
        "alice",
        stub.url + "/respond/dep",
    )
    assert server.post(deploy).status_code == 200
    stub.wait_for(lambda: bool(stub.responded("/respond/dep")))
    service.rt.background.wait_idle(30)
    declared_body = slash_body(
        "/aiops",
        'incident declare loan-assessor-stg sev=P3 summary="canary errors"',
        "U0ALICE",
        "alice",
        stub.url + "/respond/x",
    )
    server.post(declared_body)
    stub.wait_for(lambda: bool(stub.responded("/respond/x")))
    service.rt.background.wait_idle(30)
    click = action_body(
        "incident.rollback", "INC-1", "U0BOB", "bob", stub.url + "/respond/rb", "C0OPS"
    )
    assert server.post(click).status_code == 200
    stub.wait_for(lambda: bool(stub.responded("/respond/rb")))
    service.rt.background.wait_idle(30)
    assert "Linked to INC-1" in dumps(stub.responded("/respond/rb")[0])
    rollback = service.rt.store.list_changes(endpoint="loan-assessor-stg")[0]
    assert rollback.kind.value == "rollback" and rollback.plan.incident == "INC-1"
    assert rollback.state is ChangeState.SUCCEEDED
    incident = service.rt.incidents.get_incident("INC-1")  # type: ignore[union-attr]
    assert incident is not None
    thread = [
        dumps(c.body)
        for c in stub.of("chat.postMessage")
        if c.body.get("thread_ts") == incident.thread_ts
    ]
    assert any(rollback.id in t and "started" in t for t in thread)
    assert any(rollback.id in t and "succeeded" in t for t in thread)


# ----------------------------------------------------- a channel of its own


def test_a_channel_per_incident(sqlite_engine: Engine, stub: SlackStub) -> None:
    stub.channels["inc-1-loan-assessor"] = "C0TAKEN"  # a name already used: the next is tried
    server, service = serve(sqlite_engine, stub, channel_per_incident=True)
    try:
        body = slash_body(
            "/aiops",
            'incident declare loan-assessor sev=P2 summary="slow" oncall=@bob',
            "U0ALICE",
            "alice",
            stub.url + "/respond/c",
        )
        assert server.post(body).status_code == 200
        stub.wait_for(lambda: bool(stub.responded("/respond/c")))
        service.rt.background.wait_idle(30)
    finally:
        server.close()
    names = [c.body["name"] for c in stub.of("conversations.create")]
    assert names == ["inc-1-loan-assessor", "inc-1-loan-assessor-2"]
    new_id = stub.channels["inc-1-loan-assessor-2"]
    [invite] = stub.of("conversations.invite")
    assert invite.body["channel"] == new_id and set(invite.body["users"].split(",")) == {
        "U0ALICE",
        "U0BOB",
    }
    incident = service.rt.incidents.get_incident("INC-1")  # type: ignore[union-attr]
    assert incident is not None and incident.channel == new_id
    [card] = [m for m in posted(stub, new_id) if not m.get("thread_ts")]
    assert "INC-1 · P2" in dumps(card)
    announced = [m for m in posted(stub, "C0OPS") if f"<#{new_id}>" in dumps(m)]
    assert len(announced) == 1


def test_a_channel_slack_refuses_keeps_the_thread_in_the_incidents_channel(
    sqlite_engine: Engine, stub: SlackStub
) -> None:
    stub.fail["conversations.create"] = "restricted_action"
    server, service = serve(sqlite_engine, stub, channel_per_incident=True)
    try:
        body = slash_body(
            "/aiops",
            'incident declare loan-assessor sev=P3 summary="x"',
            "U0ALICE",
            "alice",
            stub.url + "/respond/f",
        )
        server.post(body)
        stub.wait_for(lambda: bool(stub.responded("/respond/f")))
        service.rt.background.wait_idle(30)
    finally:
        server.close()
    incident = service.rt.incidents.get_incident("INC-1")  # type: ignore[union-attr]
    assert incident is not None and incident.channel == "C0OPS"
    assert "restricted_action" in dumps(stub.responded("/respond/f")[0])


def test_a_card_slack_refuses_leaves_the_incident_standing_and_says_why(
    respond_bot: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = respond_bot
    stub.fail["chat.postMessage"] = "not_in_channel"
    body = slash_body(
        "/aiops",
        'incident declare loan-assessor sev=P2 summary="slow"',
        "U0ALICE",
        "alice",
        stub.url + "/respond/n",
    )
    assert server.post(body).status_code == 200
    stub.wait_for(lambda: bool(stub.responded("/respond/n")))
    service.rt.background.wait_idle(30)
    answer = dumps(stub.responded("/respond/n")[0])
    assert "did not arrive" in answer and "not_in_channel" in answer
    assert "/invite @aiops-bot" in answer
    incident = service.rt.incidents.get_incident("INC-1")  # type: ignore[union-attr]
    assert incident is not None and incident.thread_ts is None  # no message to refer to
    del stub.fail["chat.postMessage"]
    ack = action_body("incident.ack", "INC-1", "U0BOB", "bob", stub.url + "/respond/o", "C0OPS")
    assert server.post(ack).status_code == 200
    stub.wait_for(lambda: bool(stub.responded("/respond/o")))
    assert "Acknowledged INC-1" in dumps(stub.responded("/respond/o")[0])
