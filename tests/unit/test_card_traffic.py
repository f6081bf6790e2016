"""The change card's traffic before → after: fixed-width bars in a code block, escaped,
masked and within Slack's section limit."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from bot.slack.blocks import render_message
from commands.changes.card import bar, change_card, traffic_bars
from commands.messages import unescape
from commands.model import Change, ChangeKind, ChangePlan, ChangeState
from tests.support.harness import example_config

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def deploy(**plan: object) -> Change:
    return Change(
        id="CHG-7",
        kind=ChangeKind.DEPLOY,
        endpoint="loan-assessor",
        environment="prod",
        requester_id="U0ALICE",
        state=ChangeState.PENDING_APPROVAL,
        created_at=NOW,
        reason="fix tokenizer bug",
        version="gemma-3-1b-it@1.2.1",
        canary_percent=10,
        split_before={"1": 100},
        split_after={"1": 90, "0": 10},
        restore_split={"1": 100},
        plan=ChangePlan(labels={"1": "1.2.0"}, **plan),  # type: ignore[arg-type]
    )


def sections(change: Change) -> list[str]:
    message = render_message(change_card(change, example_config(), buttons=True))
    return [b["text"]["text"] for b in message["blocks"] if b["type"] == "section" and "text" in b]


def test_the_split_is_drawn_as_bars_before_and_after() -> None:
    assert traffic_bars(deploy()) == (
        "```\n"
        "before  1.2.0  ████████████████████ 100%\n"
        "after   1.2.0  ██████████████████░░  90%\n"
        "        1.2.1  ██░░░░░░░░░░░░░░░░░░  10%\n"
        "```"
    )
    traffic = next(s for s in sections(deploy()) if s.startswith("*Traffic*"))
    assert "before → after" in traffic and "1.2.1  ██░░" in traffic


def test_small_and_large_shares_stay_visible() -> None:
    assert bar(0) == "░" * 20
    assert bar(1).count("█") == 1  # a 1 % canary is still seen
    assert bar(99).count("░") == 1  # and 99 % is not drawn as all of it
    assert bar(100) == "█" * 20
    assert bar(50) == "█" * 10 + "░" * 10


def test_labels_are_escaped_after_padding_and_masked() -> None:
    change = deploy()
    change = replace(change, split_before={"1": 100, "2": 0}, split_after={"1": 90, "2": 10})
    change = replace(change, plan=ChangePlan(labels={"1": "1.2.0", "2": "<!channel>"}))
    drawn = traffic_bars(change)
    assert "&lt;!channel&gt;" in drawn and "<!channel>" not in drawn
    rows = [unescape(line) for line in drawn.splitlines() if "%" in line]
    bars = {min(i for i, c in enumerate(row) if c in "█░") for row in rows}
    assert len(rows) == 4 and len(bars) == 1  # the bars line up as the eye reads them
    assert {row[8] for row in rows} <= {"1", "<"}  # and so do the labels

    card_number = "4111111111111111"  # a label that happens to look like a card number
    masked = replace(change, plan=ChangePlan(labels={"1": card_number, "2": "1.2.1"}))
    shown = json.dumps(render_message(change_card(masked, example_config())))
    assert card_number not in shown


def test_many_deployed_models_stay_within_slacks_section_limit() -> None:
    many = {str(i): 1 for i in range(1, 41)}
    many["1"] = 61
    labels = {k: f"gemma-3-1b-it-with-a-very-long-version-label-{k:0>3}" for k in many}
    change = replace(deploy(), split_before=many, split_after=many, plan=ChangePlan(labels=labels))
    traffic = next(s for s in sections(change) if s.startswith("*Traffic*"))
    assert len(traffic) <= 3000
    assert traffic.endswith("```") and traffic.count("```") == 2  # the block is closed
    assert traffic.count("and 34 more") == 2  # six a side, the rest counted
    assert "gemma-3-1b-it-with-a-ve…" in traffic  # labels cut to one width
