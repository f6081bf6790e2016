"""Property-based tests: whatever people type, the bot answers — a clear refusal, never a
crash — and whatever text reaches a renderer, Slack gets blocks within its limits that
cannot ping anyone or carry a forged link."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.cli.console import TextRenderer
from bot.slack.blocks import render_message
from commands.changes.card import change_card
from commands.messages import Reply
from commands.model import Change, ChangeKind, ChangePlan, ChangeState, Invocation
from commands.ports import ApprovalRecord, AuditEvent
from commands.reports.audit import audit_reply
from commands.reports.changes import changes_reply
from commands.reports.help import help_reply
from tests.support.harness import ALICE, BOB, Bot, example_config

FORGED = ("<!everyone>", "<!here", "<!channel>", "<@U0MALLORY>", "<http://evil", "<#C0SECRET>")
FRAGMENTS = [
    "loan-assessor",
    "loan-assessor-stg",
    "gemma-3-1b-it@1.2.1",
    "gemma-3-1b-it@9.9.9",
    "other@1.0.0",
    "canary=",
    "canary=10",
    "canary=101",
    "to=50",
    "to=x",
    "reason=",
    'reason="',
    "reason='fix'",
    "ticket=CHG-1",
    "ticket=",
    "break_glass=true",
    "break_glass=maybe",
    "since=24h",
    "since=",
    "limit=0",
    "limit=abc",
    "change=CHG-1",
    "CHG-1",
    "CHG-",
    "help",
    "status",
    "changes",
    "audit",
    "approve",
    "reject",
    "cancel",
    "=",
    "==",
    "“quoted”",
    "\\",
    *FORGED,
    "<@U0MALLORY|mallory>",
    "<http://evil.example|click>",
    "@channel",
    "&lt;",
    "\u202e",
    "\x00",
    "x" * 300,
]
COMMANDS = ["/deploy", "/promote", "/rollback", "/aiops", "/AIOPS", "/unknown", ""]

words = st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12))
command_text = st.lists(words, max_size=7).map(" ".join)
typed = st.one_of(st.text(max_size=200), command_text)


def check_rendered(reply: Reply) -> None:
    message = render_message(reply)
    assert message["text"], "a reply always has text"
    blocks = message["blocks"]
    assert len(blocks) <= 50
    for block in blocks:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        for field in block.get("fields", []):
            assert len(field["text"]) <= 2000
    payload = json.dumps(message)
    for forged in FORGED:
        assert forged not in payload, f"{forged} reached Slack"


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(command=st.sampled_from(COMMANDS), text=typed, who=st.sampled_from([ALICE, BOB]))
def test_no_input_crashes_the_bot(bot: Bot, command: str, text: str, who: Any) -> None:
    reply = bot.service.handle(Invocation(who, command, text, channel_id="C0TEST"))
    bot.rt.background.wait_idle(30)
    assert isinstance(reply, Reply)
    if not reply.ok:
        assert reply.text.strip(), "a refusal says what was wrong"
        assert "something went wrong" not in reply.text, f"{command} {text!r} crashed the bot"
    check_rendered(reply)
    TextRenderer(bot.rt.config).reply(reply)  # the console renders it too


NOW = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


def a_change(reason: str, version: str, error: str, ticket: str) -> Change:
    return Change(
        id="CHG-7",
        kind=ChangeKind.DEPLOY,
        endpoint="loan-assessor",
        environment="prod",
        requester_id="U0ALICE",
        state=ChangeState.FAILED,
        created_at=NOW,
        reason=reason,
        version=version,
        canary_percent=10,
        split_before={"1": 100},
        split_after={"1": 90, "0": 10},
        restore_split={"1": 100},
        decided_by="U0BOB",
        decided_at=NOW,
        error=error,
        plan=ChangePlan(ticket=ticket, health="P95 758 ms", labels={"1": version.split("@")[-1]}),
    )


# A version reaches a change only through `ModelVersion.parse`; the rest is typed freely.
versions = st.from_regex(
    r"\A[a-z0-9][a-z0-9._-]{0,20}@\d{1,3}\.\d{1,3}\.\d{1,3}(-[0-9A-Za-z.-]{1,8})?\Z"
)


@settings(max_examples=60, deadline=None)
@given(a=typed, b=versions, c=typed, d=typed)
def test_every_renderer_keeps_typed_text_inert(a: str, b: str, c: str, d: str) -> None:
    config = example_config()
    change = a_change(a, b, c, d)
    approvals = [ApprovalRecord("CHG-7", "U0BOB", "reject", NOW, reason=d)]
    event = AuditEvent(
        action="command",  # actions are the bot's own words
        actor_id="U0ALICE",
        outcome=a + b,
        at=NOW,
        target="loan-assessor",
        justification=c,
        change_id="CHG-7",
    )
    for reply in (
        change_card(change, config, approvals=approvals, buttons=True),
        changes_reply([change], config),
        audit_reply([event] * 3, config, "loan-assessor"),
        help_reply(a),
    ):
        check_rendered(reply)
        TextRenderer(config).reply(reply)
