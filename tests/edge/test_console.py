"""`aiops-bot console` as a person or a script would use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def console(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AIOPS_DATA_DIR=str(tmp_path), AIOPS_POLL_SECONDS="0.05")
    env.pop("DATABASE_URL", None)
    config = tmp_path / "fast.toml"
    from bot.settings import BUNDLED_CONFIG

    config.write_text(
        BUNDLED_CONFIG.read_text().replace("operation_seconds = 3", "operation_seconds = 0.2")
    )
    env["AIOPS_CONFIG"] = str(config)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "console", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_scripted_console_runs_the_loop_and_waits(tmp_path: Path) -> None:
    result = console(
        tmp_path,
        "--user",
        "alice",
        "--json",
        "-c",
        '/deploy loan-assessor gemma-3-1b-it@1.2.1 reason="fix"',
        "-c",
        "as bob",
        "-c",
        "/aiops approve CHG-1",
        "-c",
        "/aiops status loan-assessor",
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    replies = [x for x in lines if x["kind"] == "reply"]
    assert [r["ok"] for r in replies] == [True, True, True]
    assert all(isinstance(r["blocks"], list) and r["text"] for r in replies)
    posts = [x for x in lines if x["kind"] == "post"]
    assert any("succeeded" in p["text"] for p in posts), (
        "the console exits once the work has finished"
    )
    # a second run sees the state the first one left (the sandbox lives in the database)
    again = console(tmp_path, "--json", "-c", "/aiops status loan-assessor")
    status = json.loads(again.stdout.splitlines()[-1])
    assert "1.2.1 10%" in json.dumps(status["blocks"])


def test_console_renders_text_with_typed_buttons(tmp_path: Path) -> None:
    result = console(
        tmp_path, "--user", "alice", "-c", '/deploy loan-assessor gemma-3-1b-it@1.2.1 reason="x"'
    )
    assert result.returncode == 0, result.stderr
    assert "type: /aiops approve CHG-1" in result.stdout
    assert "@alice" in result.stdout and "#approvals" in result.stdout


def test_manifest_lists_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "manifest", "--url", "https://bot.example"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    manifest = json.loads(out)
    names = [c["command"] for c in manifest["features"]["slash_commands"]]
    assert names == ["/deploy", "/promote", "/rollback", "/aiops"]
    assert (
        manifest["settings"]["interactivity"]["request_url"] == "https://bot.example/slack/events"
    )
    assert "chat:write" in manifest["oauth_config"]["scopes"]["bot"]


def test_serve_without_tokens_says_what_to_do(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env["AIOPS_DATA_DIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN" in result.stderr and "console" in result.stderr


def test_audit_export_csv(tmp_path: Path) -> None:
    console(tmp_path, "-c", "/deploy loan-assessor-stg gemma-3-1b-it@1.2.1")
    env = dict(os.environ, AIOPS_DATA_DIR=str(tmp_path))
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "audit", "export", "--format", "csv"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    header, *rows = out.strip().splitlines()
    assert header.startswith("id,at,at_local,actor_id")
    assert any("execution_finished" in r for r in rows)


def test_console_walkthrough_rolls_back_rc1_and_keeps_1_2_1(tmp_path: Path) -> None:
    """The README's walkthrough, driven only by `/aiops canary` (each moves the sandbox's
    clock one interval): 1.3.0-rc1 at 10 % on staging is rolled back by the bot, 1.2.1
    deployed the same way is not."""
    check = "/aiops canary loan-assessor-stg"
    lines = [
        '/deploy loan-assessor-stg gemma-3-1b-it@1.3.0-rc1 canary=10 reason="try rc1"',
        "wait",
        *[check] * 4,
        "wait",
        '/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 canary=10 reason="fix tokenizer bug"',
        "wait",
        *[check] * 6,
        "wait",
        "/aiops status loan-assessor-stg",
    ]
    result = console(tmp_path, "--user", "alice", "--json", *[a for x in lines for a in ("-c", x)])
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    replies = [x for x in out if x["kind"] == "reply"]
    assert all(r["ok"] for r in replies), [r["text"] for r in replies if not r["ok"]]
    posts = [x["text"] for x in out if x["kind"] == "post"]
    rolled = [p for p in posts if "rolling back" in p and "CAN-1" in p]
    assert rolled and "regression" in rolled[0]
    assert any("CHG-2" in p and "succeeded" in p for p in posts)  # the bot's rollback
    assert not any("CAN-2: rolling back" in p for p in posts)  # 1.2.1 is not rolled back
    checks_of_1_2_1 = [r for r in replies if r["command"] == check][4:]
    assert len(checks_of_1_2_1) == 6
    last = json.dumps(checks_of_1_2_1[-1]["blocks"])
    assert "check 6" in last and "regression*" not in last.replace("no regression*", "")
    status = json.dumps(replies[-1]["blocks"])
    assert "1.2.1 10%" in status and "rc1" not in status


def test_the_console_speaks_words_and_uses_a_labelled_demo_pii_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without `AIOPS_PII_KEY` the console says once, in words, that PII tokens use its demo
    key (fixed: the same token in every session), and logs no JSON lines at a person."""
    from bot.cli.console import DEMO_KEY_NOTE, DEMO_PII_KEY
    from commands.redaction import Redactor

    monkeypatch.delenv("AIOPS_PII_KEY", raising=False)  # the subprocesses inherit it
    email = "jane.citizen@example.com"
    line = f'/deploy loan-assessor-stg gemma-3-1b-it@1.2.1 reason="asked by {email}"'
    runs = [console(tmp_path, "--json", "-c", line, "-c", "/aiops cancel x") for _ in range(2)]
    token = Redactor(DEMO_PII_KEY).redact(email)
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert run.stderr.count(DEMO_KEY_NOTE) == 1
        assert "{" not in run.stderr and "is not set" not in run.stderr
        assert email not in run.stdout and token in run.stdout  # the same in both sessions
        assert all(json.loads(x) for x in run.stdout.splitlines())  # stdout stays JSON
    keyed = subprocess.run(
        [sys.executable, "-m", "bot.cli", "console", "-c", line],
        env=dict(os.environ, AIOPS_DATA_DIR=str(tmp_path), AIOPS_PII_KEY="a real key"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert DEMO_KEY_NOTE not in keyed.stderr and token not in keyed.stdout
    assert Redactor(b"a real key").redact(email) in keyed.stdout


def test_other_commands_keep_json_logs_and_the_random_key_warning(tmp_path: Path) -> None:
    env = dict(os.environ, AIOPS_DATA_DIR=str(tmp_path))
    env.pop("AIOPS_PII_KEY", None)
    env.pop("DATABASE_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "digest", "morning", "--environment", "staging"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    warning = json.loads(next(x for x in out.stderr.splitlines() if "AIOPS_PII_KEY" in x))
    assert warning["severity"] == "WARNING" and "random per-process key" in warning["message"]


def test_console_shows_model_versions_and_the_validation_gate(tmp_path: Path) -> None:
    """The sandbox's registry in the console: the cards from the config, the gate refusing
    a rejected version in prod, and the serving alias following a full deploy, kept for the
    next session."""
    result = console(
        tmp_path,
        "--user",
        "alice",
        "--json",
        "-c",
        '/deploy loan-assessor gemma-3-1b-it@1.3.0-rc2 reason="try"',
        "-c",
        '/deploy loan-assessor gemma-3-1b-it@1.2.1 canary=100 reason="fix"',
        "-c",
        "as bob",
        "-c",
        "/aiops approve CHG-1",
    )
    assert result.returncode == 0, result.stderr
    replies = [json.loads(line) for line in result.stdout.splitlines()]
    replies = [r for r in replies if r["kind"] == "reply"]
    assert [r["ok"] for r in replies] == [False, True, True]
    assert "rejected by carol on 2026-11-25" in replies[0]["text"]
    shown = console(tmp_path, "--json", "-c", "/aiops models gemma-3-1b-it")
    text = json.dumps(json.loads(shown.stdout.splitlines()[-1]), ensure_ascii=False)
    assert "`prod` names 1.2.1" in text  # moved by CHG-1, read by a later session
    assert "pipeline run gemma-ft-loans-20261112" in text and "accuracy 0.879" in text


def test_the_console_runs_an_incident_from_declaration_to_resolution(tmp_path: Path) -> None:
    """The respond commands on the sandbox, as `make run` offers them: declared, acted on
    from its buttons' typed forms, resolved; the thread's lines in the terminal."""
    result = console(
        tmp_path,
        "--user",
        "alice",
        "-c",
        '/aiops incident declare loan-assessor sev=P1 summary="5xx since 14:05" oncall=@bob',
        "-c",
        "as bob",
        "-c",
        "/aiops incident ack INC-1",
        "-c",
        '/aiops incident resolve INC-1 cause="bad canary"',
        "-c",
        '/aiops handoff "INC-1 resolved; watch P95"',
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "🚨 INC-1 · P1 · loan-assessor" in out
    assert "type: /aiops incident ack INC-1" in out  # the buttons, as typed commands
    assert "@here" in out and "<!here>" not in out  # paging off: the thread's alarm
    assert "👀 @bob acknowledged INC-1." in out
    assert "Root cause: bad canary" in out
    assert "Hand-off notes stored by @bob" in out
    assert "⛔" not in out
