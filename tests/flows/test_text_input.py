"""Typed text: decoded once where it enters, checked and masked before anything reads it,
escaped once where it leaves, and never unmasked at any exit (replies, cards, threads,
audit rows, stored columns, logs, exports, dossiers) — on SQLite and on PostgreSQL."""

from __future__ import annotations

import io
import json
import logging
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk import WebClient
from sqlalchemy import Engine, MetaData, select

from bot.logs import JsonFormatter
from bot.slack.app import build_app
from bot.slack.blocks import render_message
from bot.slack.notifier import SlackNotifier
from commands.errors import Refusal
from commands.messages import Reply, Text, escape, unescape
from commands.model import ChangePlan, Invocation
from commands.parsing import ParseError, parse
from commands.ports import AuditQuery
from commands.redaction import RedactingFilter
from commands.reports import dossier
from commands.runtime import NullNotifier
from commands.service import Service
from commands.text import MAX_TEXT, check, cut, from_slack, visible
from tests.support.harness import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    Bot,
    FakeClock,
    SlackStub,
    make_runtime,
    text_of,
)
from tests.support.slack_wire import Served, slash_body

# ------------------------------------------------------------------------ decoding


@pytest.mark.parametrize(
    ("sent", "typed"),
    [
        ("p95 &lt; 2s &amp; errors ok", "p95 < 2s & errors ok"),
        ("&amp;lt; is how you write &lt;", "&lt; is how you write <"),  # exactly once
        ("&amp;amp;", "&amp;"),
        ("ask <@U0BOB|bob>", "ask @bob"),
        ("ask <@U0BOB>", "ask @U0BOB"),
        ("in <#C0OPS|ops>", "in #ops"),
        ("in <#C0OPS>", "in #C0OPS"),
        ("<!here> look", "@here look"),
        ("<!channel> <!everyone> <!here|here>", "@channel @everyone @here"),
        ("<!subteam^S0ONCALL|@oncall>", "@oncall"),
        ("<!date^1392734382^{date_short}|Feb 18, 2014>", "Feb 18, 2014"),
        ("see <https://runbook.example/lat|the runbook>", "see the runbook (https://runbook.example/lat)"),
        ("<https://runbook.example/a?x=1&amp;y=2>", "https://runbook.example/a?x=1&y=2"),
        ("<http://example.com|example.com>", "example.com"),
        ("<mailto:a@example.com|a@example.com>", "a@example.com"),
        ("<https://x.example|a &amp; b>", "a & b (https://x.example)"),
        ("no markup at all", "no markup at all"),
    ],
)  # fmt: skip
def test_slack_encoding_is_undone_exactly_once(sent: str, typed: str) -> None:
    assert from_slack(sent) == typed


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_decoding_what_slack_encodes_gives_back_what_was_typed(typed: str) -> None:
    assert from_slack(escape(typed)) == typed
    assert unescape(escape(typed)) == typed


# ----------------------------------------------------------------- refused characters


@pytest.mark.parametrize(
    ("char", "code"),
    [
        ("\x00", "control_character"),
        ("\x1b", "control_character"),
        ("\r", "control_character"),
        ("\x7f", "control_character"),
        ("\x85", "control_character"),  # C1: next line
        ("\x9b", "control_character"),  # C1: control sequence introducer
        ("\u202e", "bidi_character"),  # right-to-left override
        ("\u2066", "bidi_character"),  # left-to-right isolate
        ("\u200f", "bidi_character"),  # right-to-left mark
    ],
)
def test_control_and_bidi_characters_are_refused(char: str, code: str) -> None:
    with pytest.raises(Refusal) as refused:
        check(f"reason=ab{char}cd")
    assert refused.value.code == code
    assert f"U+{ord(char):04X}" in refused.value.message
    assert "at character 10" in refused.value.message


def test_tab_newline_and_unicode_text_pass() -> None:
    check('reason="line one\nline two\twith a tab, Nguyễn, 東京, emoji 🚀"')


def test_length_is_stated_and_enforced_first() -> None:
    check("x" * MAX_TEXT)
    with pytest.raises(Refusal) as refused:
        check('reason="' + "x" * MAX_TEXT + "\x00")  # too long wins over the NUL
    assert refused.value.code == "too_long"
    assert f"{MAX_TEXT:,}" in refused.value.message


