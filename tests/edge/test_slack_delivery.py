"""Messages that arrive: Slack's "slow down" (HTTP 429 with `Retry-After`) delays a card or
a command's answer but never drops it, and a card Slack refuses (`not_in_channel`) is
said to the requester, audited, and its change still decided by the typed command. Every
request goes through Bolt signed, and every Slack client is built as in production
(`bot.slack.clients`), against the local Web API stub."""

from __future__ import annotations

import json
from typing import Any

from bot.slack.clients import webhook_client
from commands.model import ChangeState
from commands.ports import AuditQuery
from commands.service import Service
from tests.support.harness import SlackStub
from tests.support.slack_wire import Served, action_body, slash_body


def cards(stub: SlackStub) -> list[dict[str, Any]]:
    return [c.body for c in stub.of("chat.postMessage") if c.body.get("channel") == "C0APPROVALS"]


def request_deploy(server: Served, stub: SlackStub, path: str = "respond/deploy") -> None:
    body = slash_body(
        "/deploy",
        'loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="fix tokenizer"',
        "U0ALICE",
        "alice",
        f"{stub.url}/{path}",
    )
    assert server.post(body).status_code == 200


def test_a_rate_limited_card_and_answer_still_arrive(
    served: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = served
    stub.rate_limit = {"chat.postMessage": 2, "response_url": 2}
    request_deploy(server, stub)
    stub.wait_for(lambda: bool(stub.responded("respond/deploy")), timeout=30)
    assert [c.method for c in stub.rate_limited] == ["chat.postMessage"] * 2 + ["response_url"] * 2
    [card] = cards(stub)  # sent again after each 429, arrived once
    [change] = service.rt.store.list_changes()
    assert change.message_ts is not None  # the card is where the change says it is
    [answer] = stub.responded("respond/deploy")
    assert "Posted for approval in <#C0APPROVALS>" in json.dumps(answer["blocks"])
    assert change.id in json.dumps(card["blocks"])


def test_a_rate_limited_click_answer_and_card_update_still_arrive(
    served: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = served
    request_deploy(server, stub)
    stub.wait_for(lambda: bool(stub.responded("respond/deploy")))
    [change] = service.rt.store.list_changes()
    stub.rate_limit = {"chat.update": 1, "response_url": 1}
    server.post(action_body("approve", change.id, "U0BOB", "bob", stub.url + "/respond/click"))
    stub.wait_for(lambda: bool(stub.responded("respond/click")), timeout=30)
    stub.wait_for(lambda: service.rt.store.get_change(change.id).state is ChangeState.SUCCEEDED)  # type: ignore[union-attr]
    service.rt.background.wait_idle()
    assert {c.method for c in stub.rate_limited} == {"chat.update", "response_url"}
    assert "approved" in stub.responded("respond/click")[0]["text"].lower()
    assert "succeeded" in json.dumps(stub.of("chat.update")[-1].body["blocks"])


def test_a_worker_answer_on_the_response_url_waits_out_a_rate_limit(stub: SlackStub) -> None:
    """The command workers answer with the sync webhook client (`bot.serve.workers`)."""
    stub.rate_limit = {"response_url": 2}
    resp = webhook_client(stub.url + "/respond/w").send_dict({"text": "done"})
    assert resp.status_code == 200
    assert len(stub.rate_limited) == 2
    assert stub.responded("respond/w") == [{"text": "done"}]


def test_a_card_the_bot_may_not_post_is_said_audited_and_still_decidable(
    served: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = served
    stub.fail["chat.postMessage"] = "not_in_channel"
    request_deploy(server, stub)
    stub.wait_for(lambda: bool(stub.responded("respond/deploy")))
    [answer] = stub.responded("respond/deploy")
    said = json.dumps(answer)
    assert "Posted for approval" not in said  # never "posted" when it was not
    assert "did not reach <#C0APPROVALS>" in answer["text"]
    assert "not_in_channel" in said and "/invite @aiops-bot" in said
    [change] = service.rt.store.list_changes()
    assert f"/aiops approve {change.id}" in said
    assert change.state is ChangeState.PENDING_APPROVAL and change.message_ts is None

    [row] = [
        e
        for e in service.rt.store.audit(AuditQuery(change_id=change.id))
        if e.action == "card_undelivered"
    ]
    assert row.actor_id == "U0ALICE"
    assert row.parameters == {"channel": "C0APPROVALS", "error": "not_in_channel"}

    server.post(slash_body("/aiops", "changes", "U0BOB", "bob", stub.url + "/respond/changes"))
    stub.wait_for(lambda: bool(stub.responded("respond/changes")))
    listed = json.dumps(stub.responded("respond/changes")[0]["blocks"])
    assert change.id in listed and "no card in Slack" in listed

    approve = slash_body("/aiops", f"approve {change.id}", "U0BOB", "bob", stub.url + "/respond/ok")
    server.post(approve)
    stub.wait_for(lambda: bool(stub.responded("respond/ok")))
    assert "approved" in stub.responded("respond/ok")[0]["text"].lower()
    stub.wait_for(lambda: service.rt.store.get_change(change.id).state is ChangeState.SUCCEEDED)  # type: ignore[union-attr]
    assert stub.of("chat.update") == []  # nothing refers to the card that never was


def test_a_change_that_needs_no_approval_says_its_card_did_not_arrive(
    served: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = served
    stub.fail["chat.postMessage"] = "is_archived"
    body = slash_body(
        "/deploy", "loan-assessor-stg gemma-3-1b-it@1.2.1", "U0ALICE", "alice", stub.url + "/r/s"
    )
    assert server.post(body).status_code == 200
    stub.wait_for(lambda: bool(stub.responded("r/s")))
    [answer] = stub.responded("r/s")
    assert "did not reach <#C0OPS>" in answer["text"]
    said = json.dumps(answer)
    assert "is_archived" in said and "unarchive it" in said
    assert "progress goes to the change's thread" not in said  # there is no thread
    [change] = service.rt.store.list_changes()
    stub.wait_for(lambda: service.rt.store.get_change(change.id).state is ChangeState.SUCCEEDED)  # type: ignore[union-attr]
    actions = [e.action for e in service.rt.store.audit(AuditQuery(change_id=change.id))]
    assert "card_undelivered" in actions
