"""Local logs: JSON lines on stderr, PII-masked by the same redaction module as Slack."""

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


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    # JsonFormatter redacts tracebacks itself, so it may keep exc_info.
    handler.addFilter(RedactingFilter(drop_exc_info=False))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("alembic", "urllib3", "slack_bolt.AsyncApp"):
        logging.getLogger(noisy).setLevel("WARNING")
