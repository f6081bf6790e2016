"""Local logs on stderr, PII-masked by the same redaction module as Slack: JSON lines for
the processes a platform collects (`serve`, the CLI), plain words for a person at the
console (`aiops-bot: warning: …`)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from commands.redaction import RedactingFilter, redact


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "severity": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry)


class WordsFormatter(logging.Formatter):
    """One line a person reads: `aiops-bot: warning: <message>` (no level for INFO)."""

    def format(self, record: logging.LogRecord) -> str:
        level = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
        text = f"aiops-bot: {level}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + redact(self.formatException(record.exc_info))
        return text


class ForgedRequestFilter(logging.Filter):
    """Bolt logs a request whose signature fails with its whole body: user and channel
    ids, names, the command's text. Keep the event, not what an attacker sent."""

    PREFIX = "Invalid request signature detected"

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("slack_bolt") and str(record.msg).startswith(self.PREFIX):
            record.msg = f"{self.PREFIX}; the request was refused (401), its body not logged"
            record.args = ()
        return True


def setup_logging(level: str = "INFO", *, words: bool = False) -> None:
    """`words`: plain lines for a terminal (the console) instead of JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(WordsFormatter() if words else JsonFormatter())
    handler.addFilter(ForgedRequestFilter())
    # Both formatters redact tracebacks themselves, so they may keep exc_info.
    handler.addFilter(RedactingFilter(drop_exc_info=False))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # procrastinate logs every job with its arguments at INFO: a command's response_url
    # (which lets its holder post into the user's conversation for 30 minutes) among them.
    for noisy in ("alembic", "urllib3", "slack_bolt.AsyncApp", "procrastinate"):
        logging.getLogger(noisy).setLevel("WARNING")
