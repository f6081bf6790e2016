"""The console's log lines: words a person reads, PII masked, tracebacks masked too."""

from __future__ import annotations

import io
import logging

from bot.logs import setup_logging


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
