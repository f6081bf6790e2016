"""Each policy rule, and a try to break it: distinct approvers, user groups resolved at
click time, approvals bound to the plan, tickets, break glass, freezes, residency,
request channels, workspaces (team and enterprise) and injected mentions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.serve.server import make_asgi
from bot.slack.app import build_app, workspace_allowed
from bot.slack.blocks import render_message
from bot.slack.groups import SlackUserGroups
from bot.slack.notifier import SlackNotifier
from commands.audit import AuditAction
from commands.changes.rules import check_approval
from commands.config import Config, ConfigError, parse_config
from commands.errors import Refusal
from commands.freezes import parse_freezes
from commands.model import ChangeState, Invocation, ModelVersion
from commands.ports import AuditQuery
from commands.runtime import NullNotifier
from commands.service import Service
from tests.support.harness import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    Bot,
    FakeClock,
    SlackStub,
    example_config,
    make_runtime,
    text_of,
)
from tests.support.slack_wire import Served, action_body, slash_body

DEPLOY = '/deploy loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="fix tokenizer bug"'
GROUP = "S0APPROVERS"
# FakeClock starts at 2026-11-26 23:00 UTC: Friday 27 November, 10:00 in Sydney.


def configured(**prod: Any) -> Config:
    config = example_config()
    extra = {k: prod.pop(k) for k in ("freezes", "enterprise_id", "team_id") if k in prod}
    envs = dict(config.environments)
    envs["prod"] = replace(envs["prod"], **prod)
    return replace(config, environments=envs, **extra)


def make_bot(engine: Engine, clock: FakeClock, config: Config | None = None) -> Bot:
    return Bot(make_runtime(engine, clock, config=config or configured()), clock)


def open_id(bot: Bot) -> str:
    change = bot.rt.store.open_change("loan-assessor")
    assert change is not None
    return change.id


def actions(bot: Bot, change_id: str) -> list[str]:
    return [e.action for e in bot.rt.store.audit(AuditQuery(change_id=change_id))]


# --- distinct approvers ---------------------------------------------------------------


def test_two_distinct_approvers_requester_never_counts(sqlite_engine: Engine) -> None:
    clock = FakeClock()
    bot = make_bot(sqlite_engine, clock, configured(approvals_required=2))
    bot.run(ALICE, DEPLOY)
    change_id = open_id(bot)
    own = bot.run(ALICE, f"/aiops approve {change_id}")
    assert not own.ok and "someone else" in own.text
    first = bot.run(BOB, f"/aiops approve {change_id}")
    assert first.ok and "1 of 2" in first.text
    again = bot.run(BOB, f"/aiops approve {change_id}")  # one person counts once
    assert not again.ok and "already" in again.text
    stranger = bot.run(DAVE, f"/aiops approve {change_id}")
    assert not stranger.ok and "may not approve" in stranger.text
    assert bot.change(change_id).state is ChangeState.PENDING_APPROVAL
    assert bot.split("loan-assessor") == {"1.2.0": 100}
    second = bot.run(CAROL, f"/aiops approve {change_id}")
    assert second.ok, text_of(second)
    assert bot.change(change_id).state is ChangeState.SUCCEEDED
    records = bot.rt.store.approvals(change_id)
    assert [r.approver_id for r in records] == [BOB.id, CAROL.id]
    shown = bot.change(change_id).plan.plan_hash
    assert all(r.plan_hash == shown for r in records)  # bound to the plan shown


# --- user groups, resolved through the Slack API at click time --------------------------


def group_bot(engine: Engine, stub: SlackStub) -> Bot:
    clock = FakeClock()
    bot = make_bot(engine, clock, configured(approvers=(GROUP,)))
    bot.rt.groups = SlackUserGroups(WebClient(token="xoxb-test", base_url=stub.api_url))
    return bot


def test_group_member_added_between_request_and_click_may_approve(
    sqlite_engine: Engine, stub: SlackStub
) -> None:
    bot = group_bot(sqlite_engine, stub)
    stub.groups[GROUP] = [BOB.id]
    bot.run(ALICE, DEPLOY)
    change_id = open_id(bot)
    stub.groups[GROUP] = [BOB.id, DAVE.id]  # dave joins the approvers' group
    reply = bot.run(DAVE, f"/aiops approve {change_id}")
    assert reply.ok, text_of(reply)
    assert bot.change(change_id).state is ChangeState.SUCCEEDED
    asked = [c.body["usergroup"] for c in stub.of("usergroups.users.list")]
    assert asked == [GROUP]  # resolved once, at the click


def test_group_member_removed_between_request_and_click_may_not(
    sqlite_engine: Engine, stub: SlackStub
) -> None:
    bot = group_bot(sqlite_engine, stub)
    stub.groups[GROUP] = [BOB.id, CAROL.id]
    bot.run(ALICE, DEPLOY)
    change_id = open_id(bot)
    stub.groups[GROUP] = [CAROL.id]  # bob left the team
    reply = bot.run(BOB, f"/aiops approve {change_id}")
    assert not reply.ok and "may not approve" in reply.text
    assert bot.change(change_id).state is ChangeState.PENDING_APPROVAL
    stub.fail["usergroups.users.list"] = "ratelimited"  # an unreadable group grants nothing
    assert not bot.run(CAROL, f"/aiops approve {change_id}").ok
    del stub.fail["usergroups.users.list"]
    assert bot.run(CAROL, f"/aiops approve {change_id}").ok


# --- approvals bound to the plan -------------------------------------------------------


def test_approval_void_when_endpoint_moved_before_the_click(sqlite_engine: Engine) -> None:
    clock = FakeClock()
    bot = make_bot(sqlite_engine, clock)
    bot.run(ALICE, DEPLOY)
    change_id = open_id(bot)
    # Someone deploys outside the bot (the console, another tool): traffic moves.
    ep = bot.rt.config.endpoints["loan-assessor"]
    stable = next(iter(bot.rt.platform.endpoint_state(ep).traffic))
    name = bot.rt.platform.begin_deploy(
        ep, ModelVersion("gemma-3-1b-it", "1.1.0"), {stable: 50, "0": 50}
    )
    clock.advance(60)
    assert bot.rt.platform.operation(name).done
    reply = bot.run(BOB, f"/aiops approve {change_id}")
    assert not reply.ok
    assert "void" in reply.text and "changed since the request" in reply.text
    assert "plan it again" in text_of(reply)
    change = bot.change(change_id)
    assert change.state is ChangeState.CANCELLED
    assert bot.rt.store.open_change("loan-assessor") is None  # free to plan again
    assert bot.rt.store.approvals(change_id) == []
    assert "approval_void" in actions(bot, change_id)
    assert "execution_started" not in actions(bot, change_id)
    assert bot.split("loan-assessor") == {"1.2.0": 50, "1.1.0": 50}  # untouched by the bot


def test_approval_void_when_the_plan_was_altered(sqlite_engine: Engine) -> None:
    clock = FakeClock()
    bot = make_bot(sqlite_engine, clock)
    bot.run(ALICE, DEPLOY)
    change_id = open_id(bot)
    change = bot.change(change_id)
    tampered = dict.fromkeys(change.split_after, 50)  # 90 · 10 became 50 · 50
    bot.rt.store.update_change(change_id, split_after=tampered)
    reply = bot.run(BOB, f"/aiops approve {change_id}")
    assert not reply.ok and "altered" in reply.text
    assert bot.change(change_id).state is ChangeState.CANCELLED
    assert bot.split("loan-assessor") == {"1.2.0": 100}


# --- tickets, request channels, residency ----------------------------------------------


def test_ticket_required_and_well_formed(sqlite_engine: Engine) -> None:
    bot = make_bot(sqlite_engine, FakeClock(), configured(require_ticket=True))
    missing = bot.run(ALICE, DEPLOY)
    assert not missing.ok and "needs a change ticket" in missing.text
    forged = bot.run(ALICE, DEPLOY + " ticket=<!channel>")
    assert not forged.ok and "<!channel>" not in text_of(forged)
    ok = bot.run(ALICE, DEPLOY + " ticket=CHG-1234")
    assert ok.ok, text_of(ok)
    assert bot.change(open_id(bot)).plan.ticket == "CHG-1234"
    assert bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1").ok  # not staging


def test_requests_only_from_allowed_channels(sqlite_engine: Engine) -> None:
    bot = make_bot(sqlite_engine, FakeClock(), configured(request_channels=("C0OPS",)))
    wrong = bot.run(ALICE, DEPLOY)  # Bot.run types in C0TEST
    assert not wrong.ok and "<#C0OPS>" in wrong.text
    command, _, text = DEPLOY.partition(" ")
    right = bot.service.handle(Invocation(ALICE, command, text, channel_id="C0OPS"))
    assert right.ok, text_of(right)


def test_region_outside_the_list_refused_at_start_and_at_change_time(
    sqlite_engine: Engine,
) -> None:
    data = json.loads(json.dumps(example_config().raw))
    data["endpoints"]["loan-assessor"]["region"] = "us-central1"
    with pytest.raises(ConfigError, match="data residency"):
        parse_config(data)
    # A config built some other way (or an endpoint moved under a running bot).
    config = example_config()
    eps = dict(config.endpoints)
    eps["loan-assessor"] = replace(eps["loan-assessor"], region="us-central1")
    bot = make_bot(sqlite_engine, FakeClock(), replace(config, endpoints=eps))
    for line in (DEPLOY, "/rollback loan-assessor"):
        reply = bot.run(ALICE, line)
        assert not reply.ok and "outside the allowed regions" in reply.text
    assert bot.rt.store.list_changes() == []


# --- freezes ---------------------------------------------------------------------------


def frozen_config(*windows: dict[str, Any]) -> Config:
    return configured(freezes=parse_freezes(list(windows), {"dev", "staging", "prod"}))


WEEKLY = {"name": "friday-close", "weekly": {"from": "fri 09:00", "until": "fri 17:00"}}
DATED = {
    "name": "month-end",
    "from": datetime(2026, 11, 27, 0, 0),
    "until": datetime(2026, 12, 1, 8, 0),
}


@pytest.mark.parametrize("window", [WEEKLY, DATED], ids=["weekly", "dated"])
def test_freeze_refuses_prod_deploy_and_promote_never_rollback(
    sqlite_engine: Engine, window: dict[str, Any]
) -> None:
    clock = FakeClock()
    bot = make_bot(sqlite_engine, clock, frozen_config(window))
    reply = bot.run(ALICE, DEPLOY)
    assert not reply.ok
    assert f"change freeze `{window['name']}`" in reply.text and "Australia/Sydney" in reply.text
    promote = bot.run(ALICE, '/promote loan-assessor reason="x"')
    assert not promote.ok and "freeze" in promote.text
    assert bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1").ok  # staging
    rollback = bot.run(CAROL, '/rollback loan-assessor reason="mitigate"')
    assert "freeze" not in rollback.text  # rollback is never frozen
    clock.advance(days=5)  # past both windows (Wednesday)
    assert bot.run(ALICE, DEPLOY).ok


def test_freeze_that_starts_before_the_click_blocks_the_approval(sqlite_engine: Engine) -> None:
    clock = FakeClock(datetime(2026, 11, 26, 21, 30, tzinfo=UTC))  # Fri 08:30 Sydney
    bot = make_bot(sqlite_engine, clock, frozen_config(WEEKLY))
    assert bot.run(ALICE, DEPLOY).ok
    change_id = open_id(bot)
    clock.advance(hours=1)  # 09:30: frozen
    reply = bot.run(BOB, f"/aiops approve {change_id}")
    assert not reply.ok and "cannot be approved now" in reply.text
    assert bot.change(change_id).state is ChangeState.PENDING_APPROVAL


# --- break glass -----------------------------------------------------------------------


def test_break_glass_runs_without_approval_announced_and_flagged(sqlite_engine: Engine) -> None:
    clock = FakeClock()
    bot = make_bot(
        sqlite_engine, clock, replace(frozen_config(WEEKLY), environments=_glass(BOB.id))
    )
    glass = DEPLOY.replace('reason="fix tokenizer bug"', 'break_glass=true reason="P1: fraud"')
    refused = bot.run(ALICE, glass)  # not on the list
    assert not refused.ok and "break-glass list" in refused.text
    no_reason = bot.run(BOB, glass.replace(' reason="P1: fraud"', ""))
    assert not no_reason.ok and "needs a reason" in no_reason.text
    reply = bot.run(BOB, glass)
    assert reply.ok, text_of(reply)
    change = bot.rt.store.list_changes(limit=1)[0]
    assert change.state is ChangeState.SUCCEEDED and change.plan.break_glass is True
    assert bot.split("loan-assessor") == {"1.2.0": 90, "1.2.1": 10}
    events = bot.rt.store.audit(AuditQuery(change_id=change.id))
    flagged = [e for e in events if e.action == "break_glass"]
    assert len(flagged) == 1 and flagged[0].parameters["break_glass"] is True
    assert flagged[0].parameters["freeze_overridden"] == "friday-close"
    assert flagged[0].justification == "P1: fraud"
    notifier = bot.rt.notifier
    assert isinstance(notifier, NullNotifier)
    announced = [p for p in notifier.posts if p.channel == bot.rt.config.channels.approvals]
    assert announced and "Break glass" in text_of(announced[0].reply)


def _glass(*ids: str) -> dict[str, Any]:
    config = example_config()
    envs = dict(config.environments)
    envs["prod"] = replace(envs["prod"], break_glass=ids)
    return envs


# --- workspaces ------------------------------------------------------------------------


def test_workspace_rules() -> None:
    assert workspace_allowed("T1", None, "T1", None)
    assert not workspace_allowed("T1", None, "T2", None)
    assert workspace_allowed(None, "E1", "T9", "E1")  # any workspace of the org
    assert not workspace_allowed(None, "E1", "T9", "E2")
    assert not workspace_allowed(None, "E1", "T9", None)
    assert workspace_allowed("T1", "E1", "T1", "E1")
    assert not workspace_allowed("T1", "E1", "T1", "E2")
    assert not workspace_allowed("T1", "E1", "T2", "E1")
    assert workspace_allowed("E1", None, "T5", "E1")  # an org id written as team_id
    assert workspace_allowed(None, None, "T5", None)


@pytest.fixture
def grid(sqlite_engine: Engine, stub: SlackStub) -> Iterator[tuple[Served, Service]]:
    config = configured(team_id=None, enterprise_id="E0LENDER")
    rt = make_runtime(
        sqlite_engine,
        FakeClock(),
        SlackNotifier(WebClient(token="xoxb-test", base_url=stub.api_url)),
        config=config,
    )
    service = Service(rt)
    bolt = build_app(
        service,
        bot_token="xoxb-test",
        signing_secret="test-signing-secret",
        api_base_url=stub.api_url,
    )
    server = Served(make_asgi(service, bolt))
    yield server, service
    rt.background.wait_idle(30)
    server.close()


def test_enterprise_id_is_enforced(grid: tuple[Served, Service], stub: SlackStub) -> None:
    server, service = grid

    def slash(enterprise: str) -> str:
        body = slash_body("/aiops", "status", "U0DAVE", "dave", stub.url + "/r/" + enterprise)
        return body + f"&enterprise_id={enterprise}"

    assert server.post(slash("E0LENDER")).status_code == 200
    stub.wait_for(lambda: bool(stub.responded("r/E0LENDER")))
    assert server.post(slash("E0OTHER")).status_code == 403
    click = json.loads(_payload(action_body("approve", "CHG-1", "U0BOB", "bob", stub.url + "/r/x")))
    click["enterprise"] = {"id": "E0OTHER"}
    from urllib.parse import urlencode

    assert server.post(urlencode({"payload": json.dumps(click)})).status_code == 403
    refused = [e for e in service.rt.store.audit(AuditQuery()) if e.action == "workspace_refused"]
    assert [e.parameters["enterprise_id"] for e in refused] == ["E0OTHER", "E0OTHER"]
    assert stub.responded("r/x") == []


def _payload(body: str) -> str:
    from urllib.parse import parse_qs

    return parse_qs(body)["payload"][0]


# --- injected mentions and links -------------------------------------------------------

INJECTION = "@channel <!everyone> <!here|here> <@U0MALLORY> <http://evil.example|click> <#C0SECRET>"
FORGED = ("<!everyone>", "<!here", "<!channel>", "<@U0MALLORY>", "<http://evil", "<#C0SECRET>")


def assert_inert(payload: Any) -> None:
    text = json.dumps(payload)
    for forged in FORGED:
        assert forged not in text, f"{forged} reached Slack: {text[:400]}"


def test_typed_text_cannot_ping_or_forge_links_anywhere(sqlite_engine: Engine) -> None:
    clock = FakeClock()
    bot = make_bot(sqlite_engine, clock)
    replies = [
        bot.run(ALICE, f"/deploy loan-assessor gemma-3-1b-it@1.2.1 reason='{INJECTION}'"),
        bot.run(CAROL, f"/aiops reject loan-assessor reason='{INJECTION}'"),
        bot.run(ALICE, f"/deploy loan-assessor {INJECTION}"),
        bot.run(ALICE, f"/deploy {INJECTION}"),
        bot.run(ALICE, f"/aiops {INJECTION}"),
        bot.run(ALICE, f"/aiops audit since={INJECTION.split()[1]}"),
        bot.run(ALICE, f"/aiops approve {INJECTION.split()[3]}"),
        bot.run(ALICE, f"/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary={INJECTION}"),
        bot.run(ALICE, f"/promote loan-assessor-stg to=<!channel> reason='{INJECTION}'"),
        bot.run(CAROL, f"/rollback loan-assessor reason='{INJECTION}'"),
        bot.run(ALICE, f"/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 reason='{INJECTION}'"),
        bot.run(ALICE, f"/rollback loan-assessor-stg reason='{INJECTION}'"),
        bot.run(ALICE, "/aiops audit since=1h"),
        bot.run(ALICE, "/aiops changes"),
        bot.run(ALICE, "/aiops status"),
    ]
    assert all(replies[i].ok for i in (0, 1, 11, 12, 13)), [r.text for r in replies]
    for reply in replies:
        assert_inert(render_message(reply))
    notifier = bot.rt.notifier
    assert isinstance(notifier, NullNotifier)
    assert len(notifier.posts) >= 8  # cards, their updates, threads, DMs
    for post in notifier.posts:
        assert_inert(render_message(post.reply))
    audit_text = text_of(bot.run(DAVE, "/aiops audit since=1h limit=200"))
    assert "&lt;!everyone&gt;" in audit_text  # shown, as text


def test_a_freeze_that_begins_before_a_scheduled_change_runs_stops_it(
    sqlite_engine: Engine,
) -> None:
    """Approved on Thursday for Friday 10:00; then the Friday freeze is configured (the
    bot restarted with it): at its time the change fails, clearly and audited, and the
    endpoint is untouched."""
    from bot.scheduler import Scheduler

    clock = FakeClock(datetime(2026, 11, 25, 23, 0, tzinfo=UTC))  # Thu 10:00 Sydney
    first = make_bot(sqlite_engine, clock)
    reply = first.run(ALICE, DEPLOY + ' at="2026-11-27 10:00"')
    assert reply.ok, reply.text
    change_id = open_id(first)
    assert first.run(BOB, f"/aiops approve {change_id}").ok  # Thursday: no freeze
    bot = make_bot(sqlite_engine, clock, frozen_config(WEEKLY))  # restarted with the freeze
    assert bot.change(change_id).state is ChangeState.APPROVED
    before = bot.split("loan-assessor")

    clock.advance(days=1, minutes=1)  # Fri 10:01 Sydney: in the freeze
    Scheduler(bot.rt, sqlite_engine, owner="x").fire("every:housekeeping", clock())
    bot.rt.background.wait_idle(30)
    change = bot.change(change_id)
    assert change.state is ChangeState.FAILED
    assert "change freeze `friday-close`" in (change.error or "")
    assert bot.split("loan-assessor") == before  # nothing ran
    runs = [
        e
        for e in bot.rt.store.audit(AuditQuery(change_id=change_id))
        if e.action == "scheduled_run"
    ]
    assert [e.outcome for e in runs] == ["failed"]
    assert "execution_started" not in actions(bot, change_id)


def test_a_change_scheduled_into_a_known_freeze_is_refused_when_requested(
    sqlite_engine: Engine,
) -> None:
    """Requested on Thursday for Friday 10:00, inside the configured Friday freeze: refused
    at once, naming the freeze and the time, not accepted to fail on Friday."""
    clock = FakeClock(datetime(2026, 11, 25, 23, 0, tzinfo=UTC))  # Thu 10:00 Sydney
    bot = make_bot(sqlite_engine, clock, frozen_config(WEEKLY))
    reply = bot.run(ALICE, DEPLOY + ' at="2026-11-27 10:00"')
    assert not reply.ok
    assert "will be, at 2026-11-27 10:00 AEDT, in the change freeze `friday-close`" in reply.text
    assert bot.rt.store.open_change("loan-assessor") is None
    assert bot.run(ALICE, DEPLOY + ' at="2026-11-27 18:00"').ok  # after it: fine


def test_a_rollback_that_cannot_be_planned_supersedes_nothing(bot: Bot) -> None:
    """Mitigation first only when there is something to mitigate: a rollback with nothing to
    roll back to is refused, and the pending change it would have superseded stays."""
    bot.run(ALICE, DEPLOY + ' at="2026-11-28 10:00"')
    pending = open_id(bot)
    reply = bot.run(CAROL, '/rollback loan-assessor reason="x"')
    assert not reply.ok and "roll back to" in reply.text
    assert bot.change(pending).state is ChangeState.PENDING_APPROVAL
    assert "cancel" not in actions(bot, pending)


def test_a_late_click_on_a_change_that_ran_is_told_who_decided_not_voided(bot: Bot) -> None:
    """A click that read the change while it was pending, and is checked after another
    approver's click ran it (the endpoint's traffic has moved), voids nothing: it hears
    that the change is already approved, and no `approval_void` row is written."""
    reply = bot.run(ALICE, '/deploy loan-assessor gemma-3-1b-it@1.2.1 reason="fix"')
    change_id = reply.text.split()[0]
    stale = bot.change(change_id)
    assert stale.state is ChangeState.PENDING_APPROVAL
    assert bot.run(BOB, f"/aiops approve {change_id}").ok
    assert bot.change(change_id).state is ChangeState.SUCCEEDED
    with pytest.raises(Refusal) as refused:
        check_approval(bot.rt, stale, CAROL)
    assert "already succeeded" in refused.value.message
    assert "approved by" in refused.value.message
    actions = [e.action for e in bot.rt.store.audit(AuditQuery(change_id=change_id))]
    assert AuditAction.APPROVAL_VOID not in actions
    assert bot.change(change_id).state is ChangeState.SUCCEEDED
