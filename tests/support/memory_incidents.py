"""A dict-backed `IncidentStore` for tests of the pure respond code (review, digests)
while the SQL store (`bot/store/incident_store.py`) is built elsewhere. It keeps the
port's contract (ids, compare-and-set on `rev`, newest first), not its atomicity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from commands.incidents.model import AlertNotice, AlertRecord, Handoff, Incident, IncidentState
from commands.incidents.ports import IncidentStore


class MemoryIncidents:
    def __init__(self) -> None:
        self.alerts: dict[str, AlertRecord] = {}
        self.incidents: dict[str, Incident] = {}
        self.notes: list[Handoff] = []

    # --- alerts
    def record_alert(self, notice: AlertNotice, at: datetime) -> tuple[AlertRecord, bool]:
        for record in self.alerts.values():
            if record.notice.key == notice.key:
                moved = replace(record, notice=notice, updated_at=at, rev=record.rev + 1)
                self.alerts[record.id] = moved
                return moved, False
        record = AlertRecord(
            id=f"ALERT-{len(self.alerts) + 1}", notice=notice, received_at=at, updated_at=at
        )
        self.alerts[record.id] = record
        return record, True

    def get_alert(self, alert_id: str) -> AlertRecord | None:
        found = self.alerts.get(alert_id)
        return found or next((a for a in self.alerts.values() if a.notice.key == alert_id), None)

    def update_alert(self, alert_id: str, rev: int, **fields: Any) -> AlertRecord | None:
        record = self.alerts.get(alert_id)
        if record is None or record.rev != rev:
            return None
        self.alerts[alert_id] = replace(record, rev=rev + 1, **fields)
        return self.alerts[alert_id]

    def list_alerts(self, since: datetime, endpoint: str | None = None) -> list[AlertRecord]:
        found = [
            a
            for a in self.alerts.values()
            if a.received_at >= since and (endpoint is None or a.notice.endpoint == endpoint)
        ]
        return sorted(found, key=lambda a: a.received_at, reverse=True)

    # --- incidents
    def create_incident(self, incident: Incident) -> Incident:
        made = replace(incident, id=f"INC-{len(self.incidents) + 1}", rev=0)
        self.incidents[made.id] = made
        return made

    def get_incident(self, incident_id: str) -> Incident | None:
        return self.incidents.get(incident_id)

    def update_incident(self, incident_id: str, rev: int, **fields: Any) -> Incident | None:
        found = self.incidents.get(incident_id)
        if found is None or found.rev != rev:
            return None
        self.incidents[incident_id] = replace(found, rev=rev + 1, **fields)
        return self.incidents[incident_id]

    def list_incidents(
        self,
        *,
        states: frozenset[IncidentState] | None = None,
        since: datetime | None = None,
        endpoint: str | None = None,
        resolved_since: datetime | None = None,
    ) -> list[Incident]:
        def recent(i: Incident) -> bool:
            if since is None or i.declared_at >= since or i.state.is_open:
                return True
            return (
                resolved_since is not None
                and i.resolved_at is not None
                and i.resolved_at >= resolved_since
            )

        found = [
            i
            for i in self.incidents.values()
            if (states is None or i.state in states)
            and recent(i)
            and (endpoint is None or i.endpoint == endpoint)
        ]
        return sorted(found, key=lambda i: i.declared_at, reverse=True)

    def open_incidents_for(self, endpoint: str) -> list[Incident]:
        return [i for i in self.list_incidents(endpoint=endpoint) if i.state.is_open]

    # --- hand-off
    def add_handoff(self, note: Handoff) -> Handoff:
        stored = replace(note, id=len(self.notes) + 1)
        self.notes.append(stored)
        return stored

    def handoffs(self, since: datetime, environment: str | None = None) -> Sequence[Handoff]:
        return [
            n
            for n in self.notes
            if n.at >= since and (environment is None or n.environment in (None, environment))
        ]


def _conforms(store: MemoryIncidents) -> IncidentStore:
    return store  # mypy checks the class against the port here
