"""The Home tab over HTTP: signed `app_home_opened` events and clicks on the Home tab in
Slack's wire format; the bot's views.publish calls land in the local Slack stub."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from slack_sdk.models.views import View

from bot.slack.notifier import SlackNotifier
from commands.model import ChangeState
from commands.ports import AuditQuery
from commands.service import Service
from tests.support.harness import SlackStub
from tests.support.slack_wire import (
    Served,
    home_action_body,
    home_opened_body,
    sign,
    slash_body,
)

DEPLOY = 'loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="fix for jane.citizen@example.com"'


def published(stub: SlackStub, user: str) -> list[dict[str, Any]]:
    """The views published for `user`, oldest first (slack_sdk posts `view` as JSON text)."""
    out = []
    for call in stub.of("views.publish"):
        if call.body.get("user_id") == user:
            v = call.body["view"]
            out.append(json.loads(v) if isinstance(v, str) else v)
    return out


def action_ids(v: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (e["action_id"], e["value"])
        for b in v["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]


def deploy(server: Served, stub: SlackStub, service: Service) -> str:
    server.post(slash_body("/deploy", DEPLOY, "U0ALICE", "alice", stub.url + "/respond/d"))
    stub.wait_for(lambda: bool(stub.responded("/respond/d")))
    change = service.rt.store.open_change("loan-assessor")
    assert change is not None and change.state is ChangeState.PENDING_APPROVAL
    return change.id


def test_opening_the_home_tab_publishes_the_persons_view(
    served: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = served
    change_id = deploy(server, stub, service)
    stub.wait_for(lambda: bool(published(stub, "U0BOB")))  # refreshed when it was asked for
    before = len(published(stub, "U0BOB"))

    resp = server.post(home_opened_body("U0BOB"), json=True)
    assert resp.status_code == 200
    stub.wait_for(lambda: len(published(stub, "U0BOB")) > before)
    view = published(stub, "U0BOB")[-1]
    View(**view).validate_json()
    assert view["type"] == "home" and len(view["blocks"]) <= 100
    assert action_ids(view) == [("approve", change_id), ("reject", change_id)]
    text = json.dumps(view)
    assert "jane.citizen@example.com" not in text  # masked before it left
    assert "1.2.1 10%" in text
    assert stub.of("response_url") == [stub.of("response_url")[0]]  # only the /deploy's
    events = service.rt.store.audit(AuditQuery())
    assert all(e.parameters.get("command") != "app_home_opened" for e in events)


def test_the_messages_tab_and_a_retried_event_publish_nothing_more(
    served: tuple[Served, Service], stub: SlackStub, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = served
    caplog.set_level(logging.INFO, logger="bot.slack.app")
    assert server.post(home_opened_body("U0DAVE", tab="messages"), json=True).status_code == 200
    body = home_opened_body("U0DAVE", event_id="Ev0SAME")
    assert server.post(body, json=True).status_code == 200
    stub.wait_for(lambda: len(published(stub, "U0DAVE")) == 1)
    retry = sign(body) | {"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"}
    assert server.post(body, retry, json=True).status_code == 200
    # the listener says so before its ack: the retry was not handed on
    assert "request event:Ev0SAME was taken before" in caplog.text
    server.post(home_opened_body("U0DAVE"), json=True)  # a later opening is a new event
    stub.wait_for(lambda: len(published(stub, "U0DAVE")) == 2)
    assert "Waiting for your approval (0)" in json.dumps(published(stub, "U0DAVE")[0])


def test_approve_on_the_home_tab_decides_and_answers_there(
    served: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = served
    change_id = deploy(server, stub, service)
    click = home_action_body("approve", change_id, "U0CAROL", "carol")
    assert server.post(click).status_code == 200
    store = service.rt.store
    stub.wait_for(lambda: store.get_change(change_id).state is ChangeState.SUCCEEDED)  # type: ignore[union-attr]
    stub.wait_for(
        lambda: any(f"Approved {change_id}" in json.dumps(v) for v in published(stub, "U0CAROL"))
    )
    notifier = service.rt.notifier
    assert isinstance(notifier, SlackNotifier)
    service.rt.background.wait_idle(30)  # the change's own moves, each refreshing
    assert notifier.wait_homes(30)
    # the last view stays the answered one: refreshes the click caused come before it,
    # and later ones keep the answer on top until Carol opens the tab again
    last = published(stub, "U0CAROL")[-1]
    assert "Your last click here:" in json.dumps(last["blocks"][:4])
    assert f"Approved {change_id}" in json.dumps(last)
    server.post(home_opened_body("U0CAROL"), json=True)
    stub.wait_for(lambda: "Your last click" not in json.dumps(published(stub, "U0CAROL")[-1]))
    assert [c.path for c in stub.of("response_url")] == ["respond/d"]  # none for the click
    [approval] = store.approvals(change_id)
    assert approval.approver_id == "U0CAROL"


def test_a_refused_click_on_the_home_tab_is_told_there(
    served: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = served
    change_id = deploy(server, stub, service)
    server.post(home_action_body("approve", change_id, "U0ALICE", "alice"))  # her own
    stub.wait_for(lambda: any("someone else" in json.dumps(v) for v in published(stub, "U0ALICE")))
    assert service.rt.store.get_change(change_id).state is ChangeState.PENDING_APPROVAL  # type: ignore[union-attr]


def test_a_home_event_from_another_workspace_is_refused(
    served: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = served
    resp = server.post(home_opened_body("U0EVE", team_id="T0OTHER"), json=True)
    assert resp.status_code == 403
    service.rt.background.wait_idle(10)
    assert published(stub, "U0EVE") == []


def test_slack_verifies_the_events_url(served: tuple[Served, Service]) -> None:
    server, _ = served
    body = json.dumps({"token": "t", "challenge": "c-123", "type": "url_verification"})
    resp = server.post(body, json=True)
    assert resp.status_code == 200 and "c-123" in resp.text
