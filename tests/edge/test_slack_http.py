"""The Bolt app over HTTP: signed requests in Slack's wire format; its Web API calls and
response_url posts go to a local stub that records them."""

from __future__ import annotations

import json
import threading
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.serve.server import make_asgi
from bot.slack.app import build_app
from bot.slack.notifier import SlackNotifier
from commands.model import ChangeState, Invocation
from commands.ports import AuditQuery
from commands.service import Service
from tests.support.harness import ALICE, FakeClock, SlackStub, make_runtime
from tests.support.slack_wire import SIGNING_SECRET, Served, action_body, sign, slash_body


def responses(stub: SlackStub) -> list[dict[str, Any]]:
    return [c.body for c in stub.of("response_url")]


def buttons(blocks: list[dict[str, Any]]) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def deploy(server: Served, stub: SlackStub) -> str:
    body = slash_body(
        "/deploy",
        'loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="fix tokenizer"',
        "U0ALICE",
        "alice",
        stub.url + "/respond/deploy",
    )
    resp = server.post(body)
    assert resp.status_code == 200
    stub.wait_for(
        lambda: any(c.body.get("channel") == "C0APPROVALS" for c in stub.of("chat.postMessage"))
    )
    card = next(
        c.body for c in stub.of("chat.postMessage") if c.body.get("channel") == "C0APPROVALS"
    )
    assert buttons(card["blocks"]) == ["approve", "reject"]
    return str(card["blocks"][-1]["elements"][0]["value"])


