"""Forms instead of syntax: a bare `/deploy`, `/promote` or `/rollback` opens a modal
(`views.open` before the ack), choosing an endpoint redraws it for that endpoint
(`views.update`), and a submission is either answered with errors next to its fields or
run as the typed command it spells, answered in a direct message. Over HTTP, signed, in
Slack's wire format; Web API calls go to the recording stub."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import pytest
from slack_sdk.models.views import View
from sqlalchemy import Engine

from bot.serve.server import make_asgi
from bot.settings import BUNDLED_CONFIG
from bot.slack.app import build_app
from bot.slack.clients import web_client
from bot.slack.forms import (
    DATE,
    ENDPOINT,
    ENDPOINT_ACTION,
    REASON,
    SHARE,
    STRATEGY,
    TICKET,
    TIME,
    VALUE,
    VERSION,
    FormMeta,
    check_submission,
    form_view,
    open_view,
    quoted,
)
from bot.slack.notifier import SlackNotifier
from commands.config import Config, parse_config
from commands.model import Actor, ChangeState, Invocation
from commands.parsing import parse
from commands.ports import AuditQuery
from commands.service import Service
from tests.support.harness import ALICE, DAVE, FakeClock, SlackStub, make_runtime
from tests.support.slack_wire import (
    SIGNING_SECRET,
    Served,
    slash_body,
    view_action_body,
    view_submission_body,
)

NOW = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)  # 10:00 on 27 November in Sydney


def form_config(**environments: dict[str, Any]) -> Config:
    """The bundled config, plus a second model served by a dev endpoint (`fraud-screen`),
    and `environments` merged into its environments."""
    raw = tomllib.loads(BUNDLED_CONFIG.read_text())
    raw["models"]["gemma-3-4b-it"] = {"versions": ["2.0.0", "2.1.0"]}
    raw["endpoints"]["fraud-screen"] = {"environment": "dev", "model": "gemma-3-4b-it"}
    for name, table in environments.items():
        raw["environments"][name] = raw["environments"].get(name, {}) | table
    return parse_config(raw, "form-test")


@pytest.fixture
def form_bot(sqlite_engine: Engine, stub: SlackStub) -> Iterator[tuple[Served, Service]]:
    """The `served` bot on `form_config()`."""
    rt = make_runtime(
        sqlite_engine,
        FakeClock(),
        SlackNotifier(web_client("xoxb-test", stub.api_url)),
        config=form_config(),
    )
    service = Service(rt)
    bolt = build_app(
        service, bot_token="xoxb-test", signing_secret=SIGNING_SECRET, api_base_url=stub.api_url
    )
    server = Served(make_asgi(service, bolt))
    yield server, service
    rt.background.wait_idle(30)
    server.close()


# ------------------------------------------------------------------------ helpers


def options(view: dict[str, Any], block_id: str) -> list[str]:
    [block] = [b for b in view["blocks"] if b.get("block_id") == block_id]
    return [o["text"]["text"] for o in block["element"]["options"]]


def block_ids(view: dict[str, Any]) -> list[str]:
    return [b["block_id"] for b in view["blocks"] if b["type"] == "input"]


def input_block(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    [block] = [b for b in view["blocks"] if b.get("block_id") == block_id]
    return block


def valid_modal(view: dict[str, Any]) -> dict[str, Any]:
    """slack_sdk's own validation, and Slack's limits on a modal."""
    View(**view).validate_json()
    assert view["type"] == "modal"
    assert len(view["title"]["text"]) <= 24 and len(view["blocks"]) <= 100
    texts = [
        o["text"]["text"]
        for b in view["blocks"]
        if b["type"] == "input" and "options" in b["element"]
        for o in b["element"]["options"]
    ]
    assert all(len(t) <= 75 for t in texts)
    return view


def open_form(server: Served, stub: SlackStub, command: str, who: Actor = ALICE) -> dict[str, Any]:
    body = slash_body(command, "", who.id, who.name or "", stub.url + "/respond/form")
    resp = server.post(body)
    assert resp.status_code == 200 and resp.text == ""  # acked, nothing said in the channel
    # opened before the ack left: the listener awaited views.open, no waiting here
    [call] = stub.of("views.open")
    assert call.body["trigger_id"] == parse_qs(body)["trigger_id"][0]
    view = call.body["view"]
    return valid_modal(json.loads(view) if isinstance(view, str) else view)


def choose(
    server: Served, stub: SlackStub, view: dict[str, Any], endpoint: str, who: Actor = ALICE
) -> dict[str, Any]:
    before = len(stub.of("views.update"))
    body = view_action_body(view, ENDPOINT, ENDPOINT_ACTION, endpoint, who.id, who.name or "")
    assert server.post(body).status_code == 200
    update = stub.of("views.update")[before]
    sent = json.loads(parse_qs(body)["payload"][0])["view"]
    assert update.body["view_id"] == "V0FORM" and update.body["hash"] == sent["hash"]
    new = update.body["view"]
    return valid_modal(json.loads(new) if isinstance(new, str) else new)


def state(
    endpoint: str | None,
    *,
    version: str | None = None,
    share: str | None = None,
    strategy: str | None = None,
    reason: str | None = None,
    ticket: str | None = None,
    date: str | None = None,
    time: str | None = None,
) -> dict[str, Any]:
    """`view.state.values` as Slack sends it: block id → action id → the element's state."""

    def picked(value: str | None) -> dict[str, Any]:
        option = {"text": {"type": "plain_text", "text": value}, "value": value}
        return {"type": "static_select", "selected_option": option if value else None}

    values: dict[str, Any] = {ENDPOINT: {ENDPOINT_ACTION: picked(endpoint)}}
    if version is not None:
        values[VERSION] = {VALUE: picked(version)}
    if strategy is not None:
        values[STRATEGY] = {VALUE: {"type": "radio_buttons", **picked(strategy)}}
    if share is not None:
        values[SHARE] = {VALUE: {"type": "number_input", "value": share}}
    values[REASON] = {VALUE: {"type": "plain_text_input", "value": reason}}
    if ticket is not None:
        values[TICKET] = {VALUE: {"type": "plain_text_input", "value": ticket}}
    values[DATE] = {VALUE: {"type": "datepicker", "selected_date": date}}
    values[TIME] = {VALUE: {"type": "timepicker", "selected_time": time}}
    return values