def test_visible_makes_invisible_characters_visible() -> None:
    assert visible("a\x00b\u202ec\td\n") == "a[U+0000]b[U+202E]c\td\n"


# ------------------------------------------------------------------------------ cuts

UNITS = ["word ", "&amp;", "&lt;", "&gt;", "<@U0ALICE>", "<!here>", "<#C0OPS|ops>",
         "<https://runbook.example/x|a label>", "é", "e\u0301", " "]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(UNITS), min_size=1, max_size=40), st.integers(1, 400))
def test_a_cut_never_splits_an_entity_a_mention_or_a_link(parts: list[str], limit: int) -> None:
    whole = "".join(parts)
    out = cut(whole, limit)
    assert len(out) <= limit
    if out == whole:
        return
    body = out.removesuffix("…")
    assert whole.startswith(body)
    rest = re.sub(r"&(?:amp|lt|gt);|<[^<>]*>", "", body)
    assert "<" not in rest and ">" not in rest and "&" not in rest, body
    assert not whole[len(body) :].startswith("\u0301"), "a combining mark left behind"


def test_slack_blocks_are_cut_on_a_safe_boundary() -> None:
    long = "x" * 2993 + " <@U0BOB> &amp; more"
    message = render_message(Reply(text=long, blocks=[Text(long)]))
    section = message["blocks"][0]["text"]["text"]
    assert len(section) <= 3000 and section.endswith("x …")
    assert "<@U0B" not in section


def test_a_long_typed_reason_in_the_audit_view_is_cut_between_entities() -> None:
    from datetime import UTC, datetime

    from commands.ports import AuditEvent
    from commands.reports.audit import audit_reply
    from tests.support.harness import example_config

    at = datetime(2026, 11, 27, tzinfo=UTC)
    for pad in range(5):  # move the cut across every position of an entity
        why = "x" * pad + "a & b <c> " * 400
        event = AuditEvent("command", "U0ALICE", "ok", at, justification=why)
        blocks = render_message(audit_reply([event], example_config(), "all"))["blocks"]
        for block in blocks[1:]:
            body = block["text"]["text"]
            assert len(body) <= 3000
            rest = re.sub(r"&(?:amp|lt|gt);|<@U0ALICE>", "", body)
            assert "&" not in rest and "<" not in rest, body[-20:]


# ---------------------------------------------------------------------------- parsing


def test_an_apostrophe_in_an_unquoted_value_is_a_character(bot: Bot) -> None:
    reply = bot.run(ALICE, "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 reason=can't")
    assert reply.ok, text_of(reply)
    assert bot.rt.store.list_changes(limit=1)[0].reason == "can't"
    args = parse("x reason=O'Brien's ticket=CHG-1", {"reason", "ticket"}, 1)
    assert args.options == {"reason": "O'Brien's", "ticket": "CHG-1"}
    assert parse("reason='it's fine'", {"reason"}, 0).options["reason"] == "it's fine"


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("reason=can't deploy today", '`reason="can\'t deploy today"`'),
        ('reason="unclosed', 'the `"` that opens `reason="unclosed` is never closed'),
        ("reason='90s kit", 'quote it with `"`'),
    ],
)
def test_a_lone_quote_or_spaces_get_a_message_that_says_how_to_write_it(
    typed: str, says: str
) -> None:
    with pytest.raises(ParseError) as error:
        parse(typed, {"reason"}, 0)
    assert says in unescape(str(error.value))
    assert "close every quote" not in str(error.value)


# ------------------------------------------------------------------ over Slack (Bolt)


def slash(server: Served, stub: SlackStub, command: str, sent: str, n: int) -> dict[str, Any]:
    """`sent` is the text as Slack sends it (encoded); returns the answer."""
    path = f"/respond/{n}"
    assert (
        server.post(slash_body(command, sent, "U0ALICE", "alice", stub.url + path)).status_code
        == 200
    )
    stub.wait_for(lambda: bool(stub.responded(path)))
    return stub.responded(path)[0]


