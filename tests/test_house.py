"""The one-place rules of the layout: one dispatch table bound to the catalog, one list of
audit actions, one change state table enforced by the store."""

from __future__ import annotations

import ast
from pathlib import Path

from commands.audit import OVERRIDES, AuditAction
from commands.catalog import AIOPS_SUBCOMMANDS, BUTTONS, SLASH_COMMANDS
from commands.digests.gather import FLAGGED_ACTIONS
from commands.ports import AuditQuery
from commands.reports.help import help_reply
from commands.service import CHANGE_COMMANDS, HANDLERS
from tests.support import ALICE, Bot

REPO = Path(__file__).resolve().parents[1]


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
    assert set(BUTTONS) <= set(HANDLERS)


def test_every_override_has_its_digest_wording() -> None:
    assert set(FLAGGED_ACTIONS) == OVERRIDES


def test_audit_rows_are_written_with_members_of_the_one_action_list(bot: Bot) -> None:
    bot.run(ALICE, '/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=10 reason="x"')
    actions = {e.action for e in bot.rt.store.audit(AuditQuery())}
    assert {"command", "plan", "execution_started", "execution_finished"} <= actions
    assert actions <= {a.value for a in AuditAction}
