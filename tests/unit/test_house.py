"""The one-place rules of the layout: one dispatch table bound to the catalog, one list of
audit actions, one change state table enforced by the store."""

from __future__ import annotations

import ast
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update
from sqlmodel import Session, col

from bot.store.canary_store import SqlCanaryStore
from bot.store.sql_store import SqlStore, change_seq
from bot.store.tables import ChangeRow
from commands.audit import OVERRIDES, AuditAction
from commands.canary.model import TERMINAL_STATES, Watch, WatchState, can_move_watch
from commands.catalog import AIOPS_SUBCOMMANDS, BUTTONS, SLASH_COMMANDS, button_command
from commands.changes.rules import plan_hash
from commands.digests.gather import FLAGGED_ACTIONS
from commands.model import ChangeState, IllegalTransition, Invocation, can_move
from commands.ports import AuditQuery
from commands.reports.help import help_reply
from commands.service import CHANGE_COMMANDS, HANDLERS
from tests.adapters.test_store import new_change
from tests.support.harness import ALICE, Bot

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
WATCH = Watch(
    id=0,
    endpoint="loan-assessor",
    environment="prod",
    change_id="CHG-1",
    canary_id="2",
    stable_id="1",
    canary_version="1.2.1",
    stable_version="1.2.0",
    state=WatchState.WATCHING,
    started_at=NOW,
    next_check_at=NOW,
)


def test_dispatch_tables_and_catalog_hold_the_same_commands() -> None:
    assert set(HANDLERS) == set(AIOPS_SUBCOMMANDS)
    assert set(CHANGE_COMMANDS) | {"/aiops"} == set(SLASH_COMMANDS)


def test_the_aiops_usage_and_help_name_every_subcommand() -> None:
    usage = SLASH_COMMANDS["/aiops"].usage
    text = str(help_reply().blocks)
    for name in AIOPS_SUBCOMMANDS:
        assert name in usage.split("<", 1)[1].split(">")[0].split("|"), name
        assert f"/aiops {name}" in text, name


def test_every_button_the_domain_draws_is_in_the_catalog() -> None:
    """Buttons are found in the domain's code by their `Button(label, action_id, …)`."""
    drawn = set()
    for path in (REPO / "commands").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "Button"
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
            ):
                drawn.add(node.args[1].value)
    assert drawn, "the scan found no buttons: it is looking in the wrong place"
    assert drawn <= set(BUTTONS), drawn - set(BUTTONS)
    # `incident.ack` runs `/aiops incident ack …`: every button names a subcommand
    assert {button_command(b).split()[0] for b in BUTTONS} <= set(HANDLERS)


def test_every_override_has_its_digest_wording() -> None:
    assert set(FLAGGED_ACTIONS) == OVERRIDES


def test_audit_rows_are_written_with_members_of_the_one_action_list(bot: Bot) -> None:
    bot.run(ALICE, '/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=10 reason="x"')
    actions = {e.action for e in bot.rt.store.audit(AuditQuery())}
    assert {"command", "plan", "execution_started", "execution_finished"} <= actions
    assert actions <= {a.value for a in AuditAction}


@pytest.mark.parametrize("old", list(ChangeState))
def test_the_store_makes_exactly_the_moves_the_change_table_allows(
    engine: Engine, old: ChangeState
) -> None:
    store = SqlStore(engine)
    for new in ChangeState:
        change = store.create_change(new_change(f"ep-{old.value}-{new.value}"))
        with Session(engine) as session:  # put it in `old` whatever the path there
            session.execute(
                update(ChangeRow)
                .where(col(ChangeRow.seq) == change_seq(change.id))
                .values(state=str(old))
            )
            session.commit()
        if can_move(old, new):
            moved = store.transition(change.id, old, new)
            assert moved is not None and moved.state is new
        else:
            with pytest.raises(IllegalTransition):
                store.transition(change.id, old, new)
            after = store.get_change(change.id)
            assert after is not None and after.state is old


def test_the_watch_table_ends_in_terminal_states(engine: Engine) -> None:
    store = SqlCanaryStore(engine)
    pairs = [(old, new) for old in WatchState for new in WatchState]
    for n, (old, new) in enumerate(pairs):
        w = store.create_watch(
            replace(WATCH, endpoint=f"ep-{old}-{new}", change_id=f"CHG-{n}", state=old)
        )
        assert w is not None
        if can_move_watch(old, new):
            moved = store.update_watch(w.id, w.rev, state=new)
            assert moved is not None and moved.state is new
        else:
            assert old in TERMINAL_STATES
            with pytest.raises(IllegalTransition):
                store.update_watch(w.id, w.rev, state=new)
            again = store.get_watch(w.id)
            assert again is not None and again.state is old and again.rev == w.rev


