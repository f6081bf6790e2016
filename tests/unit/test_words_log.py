"""The console's log lines: words a person reads, PII masked, tracebacks masked too; its
demo PII key, on the sandbox only."""

from __future__ import annotations

import io
import logging
from dataclasses import replace

import pytest

from bot.logs import setup_logging
from tests.support.harness import example_config


def test_the_console_logs_words_with_pii_masked() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO", words=True)
        stream = io.StringIO()
        handler = root.handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        log = logging.getLogger("tests.words")
        log.warning("mail %s could not be told", "jane.citizen@example.com")
        log.info("took over %d change(s)", 2)
        try:
            raise ValueError("card 4111 1111 1111 1111 refused")
        except ValueError:
            log.exception("failed")
        # (the first use of the process's redactor may warn about its key first)
        lines = [x for x in stream.getvalue().splitlines() if "is not set" not in x]
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    assert lines[0].startswith("aiops-bot: warning: mail [EMAIL:")
    assert lines[0].endswith("] could not be told")
    assert lines[1] == "aiops-bot: took over 2 change(s)"
    assert lines[2] == "aiops-bot: error: failed"
    text = "\n".join(lines)
    assert "jane.citizen" not in text and "4111 1111" not in text and "{" not in text
    assert "ValueError" in text  # the traceback is there, masked


def test_the_demo_key_is_the_sandbox_consoles_and_said_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.cli.console import DEMO_KEY_NOTE, DEMO_PII_KEY, use_demo_key_unless_set
    from commands import redaction

    monkeypatch.delenv("AIOPS_PII_KEY", raising=False)
    monkeypatch.setattr(redaction, "_default", None)  # as in a new process; restored after
    err = io.StringIO()
    vertex = replace(example_config(), platform="vertex")  # may see real data: no public key
    assert not use_demo_key_unless_set(vertex, err) and err.getvalue() == ""
    assert use_demo_key_unless_set(example_config(), err)
    assert not use_demo_key_unless_set(example_config(), err)  # said once
    assert err.getvalue() == f"aiops-bot: {DEMO_KEY_NOTE}\n"
    email = "jane.citizen@example.com"
    assert redaction.redact(email) == redaction.Redactor(DEMO_PII_KEY).redact(email)
    monkeypatch.setenv("AIOPS_PII_KEY", "a real key")
    monkeypatch.setattr(redaction, "_default", None)
    assert not use_demo_key_unless_set(example_config(), err)
