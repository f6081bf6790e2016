"""Writes audit events: redacted, stamped in UTC, with their retention date. Every text
field goes through `commands.text.outbound`: PII masked and invisible characters made
visible, whatever the caller passed (a refused command's raw text included)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from commands.model import Change
from commands.store import AuditEvent, Store
from commands.text import outbound, outbound_value

RETENTION = timedelta(days=7 * 365 + 2)  # seven years, leap days included


class AuditSink(Protocol):
    """A second copy of every row (Cloud Logging's `aiops-audit` in production)."""

    def write(self, event: AuditEvent) -> None: ...


class Auditor:
    def __init__(
        self,
        store: Store,
        clock: Callable[[], datetime],
        retention: timedelta = RETENTION,
        sinks: list[AuditSink] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.retention = retention
        self.sinks = sinks or []

    def record(
        self,
        action: str,
        actor_id: str,
        outcome: str,
        *,
        environment: str | None = None,
        target: str | None = None,
        parameters: dict[str, Any] | None = None,
        justification: str | None = None,
        change: Change | None = None,
        change_id: str | None = None,
        request_id: str | None = None,
    ) -> AuditEvent:
        now = self.clock()
        event = AuditEvent(
            action=action,
            actor_id=actor_id,
            outcome=outbound(outcome),
            at=now,
            environment=environment or (change.environment if change else None),
            target=outbound(target) if target else (change.endpoint if change else None),
            parameters=outbound_value(parameters or {}),
            justification=outbound(justification) if justification else None,
            change_id=change_id or (change.id if change else None),
            request_id=request_id,
            retain_until=now + self.retention,
        )
        stored = self.store.append_audit(event)
        for sink in self.sinks:
            try:
                sink.write(stored)
            except Exception:
                import logging

                logging.getLogger(__name__).exception("audit sink failed for row %s", stored.id)
        return stored