def test_a_reason_with_lt_and_amp_is_stored_once_decoded_and_shown_once_escaped(
    served: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = served
    sent = 'loan-assessor gemma-3-1b-it@1.2.1 reason="p95 &lt; 2s &amp; errors ok"'
    answer = slash(server, stub, "/deploy", sent, 1)
    assert "waiting for approval" in answer["text"]
    change = service.rt.store.list_changes(limit=1)[0]
    assert change.reason == "p95 < 2s & errors ok"
    card = next(c.body for c in stub.of("chat.postMessage") if c.body["channel"] == "C0APPROVALS")
    shown = json.dumps(card["blocks"])
    assert "p95 &lt; 2s &amp; errors ok" in shown
    assert "&amp;lt;" not in shown and "&amp;amp;" not in shown
    plan = [
        e for e in service.rt.store.audit(AuditQuery(change_id=change.id)) if e.action == "plan"
    ]
    assert plan[0].justification == "p95 < 2s & errors ok"
    audit = json.dumps(slash(server, stub, "/aiops", f"audit change={change.id}", 2))
    assert "p95 &lt; 2s &amp; errors ok" in audit and "&amp;lt;" not in audit


def test_audit_change_here_is_echoed_as_text_never_as_a_ping(
    served: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = served
    mention = json.dumps(slash(server, stub, "/aiops", "audit change=<!here>", 1))
    assert "<!here" not in mention and "@here" in mention
    typed = json.dumps(slash(server, stub, "/aiops", "audit change=&lt;!here&gt;", 2))
    assert "<!here" not in typed and "&lt;!here&gt;" in typed  # shown as typed, inert
    rows = service.rt.store.audit(AuditQuery())
    assert [r.parameters["text"] for r in rows] == ["audit change=@here", "audit change=<!here>"]


def test_mentions_and_links_arrive_as_plain_readable_text(
    served: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = served
    sent = (
        'loan-assessor-stg gemma-3-1b-it@1.2.1 reason="ask <@U0BOB|bob> in <#C0OPS|ops>, see'
        ' <https://runbook.example/lat|the runbook> &amp; <!subteam^S0ONCALL|@oncall>"'
    )
    answer = slash(server, stub, "/deploy", sent, 1)
    assert "running" in answer["text"], answer
    change = service.rt.store.list_changes(limit=1)[0]
    assert change.reason == (
        "ask @bob in #ops, see the runbook (https://runbook.example/lat) & @oncall"
    )
    everything = json.dumps([c.body for c in stub.calls])
    for live in ("<@U0BOB", "<#C0OPS", "<https://runbook", "<!subteam"):
        assert live not in everything


def test_a_nul_over_slack_is_refused_clearly_and_audited(
    served: tuple[Served, Service], stub: SlackStub
) -> None:
    server, service = served
    answer = slash(
        server, stub, "/deploy", 'loan-assessor-stg gemma-3-1b-it@1.2.1 reason="a\x00b"', 1
    )
    assert "control character (U+0000 NUL)" in answer["text"]
    assert "something went wrong" not in json.dumps(answer)
    (row,) = service.rt.store.audit(AuditQuery())
    assert row.parameters["code"] == "control_character"
    assert "[U+0000]" in row.parameters["text"] and "\x00" not in json.dumps(row.parameters)
    assert service.rt.store.list_changes() == []


# ------------------------------------------- refusals of PII-bearing text, every exit

PII = {
    "dob": ("DOB 04/06/1980", ["04/06/1980"]),
    "address": ("12 Example St Sydney NSW 2000", ["Example St", "NSW 2000"]),
    "name": ("customer Jane Citizen", ["Jane Citizen", "Citizen"]),
    "email": ("jane.citizen@example.com", ["jane.citizen@example.com", "@example.com"]),
    "phone": ("mobile 0412 345 678", ["0412 345 678", "345 678"]),
    "tfn": ("TFN 123 456 782", ["123 456 782", "456 782"]),
}
DEPLOY_STG = "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1"
TEMPLATES = [
    # quoted, in commands that succeed: the reason columns and the cards
    (ALICE, '/deploy loan-assessor gemma-3-1b-it@1.2.1 reason="{p}"'),
    # refused by policy, with the text quoted or not
    (CAROL, '/deploy loan-assessor gemma-3-1b-it@1.1.0 reason="{p}"'),  # locked
    (DAVE, DEPLOY_STG + ' reason="{p}"'),  # may not request
    (ALICE, '/aiops reject {pending} reason="{p}"'),  # own change
    (BOB, '/aiops approve loan-assessor reason="{p}"'),  # approve takes no reason
    (ALICE, '/promote loan-assessor-stg force=true reason="{p}"'),  # no canary
    (ALICE, '/aiops canary-promote loan-assessor reason="{p}"'),
    (CAROL, '/aiops reject loan-assessor reason="{p}"'),  # shows the plan only
    (CAROL, '/aiops reject {pending} reason="{p}"'),
    (ALICE, '/deploy loan-assessor gemma-3-1b-it@1.2.1 reason="{p}"'),
    (ALICE, '/aiops cancel loan-assessor reason="{p}"'),
    # unquoted
    (ALICE, DEPLOY_STG + " reason={p}"),
    (BOB, "/aiops reject CHG-1 reason={p}"),
    (ALICE, "/aiops pause loan-assessor-stg reason={p}"),
    # after any option
    (ALICE, DEPLOY_STG + " canary=10 {p}"),
    (ALICE, DEPLOY_STG + " ticket={p}"),
    (ALICE, DEPLOY_STG + ' at="{p}"'),
    (ALICE, DEPLOY_STG + " break_glass={p}"),
    (ALICE, DEPLOY_STG + " canary={p}"),
    (ALICE, "/promote loan-assessor-stg to={p}"),
    (ALICE, "/promote loan-assessor-stg steps={p}"),
    (ALICE, "/aiops audit since={p}"),
    (ALICE, "/aiops audit change={p}"),
    (ALICE, "/aiops changes limit={p}"),
    (ALICE, "/aiops status {p}=1"),
    # as a positional
    (ALICE, "/deploy {p}"),
    (ALICE, "/deploy loan-assessor-stg {p}"),
    (ALICE, "/rollback {p}"),
    (ALICE, "/aiops approve {p}"),
    (ALICE, "/aiops {p}"),
    (ALICE, "/aiops help {p}"),
    (ALICE, "/aiops digest {p}"),
    (ALICE, "/aiops canary {p}"),
    (ALICE, "/aiops status {p}"),
    # an unclosed quote, a control character, too long
    (ALICE, DEPLOY_STG + ' reason="{p}'),
    (ALICE, DEPLOY_STG + " reason='{p}"),
    (ALICE, '/aiops audit change="{p}\x00"'),
    (ALICE, DEPLOY_STG + ' reason="{p} \u202e"'),
    (ALICE, DEPLOY_STG + ' reason="{p} ' + "x" * MAX_TEXT + '"'),
]


def _database_text(engine: Engine) -> str:
    """Every row of every table the bot writes, as text (the job store's pickles aside)."""
    out = []
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        for name, table in meta.tables.items():
            if name in ("alembic_version", "apscheduler_jobs"):
                continue
            out += [f"{name}: {tuple(row)!r}" for row in conn.execute(select(table))]
    return "\n".join(out)


def test_no_secret_survives_any_refusal_or_any_exit(engine: Engine) -> None:
    clock = FakeClock()
    notifier = NullNotifier()
    bot = Bot(make_runtime(engine, clock, notifier), clock)
    logs = io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter(drop_exc_info=False))  # as bot/logs.py installs it
    root = logging.getLogger()
    root.addHandler(handler)
    seen: list[str] = []
    passed: list[str] = []
    try:
        for pii, _ in PII.values():
            for who, template in TEMPLATES:
                held = bot.rt.store.open_change("loan-assessor")
                line = template.format(p=pii, pending=held.id if held else "CHG-0")
                reply = bot.run(who, line)
                if reply.ok:
                    passed.append(line)
                assert "something went wrong" not in reply.text, (template, pii, reply.text)
                seen.append(text_of(reply))
    finally:
        root.removeHandler(handler)
    # refused, but for the four meant to succeed, the plan an endpoint's reject shows,
    # and a few where masking made one word of the secret (`reason=[ADDRESS:…]` is a
    # valid value; a canary it deployed can be promoted): the refusal paths were driven
    assert len(passed) <= 7 * len(PII), "\n".join(passed)
    seen += [json.dumps(render_message(p.reply)) for p in notifier.posts]
    assert len(notifier.posts) >= 2 * len(PII)  # approval cards and their updates
    changes = bot.rt.store.list_changes(limit=100)
    for change in changes:
        d = dossier.build(bot.rt.store, bot.rt.config, change.id)
        seen += [dossier.to_markdown(d), dossier.to_json(d)]
    seen.append(logs.getvalue())
    database = _database_text(engine)
    seen.append(database)
    everything = "\n".join(seen)
    for _, secrets in PII.values():
        for secret in secrets:
            where = [s[:300] for s in seen if secret in s]
            assert not where, f"{secret!r} survived in: {where[:3]}"
    assert "\x00" not in everything and "\u202e" not in everything
    # the stored reasons hold the masks, and every refusal was audited
    reasons = {c.reason for c in changes if c.reason}
    assert {r.split("[")[1].split(":")[0] for r in reasons} >= {"DOB", "ADDRESS", "NAME"}
    approvals = [a for c in changes for a in bot.rt.store.approvals(c.id)]
    assert approvals and all("[" in (a.reason or "[") for a in approvals)
    commands = [e for e in bot.rt.store.audit(AuditQuery()) if e.action == "command"]
    assert len(commands) == len(PII) * len(TEMPLATES)


@pytest.mark.parametrize("char", ["\x00", "\x1b[31m", "\u202e", "\x85"])
def test_invisible_characters_are_refused_and_audited_on_every_store(
    engine: Engine, char: str
) -> None:
    clock = FakeClock()
    bot = Bot(make_runtime(engine, clock), clock)
    reply = bot.run(ALICE, f'{DEPLOY_STG} reason="fix {char} tokenizer"')
    assert not reply.ok
    assert "something went wrong" not in reply.text
    assert "character" in reply.text and f"U+{ord(char[0]):04X}" in reply.text
    (row,) = bot.rt.store.audit(AuditQuery())
    assert row.outcome.startswith("refused: ")
    assert f"[U+{ord(char[0]):04X}]" in row.parameters["text"]
    assert bot.rt.store.list_changes() == []
    assert char[0] not in _database_text(engine)


def test_the_console_echo_and_notes_are_masked(sqlite_engine: Engine, tmp_path: Any) -> None:
    from bot.cli.console import Console
    from bot.settings import Settings

    out = io.StringIO()
    console = Console(Settings(data_dir=tmp_path), "alice", out=out)
    console.run_line("as customer Jane Citizen")
    console.run_line('/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 reason="DOB 04/06/1980"')
    console.run_line("/aiops audit change=<!here>\x00")
    console.rt.background.wait_idle(30)
    shown = out.getvalue()
    for secret in ("Jane Citizen", "04/06/1980", "\x00"):
        assert secret not in shown
    assert "[NAME:" in shown and "[DOB:" in shown and "U+0000" in shown


def test_a_huge_text_is_refused_unread_and_its_audit_copy_is_bounded(bot: Bot) -> None:
    from commands.text import STORED_MAX

    huge = 'DOB 04/06/1980 reason="' + "&lt;x " * 20_000
    inv = Invocation(ALICE, "/deploy", from_slack(huge), channel_id="C0TEST")
    assert inv.text == huge  # far over the limit: not even decoded
    reply = bot.service.handle(inv)
    assert not reply.ok and f"{len(huge):,} characters long" in reply.text
    (row,) = bot.rt.store.audit(AuditQuery())
    stored = row.parameters["text"]
    assert len(stored) < STORED_MAX + 40 and stored.endswith("more characters]")
    assert stored.startswith("DOB [DOB:")


def test_a_refused_invocation_is_audited_with_its_text_masked(bot: Bot) -> None:
    inv = Invocation(ALICE, "/deploy", "DOB 04/06/1980 \x00", channel_id="C0TEST")
    assert not bot.service.handle(inv).ok
    (row,) = bot.rt.store.audit(AuditQuery())
    assert row.parameters["text"].startswith("DOB [DOB:") and "[U+0000]" in row.parameters["text"]


# ------------------------------------------------------------- the examples that were reported


def test_an_unquoted_date_of_birth_after_reason_is_quoted_only_masked(bot: Bot) -> None:
    reply = bot.run(ALICE, DEPLOY_STG + " reason=DOB 04/06/1980")
    assert not reply.ok
    token = re.search(r"\[DOB:[0-9a-f]{8}\]", reply.text)
    assert token, reply.text
    assert reply.text == (
        f"`{token[0]}` comes after an option, `reason=DOB`: a value with spaces needs"
        f' quotes, e.g. `reason="DOB {token[0]}"`'
    )
    (row,) = bot.rt.store.audit(AuditQuery())
    assert row.outcome == f"refused: {reply.text}"
    assert row.parameters["text"] == f"loan-assessor-stg gemma-3-1b-it@1.2.1 reason=DOB {token[0]}"
    assert "04/06/1980" not in text_of(reply) + json.dumps(row.parameters)


def test_the_store_masks_free_text_whoever_writes_it(engine: Engine) -> None:
    """The store's own write path: a reason, an error and an approval's reason written
    directly (not through a command) are stored masked, with invisible characters visible."""
    from datetime import UTC, datetime

    from bot.store.sql_store import SqlStore
    from commands.model import Change, ChangeKind, ChangeState
    from commands.ports import ApprovalRecord

    store = SqlStore(engine)
    now = datetime(2026, 11, 27, tzinfo=UTC)
    change = store.create_change(
        Change(
            id="",
            kind=ChangeKind.DEPLOY,
            endpoint="loan-assessor",
            environment="prod",
            requester_id="U0ALICE",
            state=ChangeState.REQUESTED,
            created_at=now,
            reason="customer Jane Citizen of 12 Example St Sydney NSW 2000\x00",
            version="gemma-3-1b-it@1.2.1",
            plan=ChangePlan(ticket="DOB 04/06/1980", labels={"4111111111111111": "1.2.0"}),
        )
    )
    store.transition(change.id, ChangeState.REQUESTED, ChangeState.PENDING_APPROVAL)
    store.decide(
        ApprovalRecord(change.id, "U0BOB", "reject", now, "TFN 123 456 782"),
        ChangeState.REJECTED,
        1,
        error="mobile 0412 345 678",
    )
    stored = store.get_change(change.id)
    assert stored is not None and stored.reason is not None
    assert re.fullmatch(r"customer \[NAME:\w{8}\] of \[ADDRESS:\w{8}\]\[U\+0000\]", stored.reason)
    assert stored.error is not None and stored.error.startswith("mobile [PHONE:")
    assert stored.plan.labels == {"4111111111111111": "1.2.0"}  # ids round-trip exactly
    assert stored.plan.ticket is not None and stored.plan.ticket.startswith("DOB [DOB:")
    (approval,) = store.approvals(change.id)
    assert approval.reason is not None and approval.reason.startswith("TFN [TFN:")
    database = _database_text(engine)
    for secret in ("Jane", "Example St", "04/06/1980", "123 456 782", "0412 345 678", "\x00"):
        assert secret not in database


def test_the_end_of_day_digest_shows_a_typed_reason_escaped_once_and_masked(
    bot: Bot,
) -> None:
    reason = "p95 < 2s & <!here> for customer Jane Citizen"
    assert bot.run(ALICE, f'/deploy loan-assessor gemma-3-1b-it@1.2.1 reason="{reason}"').ok
    assert bot.run(ALICE, "/aiops digest eod prod").ok
    notifier = bot.rt.notifier
    assert isinstance(notifier, NullNotifier)
    digest = json.dumps(render_message(notifier.posts[-1].reply))
    assert "End-of-day digest" in digest
    assert "p95 &lt; 2s &amp; &lt;!here&gt; for customer [NAME:" in digest
    assert "<!here" not in digest and "&amp;lt;" not in digest and "Jane" not in digest


def test_socket_mode_text_is_decoded_once_like_http(sqlite_engine: Engine) -> None:
    import asyncio
    import threading

    from bot.serve.server import socket_mode_handler
    from tests.edge.test_socket_mode import FakeSocketSlack

    fake = FakeSocketSlack()
    stub = SlackStub()
    stub.answers["apps.connections.open"] = {"ok": True, "url": fake.url}
    rt = make_runtime(
        sqlite_engine, FakeClock(), SlackNotifier(WebClient(token="x", base_url=stub.api_url))
    )
    bolt = build_app(Service(rt), bot_token="x", signing_secret="unused", api_base_url=stub.api_url)
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()

    async def make() -> Any:
        return socket_mode_handler(bolt, "xapp-test")

    handler = asyncio.run_coroutine_threadsafe(make(), loop).result(5)
    try:
        asyncio.run_coroutine_threadsafe(handler.connect_async(), loop).result(15)
        assert fake.connected.wait(10)
        payload = {"team_id": "T0AIOPS", "channel_id": "C0OPS"}
        payload |= {
            "user_id": "U0ALICE",
            "user_name": "alice",
            "command": "/deploy",
            "text": 'loan-assessor-stg gemma-3-1b-it@1.2.1 reason="p95 &lt; 2s &amp; <@U0BOB|bob>"',
            "response_url": stub.url + "/respond/sm",
            "trigger_id": "1.trigger",
        }
        fake.send({"envelope_id": "e1", "type": "slash_commands", "payload": payload})
        stub.wait_for(lambda: bool(stub.responded("respond/sm")))
        rt.background.wait_idle()
        assert rt.store.list_changes(limit=1)[0].reason == "p95 < 2s & @bob"
    finally:
        asyncio.run_coroutine_threadsafe(handler.close_async(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        stub.close()
        fake.close()


def test_bench_redaction_prints_recall_false_positives_and_throughput(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench import bench_redaction

    assert bench_redaction.main(["--seconds", "0.01"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["quality"]["ADDRESS"]["recall"] == 1.0
    assert result["quality"]["NAME"]["recall"] == 1.0
    assert result["quality"]["operational"]["false_positives"] == 0
    assert result["results"]["generated"]["lines_per_s"] > 0
    assert "false positives" in out


def _written(event: Any) -> dict[str, Any]:
    """An audit row's fields as written, without its chain hashes: hex digits that would
    now and then spell `4111` (the masked tokens' key, hence the hashes, differ per run)."""
    return {k: v for k, v in event.__dict__.items() if k not in ("hash", "prev_hash")}


@pytest.mark.parametrize(
    "mark", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e"]
)
def test_an_invisible_character_that_would_split_pii_is_refused_and_nothing_leaks(
    bot: Bot, mark: str
) -> None:
    text = (
        f'loan-assessor-stg gemma-3-1b-it@1.2.1 reason="card 4111{mark} 1111 1111 1111'
        f' mail jane{mark}@example.com"'
    )
    reply = bot.service.handle(Invocation(ALICE, "/deploy", text, channel_id="C0TEST"))
    assert not reply.ok and "invisible character" in reply.text
    assert bot.rt.store.list_changes() == []
    rows = json.dumps([_written(e) for e in bot.rt.store.audit(AuditQuery())], default=str)
    assert "4111" not in rows and "jane" not in rows


def test_fullwidth_digits_and_at_sign_are_masked_as_their_plain_forms(bot: Bot) -> None:
    text = (
        'loan-assessor-stg gemma-3-1b-it@1.2.1 reason="card ４１１１ １１１１ １１１１ １１１１'
        ' mail jane＠example.com"'
    )
    reply = bot.service.handle(Invocation(ALICE, "/deploy", text, channel_id="C0TEST"))
    assert reply.ok, reply.text
    change = bot.rt.store.list_changes()[0]
    assert "[CARD:" in (change.reason or "") and "[EMAIL:" in (change.reason or "")
    rows = json.dumps([_written(e) for e in bot.rt.store.audit(AuditQuery())], default=str)
    assert "１１１１" not in rows and "1111 1111" not in rows and "jane" not in rows