def command_rows(service: Service) -> list[dict[str, Any]]:
    return [e.parameters for e in service.rt.store.audit(AuditQuery()) if e.action == "command"]


def dms(stub: SlackStub, user: str) -> list[dict[str, Any]]:
    return [c.body for c in stub.of("chat.postMessage") if c.body.get("channel") == user]


# ------------------------------------------------------------------------ over HTTP


@pytest.mark.parametrize(
    ("command", "fields", "rule"),
    [
        (
            "/deploy",
            [ENDPOINT, VERSION, STRATEGY, SHARE, REASON, DATE, TIME],
            "1 approval from <@U0BOB>",
        ),
        ("/promote", [ENDPOINT, STRATEGY, SHARE, REASON, DATE, TIME], "1 approval from <@U0BOB>"),
        ("/rollback", [ENDPOINT, REASON], "runs at once (mitigation first), announced"),
    ],
)
def test_a_bare_command_opens_its_form_and_an_endpoint_draws_its_fields(
    form_bot: tuple[Served, Service], stub: SlackStub, command: str, fields: list[str], rule: str
) -> None:
    server, service = form_bot
    view = open_form(server, stub, command)
    # alice requests in every environment: every endpoint, none chosen yet
    assert options(view, ENDPOINT) == [
        "loan-assessor (prod)",
        "loan-assessor-stg (staging)",
        "fraud-screen (dev)",
    ]
    assert block_ids(view) == [ENDPOINT] and input_block(view, ENDPOINT)["dispatch_action"]
    assert FormMeta.loads(view["private_metadata"]) == FormMeta(command, "C0OPS", None)
    drawn = choose(server, stub, view, "loan-assessor")
    assert block_ids(drawn) == fields
    assert FormMeta.loads(drawn["private_metadata"]) == FormMeta(command, "C0OPS", "loan-assessor")
    assert input_block(drawn, REASON)["optional"] is False  # prod needs a reason
    assert rule in json.dumps(drawn)  # what prod asks of this kind of change
    assert not stub.of("response_url") and not command_rows(service)  # nothing ran


