"""Writes audit events: redacted, stamped in UTC, with their retention date; and the one
list of audit actions every writer and reader uses."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from commands.model import Change
from commands.ports import AuditEvent, AuditSink, Store
from commands.redaction import redact, redact_value

RETENTION = timedelta(days=7 * 365 + 2)  # seven years, leap days included


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
            outcome=redact(outcome),
            at=now,
            environment=environment or (change.environment if change else None),
            target=target or (change.endpoint if change else None),
            parameters=redact_value(parameters or {}),
            justification=redact(justification) if justification else None,
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
