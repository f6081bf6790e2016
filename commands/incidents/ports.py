"""The respond storage port. `bot/store/incident_store.py` implements it on SQLModel
(SQLite and PostgreSQL); every write that two replicas may race is atomic, as said."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from commands.incidents.model import AlertNotice, AlertRecord, Handoff, Incident, IncidentState


class AlertDeclared(Exception):
    """An incident was already declared from this alert (`IncidentStore.create_incident`)."""

    def __init__(self, incident: Incident) -> None:
        super().__init__(f"{incident.alert_id} was declared as {incident.id}")
        self.incident = incident


class IncidentStore(Protocol):
    # --- alerts -------------------------------------------------------------------------
    def record_alert(self, notice: AlertNotice, at: datetime) -> tuple[AlertRecord, bool]:
        """Store a notice under its `key`: a new key makes a new `ALERT-N` (True); a known
        key updates the stored notice (state, ended_at, summary…) and returns False. Atomic
        across replicas: of two racing first notices exactly one gets True. A closed alert
        stays closed: an `open` notice arriving after its `closed` one (a late retry) changes
        nothing. Free text is stored masked (`commands.text.outbound`)."""
        ...

    def get_alert(self, alert_id: str) -> AlertRecord | None:
        """By `ALERT-N` or by key; None when unknown."""
        ...

    def update_alert(self, alert_id: str, rev: int, **fields: Any) -> AlertRecord | None:
        """Compare-and-set on `rev` (channel, message_ts, acknowledged_by / _at,
        incident_id, closed_at, paged_at, posting_by, posting_until), which it bumps; None when another writer moved it first
        (or the alert is unknown)."""
        ...

    def list_alerts(self, since: datetime, endpoint: str | None = None) -> list[AlertRecord]:
        """Alerts received at or after `since`, and those still open whenever received;
        newest first."""
        ...

    # --- incidents ----------------------------------------------------------------------
    def create_incident(self, incident: Incident) -> Incident:
        """Insert with a fresh `INC-N` (the given id is ignored). One incident per alert: an
        `alert_id` that already has one raises `AlertDeclared` naming it and writes nothing,
        so of two racing declarations from one alert (a double click) exactly one is
        stored. Free text is stored masked."""
        ...

    def get_incident(self, incident_id: str) -> Incident | None:
        """By `INC-N` (any case); None when unknown or not an incident id."""
        ...

    def update_incident(self, incident_id: str, rev: int, **fields: Any) -> Incident | None:
        """Compare-and-set on `rev` (which it bumps); None when another writer moved it
        first (or the incident is unknown)."""
        ...

    def list_incidents(
        self,
        *,
        states: frozenset[IncidentState] | None = None,
        since: datetime | None = None,
        endpoint: str | None = None,
        resolved_since: datetime | None = None,
    ) -> list[Incident]:
        """Newest first; `since` compares with `declared_at` or, for open ones, keeps them;
        with `since`, `resolved_since` also keeps those resolved at or after it."""
        ...

    def open_incidents_for(self, endpoint: str) -> list[Incident]:
        """The endpoint's incidents not resolved, newest first."""
        ...

    # --- hand-off -----------------------------------------------------------------------
    def add_handoff(self, note: Handoff) -> Handoff:
        """Insert; assigns `id`."""
        ...

    def handoffs(self, since: datetime, environment: str | None = None) -> Sequence[Handoff]:
        """Notes written at or after `since`, oldest first; with `environment`, those for it
        and those for no environment in particular."""
        ...


@dataclass(frozen=True)
class WatchState:
    """The health watch's stored state of one endpoint: the judge's JSON-ready dict
    (`commands.incidents.health_watch.Judgement.state`; `{}` when never judged), the end
    of the last window judged (UTC), and `rev` (0: nothing stored yet)."""

    endpoint: str
    state: dict[str, Any]
    window_end: datetime | None = None
    rev: int = 0


class HealthWatchStore(Protocol):
    """Where the health watch keeps each endpoint's state between runs, processes and
    replicas (`bot/store/incident_store.py`: table `health_watch`)."""

    def watch_state(self, endpoint: str) -> WatchState:
        """The stored state; `WatchState(endpoint, {})` (rev 0) when there is none."""
        ...

    def save_watch_state(
        self,
        endpoint: str,
        rev: int,
        state: dict[str, Any],
        window_end: datetime,
        at: datetime,
    ) -> WatchState | None:
        """Compare-and-set: store `state` over the one read at `rev` (0: over nothing) and
        bump `rev`. None when another writer stored first (another replica judged that
        window): the caller then emits nothing. Atomic across replicas."""
        ...


@dataclass(frozen=True)
class NewChannel:
    """What became of a channel asked for: its id and name, or why there is none
    (Slack's error: `restricted_action`, `missing_scope`, …)."""

    name: str
    id: str | None = None
    error: str | None = None


@runtime_checkable
class ChannelMaker(Protocol):
    """A notifier that can make channels (`[incidents] channel_per_incident`): Slack's
    `conversations.create` and `conversations.invite`. The console cannot; the incident
    then keeps its thread in the incidents channel."""

    def create_channel(self, name: str, members: Sequence[str]) -> NewChannel:
        """A new public channel called `name` (`name-2`, `name-3`… when it is taken), the
        bot in it, and `members` (Slack user ids) invited; one that cannot be invited is
        left out (logged). Never raises: a channel Slack refused is `error`."""
        ...
