"""The respond storage port. `bot/store/incident_store.py` implements it on SQLModel
(SQLite and PostgreSQL); every write that two replicas may race is atomic, as said."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from commands.incidents.model import AlertNotice, AlertRecord, Handoff, Incident, IncidentState


class IncidentStore(Protocol):
    # --- alerts -------------------------------------------------------------------------
    def record_alert(self, notice: AlertNotice, at: datetime) -> tuple[AlertRecord, bool]:
        """Store a notice under its `key`: a new key makes a new `ALERT-N` (True); a known
        key updates the stored notice (state, ended_at, summary…) and returns False. Atomic
        across replicas: of two racing first notices exactly one gets True."""
        ...

    def get_alert(self, alert_id: str) -> AlertRecord | None:
        """By `ALERT-N` or by key; None when unknown."""
        ...

    def update_alert(self, alert_id: str, rev: int, **fields: Any) -> AlertRecord | None:
        """Compare-and-set on `rev` (channel, message_ts, acknowledged_*, incident_id);
        None when another writer moved it first."""
        ...

    def list_alerts(self, since: datetime, endpoint: str | None = None) -> list[AlertRecord]: ...

    # --- incidents ----------------------------------------------------------------------
    def create_incident(self, incident: Incident) -> Incident:
        """Insert with a fresh `INC-N` (the given id is ignored)."""
        ...

    def get_incident(self, incident_id: str) -> Incident | None: ...

    def update_incident(self, incident_id: str, rev: int, **fields: Any) -> Incident | None:
        """Compare-and-set on `rev`; None when another writer moved it first."""
        ...

    def list_incidents(
        self,
        *,
        states: frozenset[IncidentState] | None = None,
        since: datetime | None = None,
        endpoint: str | None = None,
    ) -> list[Incident]:
        """Newest first; `since` compares with `declared_at` or, for open ones, keeps them."""
        ...

    def open_incidents_for(self, endpoint: str) -> list[Incident]: ...

    # --- hand-off -----------------------------------------------------------------------
    def add_handoff(self, note: Handoff) -> Handoff:
        """Insert; assigns `id`."""
        ...

    def handoffs(self, since: datetime, environment: str | None = None) -> Sequence[Handoff]: ...
