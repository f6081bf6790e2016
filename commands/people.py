"""People apart from what they did: audit rows carry a Slack id; the name behind it lives
in a directory that a privacy request can erase without touching the audit chain."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

ERASED = "[erased]"


class People(Protocol):
    def remember(self, slack_id: str, name: str, at: datetime) -> None:
        """Record the name Slack gave for this id (not once it has been erased)."""
        ...

    def name(self, slack_id: str) -> str | None:
        """The remembered name; `ERASED` once erased; None when never seen."""
        ...

    def erase(self, slack_id: str, at: datetime) -> bool:
        """Forget the name; False when the id was never seen."""
        ...
