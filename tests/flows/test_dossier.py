"""`aiops-bot audit dossier`: the evidence for one change, and what it shows when a row
was tampered with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.cli import main as cli
from bot.store.db import make_engine, upgrade
from bot.store.people import PersonDirectory
from bot.store.sql_store import SqlStore, chain_hash
from commands.errors import Refusal
from commands.ports import AuditEvent
from commands.reports.dossier import build, to_json, to_markdown
from tests.support.harness import ALICE, BOB, Bot, FakeClock, make_runtime

DEPLOY = (
    "/deploy loan-assessor gemma-3-1b-it@1.2.1 canary=10 ticket=CHG-77"
    ' reason="fix tokenizer bug for jane.citizen@example.com"'
)


def row_ok(e: AuditEvent) -> bool:
    return chain_hash(e.prev_hash or "", e) == e.hash


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    engine = make_engine(f"sqlite:///{tmp_path / 'aiops-bot.db'}")
    upgrade(engine)
    clock = FakeClock()
    bot = Bot(make_runtime(engine, clock), clock)
    bot.run(ALICE, DEPLOY)
    change = bot.rt.store.open_change("loan-assessor")
    assert change is not None
    bot.run(BOB, f"/aiops approve {change.id} ")
    yield bot, engine, change.id
    bot.rt.background.wait_idle()
    engine.dispose()


def test_dossier_holds_the_whole_story(setup) -> None:  # type: ignore[no-untyped-def]
    bot, engine, change_id = setup
    d = build(
        SqlStore(engine),
        bot.rt.config,
        change_id,
        people=PersonDirectory(engine),
        row_ok=row_ok,
    )
    req, plan, dec, ex = d["request"], d["plan"], d["decisions"], d["execution"]
    assert req["requester"] == {"id": ALICE.id, "name": "alice"}
    assert req["ticket"] == "CHG-77" and not req["break_glass"]
    assert "jane.citizen@example.com" not in json.dumps(d)  # PII masked at this exit too
    assert req["at"]["utc"].endswith("+00:00") and req["at"]["local"].endswith("+11:00")
    assert plan["version"] == "gemma-3-1b-it@1.2.1" and plan["plan_unchanged"]
    assert sum(plan["split_after"].values()) == 100
    assert [a["by"]["id"] for a in dec["approvals"]] == [BOB.id]
    assert dec["approvals"][0]["bound_to_plan_shown"] is True
    assert dec["state"] == "succeeded"
    assert {"approval_requested", "approve"} <= {r["action"] for r in dec["audit"]}
    assert ex["operation"] and ex["new_deployed_model_id"]
    assert [r["action"] for r in ex["audit"]] == ["execution_started", "execution_finished"]
    assert d["audit_rows"] and all(r["hash_ok"] for r in d["audit_rows"])
    md = to_markdown(d)
    for section in ("## Request", "## Plan", "## Decisions", "## Execution", "## Canary"):
        assert section in md
    assert d["audit_rows"][0]["hash"] in md
    assert json.loads(to_json(d))["change"] == change_id


def test_dossier_cli_and_a_tampered_row(setup, capsys) -> None:  # type: ignore[no-untyped-def]
    _, engine, change_id = setup
    assert cli.main(["audit", "dossier", change_id, "--format", "json", "--full"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["chain"]["ok"] is True
    target = data["decisions"]["audit"][-1]["id"]
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER audit_event_no_update"))
        conn.execute(
            text("UPDATE audit_event SET actor_id = 'U0MALLORY' WHERE id = :id"), {"id": target}
        )
    assert cli.main(["audit", "dossier", change_id, "--full"]) == 1
    md = capsys.readouterr().out
    assert "**NO**" in md and f"row {target}" in md and "edited" in md
    assert cli.main(["audit", "dossier", "CHG-999"]) == 1
    assert "no change" in capsys.readouterr().err


def test_unknown_change_is_a_clear_refusal(setup) -> None:  # type: ignore[no-untyped-def]
    bot, engine, _ = setup
    with pytest.raises(Refusal, match="no change"):
        build(SqlStore(engine), bot.rt.config, "CHG-404")


def test_no_change_kind_writes_its_run_into_the_plan_its_approval_is_bound_to(bot: Bot) -> None:
    """What a run learns (deployed-model ids, the registered version, phases) is kept
    outside the hashed plan: every kind's dossier says the plan is the one shown."""
    stg, model = "loan-assessor-stg", "gemma-3-1b-it"
    lines = [
        f"/deploy {stg} {model}@1.2.1 canary=25",
        f"/promote {stg}",
        f"/rollback {stg}",
        f"/deploy {stg} {model}@1.2.1 strategy=blue-green",
        f"/aiops undeploy {stg} 1.2.0",
        f"/aiops scale {stg} min=2 max=2",
        f"/deploy {stg} {model}@1.2.0 strategy=replace",
        f'/aiops retrain {model} reason="drift"',
    ]
    for line in lines:
        reply = bot.run(ALICE, line)
        assert reply.ok, reply.text
        opened = bot.rt.store.list_changes(limit=1)[0]
        if opened.state.value == "pending_approval":
            assert bot.run(BOB, f"/aiops approve {opened.id}").ok
    changes = bot.rt.store.list_changes(limit=50)
    assert {c.kind.value for c in changes} >= {
        "deploy",
        "promote",
        "rollback",
        "undeploy",
        "scale",
        "retrain",
    }
    for change in changes:
        assert change.state.value == "succeeded", (change.id, change.kind, change.error)
        d = build(bot.rt.store, bot.rt.config, change.id)
        assert d["plan"]["plan_unchanged"] is True, (change.id, change.kind.value)
        assert "- Plan unchanged since: yes" in to_markdown(d)
