"""`aiops-bot incident review INC-N`: the post-incident review draft of an incident run from
its alert to its resolution through the `Bot.run` harness on a SQLite file, read back by
the CLI as `aiops-bot audit dossier` reads a change: every event traceable to an audit
row, the chain verified, PII masked, an unknown id refused with the closest ones; and the
same draft posted in the incident's thread by `/aiops incident review`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from bot.cli import main as cli
from bot.store.db import make_engine, upgrade
from commands.incidents.alerts import receive_alert
from commands.incidents.model import AlertNotice, AlertSource, AlertState
from commands.ports import AuditQuery
from commands.runtime import NullNotifier
from tests.support.harness import ALICE, BOB, Bot, FakeClock, make_runtime, text_of

EMAIL = "jane.citizen@example.com"


def life(bot: Bot) -> None:
    """An alert fires, is declared, acknowledged, mitigated by a linked rollback of the
    canary it was about, and resolved with its root cause."""
    rt, clock = bot.rt, bot.clock
    assert bot.run(ALICE, '/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=10 reason="fix"').ok
    clock.advance(minutes=20)
    receive_alert(
        rt,
        AlertNotice(
            key="cloud-monitoring:0.cli",
            source=AlertSource.CLOUD_MONITORING,
            state=AlertState.OPEN,
            policy="[staging] loan-assessor-stg: error rate > 1 %",
            condition="error rate > 1%",
            started_at=clock() - timedelta(minutes=3),
            endpoint="loan-assessor-stg",
            environment="staging",
            summary="error rate 2.1% on loan-assessor-stg",
            observed="error rate 2.10% > 1%",
        ),
    )
    clock.advance(minutes=2)
    steps = [
        (
            ALICE,
            '/aiops incident declare loan-assessor-stg sev=P3 summary="canary errors"'
            " alert=ALERT-1",
        ),
        (BOB, "/aiops incident ack INC-1"),
        (BOB, "/aiops incident rollback INC-1"),
        (BOB, "/aiops incident mitigated INC-1"),
        (BOB, f'/aiops incident resolve INC-1 cause="tokenizer bug reported by {EMAIL}"'),
    ]
    for actor, line in steps:
        clock.advance(minutes=3)
        reply = bot.run(actor, line)
        assert reply.ok, text_of(reply)


@pytest.fixture
def lived(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Bot, Engine]]:
    monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("AIOPS_CONFIG", raising=False)
    engine = make_engine(f"sqlite:///{tmp_path / 'aiops-bot.db'}")
    upgrade(engine)
    clock = FakeClock()
    bot = Bot(make_runtime(engine, clock), clock)
    life(bot)
    yield bot, engine
    bot.rt.background.wait_idle()
    engine.dispose()


def test_the_cli_prints_the_review_with_every_event_traceable(
    lived: tuple[Bot, Engine], capsys: pytest.CaptureFixture[str]
) -> None:
    bot, _ = lived
    assert cli.main(["incident", "review", "INC-1", "--format", "json", "--full"]) == 0
    out = capsys.readouterr().out
    review: dict[str, Any] = json.loads(out)
    assert review["incident"] == "INC-1" and review["state"] == "resolved"
    assert review["chain"]["ok"] is True
    kinds = [e["kind"] for e in review["timeline"]]
    for kind in ("alert_fired", "declared", "acknowledged", "mitigation", "mitigated", "resolved"):
        assert kind in kinds, kinds
    rows = {e.id: e for e in bot.rt.store.audit(AuditQuery(limit=5000))}
    for event in review["timeline"]:  # every event is an audit row that says the same
        row = rows[event["row"]]
        assert row.change_id == event["change"] or event["change"] is None
    assert set(review["audit_rows"]) <= set(rows)
    [rollback] = [c for c in review["changes"] if c["kind"] == "rollback"]
    assert rollback["role"] == "linked" and rollback["dossier"].startswith("aiops-bot audit")
    times = review["times"]
    # detected (the alert reached Slack) → acknowledged: 2 min, then declared 3 min later,
    # acknowledged 3 min after that
    assert times["time_to_acknowledge"]["seconds"] == 8 * 60
    assert times["time_to_resolve"]["seconds"] > times["time_to_mitigate"]["seconds"] > 0
    assert EMAIL not in out and "tokenizer bug reported by" in review["root_cause"]
    assert review["action_items"]  # no runbook for this policy or endpoint: asked for

    assert cli.main(["incident", "review", "inc-1"]) == 0  # md, any case
    md = capsys.readouterr().out
    assert md.startswith("# Post-incident review (draft): INC-1")
    for section in (
        "## Timeline",
        "## Response times",
        "## Changes involved",
        "## Root cause",
        "## Contributing factors",
        "## Action items",
        "## Audit rows read",
    ):
        assert section in md
    assert "| time | event | by | audit row |" in md
    [chain] = [line for line in md.splitlines() if line.startswith("Audit chain")]
    assert chain.startswith("Audit chain: intact: ") and "row(s) checked" in chain
    assert chain.lower().count("audit chain") == 1 and chain.count("intact") == 1
    assert "- [ ] add a runbook for the alert policy" in md


def test_an_unknown_incident_names_the_closest_and_exits_1(
    lived: tuple[Bot, Engine], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["incident", "review", "INC-9"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no incident `INC-9`; did you mean `INC-1`?" in captured.err
    assert "Recent incidents: `INC-1`" in captured.err
    assert cli.main(["incident", "review", "CHG-1"]) == 1
    assert "no incident `CHG-1`" in capsys.readouterr().err


def test_a_broken_chain_is_said_and_exits_1(
    lived: tuple[Bot, Engine], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _, engine = lived
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_event_no_update"))
        conn.execute(text("UPDATE audit_event SET actor_id = 'U0MALLORY' WHERE id = 3"))
    out = tmp_path / "review.md"
    assert cli.main(["incident", "review", "INC-1", "--full", "--output", str(out)]) == 1
    assert "audit chain broken at row 3" in capsys.readouterr().err
    [chain] = [line for line in out.read_text().splitlines() if line.startswith("Audit chain")]
    assert chain.startswith("Audit chain: **BROKEN** — broken at row 3")
    assert chain.lower().count("audit chain") == 1


def test_the_typed_review_posts_the_draft_in_the_incidents_thread(
    lived: tuple[Bot, Engine],
) -> None:
    bot, _ = lived
    reply = bot.run(ALICE, "/aiops incident review INC-1")
    assert reply.ok and "Posted the draft in INC-1's thread" in reply.text
    incident = bot.rt.incidents.get_incident("INC-1")  # type: ignore[union-attr]
    assert incident is not None
    assert isinstance(bot.rt.notifier, NullNotifier)  # it cannot attach files: the message only
    [draft] = [p for p in bot.rt.notifier.posts if p.reply.text.startswith("Post-incident review")]
    assert draft.thread_ts == incident.thread_ts and draft.channel == incident.channel
    shown = text_of(draft.reply)
    assert "row " in shown and "Time to resolve" in shown and EMAIL not in shown
    refused = bot.run(ALICE, "/aiops incident review INC-7")
    assert not refused.ok and "did you mean `INC-1`" in refused.text


def test_the_review_of_an_incident_whose_card_never_arrived_is_the_answer(
    sqlite_engine: Engine, clock: FakeClock
) -> None:
    bot = Bot(make_runtime(sqlite_engine, clock), clock)
    assert bot.run(ALICE, '/aiops incident declare loan-assessor-stg sev=P3 summary="slow"').ok
    incidents = bot.rt.incidents
    assert incidents is not None
    incident = incidents.get_incident("INC-1")
    assert incident is not None
    incidents.update_incident("INC-1", incident.rev, channel=None, thread_ts=None)
    reply = bot.run(ALICE, "/aiops incident review INC-1")
    assert reply.ok and reply.ephemeral and "still open: a draft so far" in text_of(reply)