def test_changes_stored_before_the_plan_was_typed_keep_their_plan_hash(engine: Engine) -> None:
    """Rows written by the code that kept the plan as a flat string map (a console run of a
    prod deploy, forced promote, rollback after a full promote, a staging step plan and a
    scheduled deploy): loaded by today's code, each hashes to the hash its approvers were
    shown, and writing it back stores the same map."""
    fixture = json.loads((REPO / "tests/fixtures/changes_before_typed_plan.json").read_text())
    with engine.begin() as conn:
        for row in fixture["change"]:
            conn.execute(ChangeRow.__table__.insert().values(**_typed(row)))
    store = SqlStore(engine)
    approved = {a["change_seq"]: a["plan_hash"] for a in fixture["approval"]}
    assert len(fixture["change"]) == 6 and len(approved) == 2
    for row in fixture["change"]:
        extra = json.loads(row["extra"])
        change = store.get_change(f"CHG-{row['seq']}")
        assert change is not None
        assert plan_hash(change) == extra["plan_hash"]
        if row["seq"] in approved:
            assert plan_hash(change) == approved[row["seq"]]
        assert change.plan.to_extra() == extra
        store.update_change(change.id, plan=change.plan)
        with engine.connect() as conn:
            stored = conn.execute(
                select(ChangeRow.__table__.c.extra).where(ChangeRow.__table__.c.seq == row["seq"])
            ).scalar_one()
        assert stored == extra
    rollback = store.get_change("CHG-3")
    assert rollback is not None and rollback.plan.undeploy == ("2194120019002",)
    assert rollback.plan.redeploy_version == "gemma-3-1b-it@1.2.0"
    scheduled = store.get_change("CHG-6")
    assert scheduled is not None and scheduled.plan.run_at == datetime(2026, 12, 24, tzinfo=UTC)
    steps = store.get_change("CHG-5")
    assert steps is not None and steps.plan.canary_steps == (25, 50, 100)


def _typed(row: dict[str, object]) -> dict[str, object]:
    """A fixture row (SQLite's text) as the table's Python values."""
    out: dict[str, object] = {}
    for key, value in row.items():
        if key in ("split_before", "split_after", "restore_split", "extra") and isinstance(
            value, str
        ):
            out[key] = json.loads(value)
        elif key.endswith("_at") and isinstance(value, str):
            out[key] = datetime.fromisoformat(value).replace(tzinfo=UTC)
        else:
            out[key] = value
    return out


LEAVES = {
    "commands/model.py",
    "commands/messages.py",
    "commands/errors.py",
    "commands/parsing.py",
    "commands/freezes.py",
    "commands/redaction.py",
    "commands/catalog.py",
    "commands/config.py",
    "commands/text.py",
    "commands/models/model.py",
}


def test_a_deploy_crosses_few_modules_and_enters_each_at_most_twice(bot: Bot) -> None:
    """The path of a prod `/deploy` from the service to its audit rows (docs/architecture.md):
    25 modules of the project run (19 before the feature packages), 18 of them in
    `commands/` (15 before): the same work now takes 14 domain modules, plus the check of
    typed text (`commands/text.py`), the store's canonical audit hashing, the model-risk
    gate (its rule `commands/models/gate.py`, its vocabulary `commands/models/model.py`, a
    leaf, and the sandbox's registry it reads), and the look for an incident open on the
    endpoint that the change would be linked to (`commands/incidents/links.py` and its
    store), four new guarantees. No module of `commands/` but the leaves is called into from another module
    more than twice (five were before), except the two ports that tell: the auditor, once
    per audit row written, and the notifier, once per thing told (the card, and the Home
    tabs that list the change)."""
    modules: set[str] = set()
    calls: dict[str, int] = {}
    told: list[str] = []

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event != "call":
            return
        path = Path(frame.f_code.co_filename)
        if REPO not in path.parents or path.relative_to(REPO).parts[0] not in ("bot", "commands"):
            return
        callee = path.relative_to(REPO).as_posix()
        modules.add(callee)
        back = frame.f_back
        caller = Path(back.f_code.co_filename).as_posix() if back else ""
        if caller.endswith(callee) or not callee.startswith("commands/"):
            return
        if frame.f_code.co_qualname.startswith("NullNotifier."):  # the notifier port
            told.append(frame.f_code.co_name)
            return
        calls[callee] = calls.get(callee, 0) + 1

    before = len(bot.rt.store.audit(AuditQuery()))
    sys.setprofile(profile)
    try:
        reply = bot.service.handle(
            Invocation(
                ALICE,
                "/deploy",
                'loan-assessor gemma-3-1b-it@1.2.1 canary=10 reason="fix tokenizer bug"',
                channel_id="C0TEST",
            )
        )
    finally:
        sys.setprofile(None)
    rows = len(bot.rt.store.audit(AuditQuery())) - before
    assert reply.ok and "waiting for approval" in reply.text
    domain = sorted(m for m in modules if m.startswith("commands/"))
    assert len(modules) <= 25 and len(domain) <= 18, " ".join(sorted(modules))
    assert calls.pop("commands/audit.py") == rows == 3  # plan, approval request, command
    assert told == ["deliver", "refresh_home"]  # the card; the approvers' Home tabs
    crossed = {m: n for m, n in calls.items() if m not in LEAVES}
    assert crossed and max(crossed.values()) <= 2, crossed