def test_the_versions_offered_are_the_chosen_endpoints(
    form_bot: tuple[Served, Service], stub: SlackStub
) -> None:
    server, _ = form_bot
    view = open_form(server, stub, "/deploy")
    prod = choose(server, stub, view, "loan-assessor")
    assert options(prod, VERSION) == [
        f"gemma-3-1b-it@{v}" for v in ("1.0.0", "1.1.0", "1.2.0", "1.2.1", "1.3.0-rc1", "1.3.0-rc2")
    ]
    dev = choose(server, stub, prod, "fraud-screen")
    assert options(dev, VERSION) == ["gemma-3-4b-it@2.0.0", "gemma-3-4b-it@2.1.0"]
    assert input_block(dev, REASON)["optional"] is True  # dev asks for no reason


def test_a_submission_with_errors_names_each_field_and_runs_nothing(
    form_bot: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = form_bot
    view = choose(server, stub, open_form(server, stub, "/deploy"), "loan-assessor")
    values = state(
        "loan-assessor",
        version="2.0.0",  # a version of the other model
        share="0",
        reason="   ",  # prod needs one
        date="2020-01-06",
        time="11:00",
    )
    resp = server.post(view_submission_body(view, values, ALICE.id, "alice"))
    assert resp.status_code == 200
    answer = resp.json()
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {VERSION, SHARE, REASON, TIME}
    assert "gemma-3-1b-it" in answer["errors"][VERSION]
    assert "1–100" in answer["errors"][SHARE]
    assert "in the past" in answer["errors"][TIME]
    assert not command_rows(service) and not stub.of("chat.postMessage")


def test_a_valid_submission_is_the_typed_command(
    form_bot: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = form_bot
    view = choose(server, stub, open_form(server, stub, "/deploy"), "loan-assessor")
    card = "4111 1111 1111 1111"
    reason = f'fix the "tokenizer" bug; refund card {card}'
    values = state("loan-assessor", version="1.2.1", share="25", reason=reason)
    body = view_submission_body(view, values, ALICE.id, "alice")
    resp = server.post(body)
    assert resp.status_code == 200 and resp.text == ""  # the form closes
    stub.wait_for(lambda: any("waiting for approval" in d["text"] for d in dms(stub, ALICE.id)))
    cards = [c for c in stub.of("chat.postMessage") if c.body.get("channel") == "C0APPROVALS"]
    assert len(cards) == 1
    [row] = command_rows(service)
    # the exact typed text (the reason quoted, its quotes escaped, the card masked as it
    # would be in a typed command), from the channel the form was opened in
    assert row["command"] == "/deploy" and row["channel"] == "C0OPS"
    typed = 'loan-assessor gemma-3-1b-it@1.2.1 canary=25 reason="fix the \\"tokenizer\\" bug;'
    assert row["text"].startswith(typed + " refund card [CARD:") and row["text"].endswith(']"')
    assert card not in json.dumps(row) and card not in json.dumps([c.body for c in stub.calls])
    [change] = service.rt.store.list_changes(endpoint="loan-assessor")
    assert change.state is ChangeState.PENDING_APPROVAL and change.requester_id == ALICE.id
    assert change.version == "gemma-3-1b-it@1.2.1" and change.canary_percent == 25
    assert change.reason is not None and change.reason.startswith('fix the "tokenizer" bug')
    # a replay of the same signed submission is answered once, not run again
    assert server.post(body).status_code == 200
    assert len(command_rows(service)) == 1

    # typed, the same text makes the same change
    service.handle(Invocation(ALICE, "/aiops", f"cancel {change.id}"))
    reply = service.handle(Invocation(ALICE, "/deploy", row["text"], channel_id="C0OPS"))
    assert reply.ok, reply.text
    again = service.rt.store.open_change("loan-assessor")
    assert again is not None and again.id != change.id
    for field in ("version", "canary_percent", "reason", "split_after", "environment"):
        assert getattr(again, field) == getattr(change, field), field
    assert again.plan.plan_hash == change.plan.plan_hash
    assert command_rows(service)[-1]["text"] == row["text"]


def test_a_promote_in_steps_is_the_environments_plan(
    form_bot: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = form_bot
    view = choose(server, stub, open_form(server, stub, "/promote"), "loan-assessor-stg")
    assert options(view, STRATEGY)[1] == "Steps: 25% → 50% → 100%"  # staging's promote_steps
    values = state("loan-assessor-stg", strategy="steps", share="100")
    assert server.post(view_submission_body(view, values, ALICE.id, "alice")).status_code == 200
    stub.wait_for(lambda: bool(command_rows(service)) and bool(dms(stub, ALICE.id)))
    assert command_rows(service)[0]["text"] == "loan-assessor-stg steps=25,50,100"


def test_someone_who_may_not_request_is_told_before_filling_in(
    form_bot: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = form_bot
    view = open_form(server, stub, "/rollback", DAVE)
    assert "submit" not in view and block_ids(view) == []
    assert "may not request changes in any environment" in json.dumps(view)
    # and a forged submission for him is refused next to the endpoint
    drawn = form_view(form_config(), "/rollback", ALICE.id, "C0OPS", "loan-assessor")
    body = view_submission_body(
        drawn.to_dict(), state("loan-assessor", reason="x"), DAVE.id, "dave"
    )
    answer = server.post(body).json()
    assert answer == {
        "response_action": "errors",
        "errors": {ENDPOINT: "You may not request changes in prod."},
    }
    assert not command_rows(service)


def test_a_typed_command_still_runs_as_typed(
    form_bot: tuple[Served, Service], stub: SlackStub
) -> None:
    server, _ = form_bot
    body = slash_body("/deploy", "help", ALICE.id, "alice", stub.url + "/respond/help")
    assert server.post(body).status_code == 200
    stub.wait_for(lambda: bool(stub.responded("respond/help")))
    assert not stub.of("views.open")


def test_a_form_slack_would_not_open_is_said_in_the_ack(
    form_bot: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = form_bot
    stub.fail["views.open"] = "expired_trigger_id"
    body = slash_body("/promote", "  ", ALICE.id, "alice", stub.url + "/respond/x")
    resp = server.post(body)
    assert resp.status_code == 200
    assert "did not open" in resp.text and "expired_trigger_id" in resp.text
    assert "Type the command instead: `/promote <endpoint>" in resp.text
    assert not command_rows(service)


# ------------------------------------------------------------------------ the pure parts


@pytest.mark.parametrize(
    "reason",
    [
        'say "ship it" now',
        "“curly” quotes",
        "ends with a backslash \\",
        'a \\" already escaped',
        "it's fine, can't wait",
        "two\nlines",
        "key=value inside",
    ],
)
def test_a_quoted_reason_reads_back_as_written(reason: str) -> None:
    args = parse(f"loan-assessor reason={quoted(reason)}", {"reason"}, 1)
    assert args.options["reason"] == reason.replace("“", '"').replace("”", '"')
    assert args.positionals == ["loan-assessor"]


def test_a_time_is_in_the_configs_zone_and_a_time_alone_is_today() -> None:
    config = form_config()
    meta = FormMeta("/deploy", "C0OPS", "fraud-screen")
    timed = state("fraud-screen", version="2.1.0", share="10", date="2026-11-30", time="09:30")
    checked = check_submission(config, meta, ALICE.id, timed, NOW)
    assert checked.text == 'fraud-screen gemma-3-4b-it@2.1.0 canary=10 at="2026-11-30 09:30"'
    today = state("fraud-screen", version="2.1.0", share="10", time="17:00")
    checked = check_submission(config, meta, ALICE.id, today, NOW)
    assert checked.text is not None and checked.text.endswith('at="2026-11-27 17:00"')
    dateless = state("fraud-screen", version="2.1.0", share="10", date="2026-11-30")
    assert set(check_submission(config, meta, ALICE.id, dateless, NOW).errors) == {TIME}
    far = state("fraud-screen", version="2.1.0", share="10", date="2027-03-01", time="09:00")
    assert "60 days" in check_submission(config, meta, ALICE.id, far, NOW).errors[TIME]


def test_a_deploy_strategy_is_chosen_in_the_form_and_typed_as_the_option() -> None:
    config = form_config()
    view = form_view(config, "/deploy", ALICE.id, "C0OPS", "fraud-screen").to_dict()
    assert options(view, STRATEGY) == ["Canary", "Blue/green", "Replace"]
    meta = FormMeta("/deploy", "C0OPS", "fraud-screen")
    canary = state("fraud-screen", version="2.1.0", strategy="canary", share="25")
    assert check_submission(config, meta, ALICE.id, canary, NOW).text == (
        "fraud-screen gemma-3-4b-it@2.1.0 canary=25"  # today's text, unchanged
    )
    for strategy in ("blue-green", "replace"):
        # the canary share is a canary's: any value in it is not carried over
        values = state("fraud-screen", version="2.1.0", strategy=strategy, share="0")
        checked = check_submission(config, meta, ALICE.id, values, NOW)
        assert checked.text == f"fraud-screen gemma-3-4b-it@2.1.0 strategy={strategy}"
    forged = state("fraud-screen", version="2.1.0", strategy="yolo", share="10")
    assert set(check_submission(config, meta, ALICE.id, forged, NOW).errors) == {STRATEGY}


def test_a_group_requester_is_offered_the_endpoint_and_told_it_is_checked_at_submit() -> None:
    config = form_config(dev={"requesters": ["S0MLTEAM"]})
    view = open_view(config, "/deploy", "U0ERIN", "C0OPS").to_dict()  # listed nowhere by name
    assert options(view, ENDPOINT) == ["fraud-screen (dev)"]  # the one endpoint: chosen
    assert "membership is checked when you submit" in json.dumps(view)
    assert "<!subteam^S0MLTEAM>" in json.dumps(view)
    meta = FormMeta("/deploy", "C0OPS", "fraud-screen")
    values = state("fraud-screen", version="2.0.0", share="10")
    assert check_submission(config, meta, "U0ERIN", values, NOW).text is not None


def test_ticket_and_request_channel_rules_are_the_environments() -> None:
    config = form_config(dev={"require_ticket": True, "request_channels": ["C0MLOPS"]})
    view = form_view(config, "/rollback", ALICE.id, "C0OPS", "fraud-screen").to_dict()
    assert block_ids(view) == [ENDPOINT, REASON, TICKET]
    assert "open the form there" in json.dumps(view)
    here = FormMeta("/rollback", "C0MLOPS", "fraud-screen")
    missing = check_submission(config, here, ALICE.id, state("fraud-screen"), NOW)
    assert set(missing.errors) == {TICKET}
    bad = check_submission(config, here, ALICE.id, state("fraud-screen", ticket="CHG 12"), NOW)
    assert set(bad.errors) == {TICKET}
    good = check_submission(config, here, ALICE.id, state("fraud-screen", ticket="CHG-12"), NOW)
    assert good.text == "fraud-screen ticket=CHG-12"
    elsewhere = FormMeta("/rollback", "C0OPS", "fraud-screen")
    wrong = check_submission(
        config, elsewhere, ALICE.id, state("fraud-screen", ticket="CHG-12"), NOW
    )
    assert set(wrong.errors) == {ENDPOINT}


def test_a_submission_for_an_endpoint_the_form_was_not_drawn_for_waits_for_the_redraw() -> None:
    meta = FormMeta("/deploy", "C0OPS", "loan-assessor")
    values = state("fraud-screen", version="2.0.0", share="10")
    checked = check_submission(form_config(), meta, ALICE.id, values, NOW)
    assert set(checked.errors) == {ENDPOINT} and "updating" in checked.errors[ENDPOINT]


def test_a_double_clicked_submit_is_one_request_and_one_answer(
    form_bot: tuple[Served, Service], stub: SlackStub
) -> None:
    """A double-clicked Submit sends the same view (id and hash) twice, each with its own
    trigger: one change, one DM, no "locked by" for the second."""
    from urllib.parse import urlencode

    server, service = form_bot
    view = choose(server, stub, open_form(server, stub, "/deploy"), "loan-assessor")
    values = state("loan-assessor", version="1.2.1", share="25", reason="double click")
    body = view_submission_body(view, values, ALICE.id, "alice")
    payload = json.loads(parse_qs(body)["payload"][0])
    payload["trigger_id"] = "another.trigger"
    again = urlencode({"payload": json.dumps(payload)})
    assert server.post(body).status_code == 200
    assert server.post(again).status_code == 200
    stub.wait_for(lambda: any("waiting for approval" in d["text"] for d in dms(stub, ALICE.id)))
    assert len(command_rows(service)) == 1
    assert not [d for d in dms(stub, ALICE.id) if "locked" in d["text"]]


def test_a_forged_form_channel_is_a_stale_form_not_an_audit_value(
    form_bot: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = form_bot
    view = choose(server, stub, open_form(server, stub, "/deploy"), "loan-assessor")
    meta = json.loads(view["private_metadata"])
    for forged in (["C0OPS"], {"x": 1}, "not a channel"):
        view = {**view, "private_metadata": json.dumps({**meta, "ch": forged})}
        values = state("loan-assessor", version="1.2.1", share="25", reason="forged")
        resp = server.post(view_submission_body(view, values, ALICE.id, "alice"))
        assert resp.status_code == 200 and "stale" in resp.text, forged
    assert command_rows(service) == []