def test_deploy_posts_plan_and_approval_runs_it(
    served: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = served
    change_id = deploy(server, stub)
    stub.wait_for(lambda: len(responses(stub)) == 1)
    assert responses(stub)[0]["response_type"] == "ephemeral"
    assert change_id in responses(stub)[0]["text"]

    click = action_body("approve", change_id, "U0BOB", "bob", stub.url + "/respond/2")
    assert server.post(click).status_code == 200
    store = service.rt.store
    stub.wait_for(lambda: store.get_change(change_id).state is ChangeState.SUCCEEDED)  # type: ignore[union-attr]
    service.rt.background.wait_idle()
    updates = stub.of("chat.update")
    assert updates, "the approval card must be updated"
    assert all(u.body["channel"] == "C0APPROVALS" for u in updates)
    assert buttons(updates[-1].body["blocks"]) == []  # the buttons go once decided
    final = json.dumps(updates[-1].body["blocks"])
    assert "succeeded" in final and "U0BOB" in final
    dms = [c.body for c in stub.of("chat.postMessage") if c.body.get("channel") == "U0ALICE"]
    assert any("approved" in d["text"] for d in dms)  # the requester is told
    assert any("succeeded" in d["text"] for d in dms)


def test_double_click_and_concurrent_clicks_execute_once(
    served: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = served
    change_id = deploy(server, stub)
    bodies = [
        action_body("approve", change_id, user, name, stub.url + f"/respond/{i}")
        for i, (user, name) in enumerate(
            [("U0BOB", "bob"), ("U0BOB", "bob"), ("U0CAROL", "carol"), ("U0CAROL", "carol")]
        )
    ]
    codes: list[int] = []
    threads = [
        threading.Thread(target=lambda b=b: codes.append(server.post(b).status_code))
        for b in bodies
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 4
    stub.wait_for(lambda: len(responses(stub)) >= 5)
    service.rt.background.wait_idle()
    stub.wait_for(lambda: service.rt.store.get_change(change_id).state is ChangeState.SUCCEEDED)  # type: ignore[union-attr]
    from commands.ports import AuditQuery

    started = [
        e
        for e in service.rt.store.audit(AuditQuery(change_id=change_id))
        if e.action == "execution_started"
    ]
    assert len(started) == 1
    told = [stub.responded(f"respond/{i}")[0]["text"] for i in range(4)]
    assert sum("already" in t for t in told) == 3, told


def test_reject_button(served: tuple[Served, Service], stub: SlackStub) -> None:
    server, service = served
    change_id = deploy(server, stub)
    server.post(action_body("reject", change_id, "U0CAROL", "carol", stub.url + "/respond/9"))
    stub.wait_for(lambda: service.rt.store.get_change(change_id).state is ChangeState.REJECTED)  # type: ignore[union-attr]
    stub.wait_for(lambda: bool(stub.of("chat.update")))
    assert "rejected" in json.dumps(stub.of("chat.update")[-1].body["blocks"])


def test_self_approval_refused_over_slack(served: tuple[Served, Service], stub: SlackStub) -> None:
    server, service = served
    change_id = deploy(server, stub)
    server.post(action_body("approve", change_id, "U0ALICE", "alice", stub.url + "/respond/3"))
    stub.wait_for(lambda: bool(stub.responded("respond/3")))
    assert "someone else" in stub.responded("respond/3")[0]["text"]
    assert service.rt.store.get_change(change_id).state is ChangeState.PENDING_APPROVAL  # type: ignore[union-attr]


def test_forged_and_stale_signatures_get_401(
    served: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = served
    body = slash_body(
        "/deploy", "loan-assessor-stg gemma-3-1b-it@1.2.1", "U0ALICE", "alice", stub.url + "/r"
    )
    assert server.post(body, sign(body, secret="not-the-secret")).status_code == 401
    import time

    assert server.post(body, sign(body, timestamp=int(time.time()) - 600)).status_code == 401
    tampered = sign(body)
    assert server.post(body.replace("1.2.1", "1.2.0"), tampered).status_code == 401
    assert service.rt.store.list_changes() == []
    assert responses(stub) == []


def test_other_workspace_refused(served: tuple[Served, Service], stub: SlackStub) -> None:
    server, service = served
    body = slash_body("/aiops", "status", "U0ALICE", "alice", stub.url + "/r", team_id="T0OTHER")
    assert server.post(body).status_code == 403
    assert service.rt.store.list_changes() == []


def test_start_up_work_runs_after_the_server_answers_and_a_failure_fails_healthz(
    sqlite_engine: Engine, stub: SlackStub
) -> None:
    """Resuming changes and starting the scheduler wait for no ack, but a scheduler that
    cannot start makes `/healthz` fail (503), so the orchestrator sees it and restarts."""
    rt = make_runtime(
        sqlite_engine, FakeClock(), SlackNotifier(WebClient(token="x", base_url=stub.api_url))
    )
    service = Service(rt)
    bolt = build_app(service, bot_token="x", signing_secret=SIGNING_SECRET)
    release = threading.Event()

    def broken_scheduler() -> None:
        release.wait(10)
        raise RuntimeError("job store unreachable")

    server = Served(make_asgi(service, bolt, scheduler=broken_scheduler))
    try:
        starting = server.client.get("/healthz")  # answered while the start-up work runs
        assert starting.status_code == 200 and starting.json()["startup"] == "starting"
        release.set()
        assert server.app.state.startup.wait(10)
        failed = server.client.get("/healthz")
        assert failed.status_code == 503
        assert failed.json() == {
            "ok": False,
            "platform": "sandbox",
            "startup": "failed: RuntimeError",
        }
    finally:
        release.set()
        server.close()


def test_status_command_and_healthz(served: tuple[Served, Service], stub: SlackStub) -> None:
    server, _ = served
    assert server.app.state.startup.wait(10)
    assert server.client.get("/healthz").json() == {
        "ok": True,
        "platform": "sandbox",
        "startup": "done",
    }
    server.post(slash_body("/aiops", "status", "U0DAVE", "dave", stub.url + "/respond/s"))
    stub.wait_for(lambda: len(responses(stub)) == 1)
    blocks = responses(stub)[0]["blocks"]
    assert blocks[0]["type"] == "header" and len(blocks) <= 50
    assert "loan-assessor" in json.dumps(blocks)


def test_every_button_the_bot_renders_is_routed_and_others_are_not(
    served: tuple[Served, Service], stub: SlackStub
) -> None:
    """The digests' Open status / Open changes (value `all`), a canary's Rollback and
    Promote anyway and a card's Approve / Reject all reach the domain; a button the bot
    never rendered gets Bolt's 404 and runs nothing."""
    server, service = served
    clicks = {
        "status": "all",
        "changes": "all",
        "canary-rollback": "CHG-404",
        "canary-promote": "CHG-404",
        "approve": "CHG-404",
        "reject": "CHG-404",
    }
    for action_id, value in clicks.items():
        body = action_body(action_id, value, "U0BOB", "bob", f"{stub.url}/respond/{action_id}")
        assert server.post(body).status_code == 200, action_id
        stub.wait_for(lambda a=action_id: bool(stub.responded(f"/respond/{a}")))  # type: ignore[misc]
        [reply] = stub.responded(f"/respond/{action_id}")
        assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
    assert "loan-assessor" in json.dumps(stub.responded("/respond/status")[0]["blocks"])
    for action_id in ("approve", "canary-promote"):
        assert "CHG-404" in stub.responded(f"/respond/{action_id}")[0]["text"]

    unknown = action_body("frobnicate", "CHG-1", "U0BOB", "bob", stub.url + "/respond/x")
    assert server.post(unknown).status_code == 404
    service.rt.background.wait_idle(10)
    assert stub.responded("/respond/x") == []
    commands = [e for e in service.rt.store.audit(AuditQuery()) if e.action == "command"]
    assert len(commands) == len(clicks)


def test_the_cost_buttons_request_a_scale_and_an_undeploy_under_the_usual_rules(
    served: tuple[Served, Service], stub: SlackStub
) -> None:
    """The digest's Scale down / Undeploy buttons (action ids `scale` and `undeploy`, the
    typed arguments as value) reach the domain as requests: a prod scale waits for an
    approver; an undeploy of a model with traffic is refused, saying why."""
    server, service = served
    scale = action_body(
        "scale", "loan-assessor 1.2.0 min=1 max=2", "U0ALICE", "alice", stub.url + "/respond/sc"
    )
    assert server.post(scale).status_code == 200
    stub.wait_for(lambda: bool(stub.responded("/respond/sc")))
    [reply] = stub.responded("/respond/sc")
    assert reply["response_type"] == "ephemeral"
    assert "needs a reason" in reply["text"]  # prod's rules hold for a click too
    assert service.rt.store.list_changes() == []
    reasoned = action_body(
        "scale",
        'loan-assessor 1.2.0 min=1 max=2 reason="idle overnight"',
        "U0ALICE",
        "alice",
        stub.url + "/respond/re",
    )
    assert server.post(reasoned).status_code == 200
    stub.wait_for(lambda: bool(stub.responded("/respond/re")))
    assert "waiting for approval" in stub.responded("/respond/re")[0]["text"]
    [pending] = service.rt.store.list_changes()
    assert service.handle(Invocation(ALICE, "/aiops", f"cancel {pending.id}")).ok

    undeploy = action_body(
        "undeploy", "loan-assessor-stg 1.2.0", "U0ALICE", "alice", stub.url + "/respond/un"
    )
    assert server.post(undeploy).status_code == 200
    stub.wait_for(lambda: bool(stub.responded("/respond/un")))
    [refused] = stub.responded("/respond/un")
    assert "only a model at 0 % may be undeployed" in refused["text"]

    staging = action_body(
        "scale", "loan-assessor-stg 1.2.0 max=1", "U0ALICE", "alice", stub.url + "/respond/ok"
    )
    assert server.post(staging).status_code == 200
    stub.wait_for(lambda: bool(stub.responded("/respond/ok")))
    service.rt.background.wait_idle(30)
    change = service.rt.store.list_changes(limit=1)[0]
    assert change.kind.value == "scale" and change.plan.replicas_after == (1, 1)
    commands = [e for e in service.rt.store.audit(AuditQuery()) if e.action == "command"]
    assert [c.parameters["text"] for c in commands] == [
        "scale loan-assessor 1.2.0 min=1 max=2",
        'scale loan-assessor 1.2.0 min=1 max=2 reason="idle overnight"',
        f"cancel {pending.id}",
        "undeploy loan-assessor-stg 1.2.0",
        "scale loan-assessor-stg 1.2.0 max=1",
    ]
