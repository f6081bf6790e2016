"""The respond vocabulary: alerts (what a monitor or the bot noticed), incidents (what
people declared and run to resolution), their timeline, and on-call hand-off notes.

Terms follow SRE practice (Google SRE Workbook, "Incident Response"; PagerDuty Incident
Response docs): an *alert* fires and closes on its own; an *incident* is declared by a
person, has a severity (P1 highest), a commander and an on-call, and is acknowledged,
mitigated and resolved by people. Every text field here has already passed
`commands.text.admit` / `outbound` (masked): nothing in these records is raw input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Severity(StrEnum):
    """The team's rules: P1 a prod customer-facing endpoint failing or breaching errors;
    P2 prod degraded; P3 non-prod or no customer impact."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"

    @property
    def rank(self) -> int:
        """1 for P1 (the highest), 2, 3: a raise is a move to a smaller rank."""
        return int(self.value[1:])

    @property
    def pages(self) -> bool:
        """P1 and P2 page the on-call (when a pager is configured)."""
        return self in (Severity.P1, Severity.P2)

    @property
    def pager_severity(self) -> str:
        """PagerDuty Events API v2 `payload.severity`."""
        return {"P1": "critical", "P2": "error", "P3": "warning"}[self.value]


class AlertSource(StrEnum):
    CLOUD_MONITORING = "cloud-monitoring"  # Cloud Monitoring's webhook channel
    HEALTH_WATCH = "health-watch"  # the bot's scheduled watch of [thresholds]
    CANARY = "canary"  # a canary breach under the `page` policy


class AlertState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class AlertNotice:
    """One notification about an alert, as it arrived (before it is stored).

    `key` identifies the alert across retries, replicas and its open/closed
    notifications: `<source>:<id at the source>` (Cloud Monitoring's
    `incident.incident_id`; the bot's own: endpoint and condition). `endpoint` is the
    config slug it was mapped to, None when no mapping matched. Times are UTC.
    `observed` is the figure that breached, in words with units ("P95 2,340 ms > 2,000 ms")."""

    key: str
    source: AlertSource
    state: AlertState
    policy: str
    condition: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    endpoint: str | None = None
    environment: str | None = None
    summary: str = ""
    observed: str = ""
    url: str | None = None
    documentation: str = ""
    labels: dict[str, str] = field(default_factory=dict)  # resource + policy user labels


@dataclass(frozen=True)
class AlertRecord:
    """A stored alert: its latest notice, where its message is, and what came of it."""

    id: str  # ALERT-N
    notice: AlertNotice
    received_at: datetime
    updated_at: datetime
    channel: str | None = None  # its message in the ops channel, once posted
    message_ts: str | None = None
    acknowledged_by: str | None = None  # Slack id
    acknowledged_at: datetime | None = None
    incident_id: str | None = None  # INC-N declared from it
    # When the bot took the alert as closed (its message updated, `alert_closed` audited):
    # set once, by compare-and-set, whichever replica got the closing notice first.
    closed_at: datetime | None = None
    # When the bot triggered the pager for the alert itself (the canary `page` policy; an
    # incident's pages are the incident's): its acknowledgement and close then follow
    # there. None: never paged, so nothing is sent when it is acknowledged or closed.
    paged_at: datetime | None = None
    # The claim on posting its message: taken (compare-and-set) before the post by
    # `posting_by` (a worker's name), held until `posting_until`; a worker that died
    # holding it leaves the post to the next one once it has expired.
    posting_by: str | None = None
    posting_until: datetime | None = None
    rev: int = 0


class IncidentState(StrEnum):
    DECLARED = "declared"  # open, nobody has acknowledged
    ACKNOWLEDGED = "acknowledged"  # open, someone is on it
    MITIGATED = "mitigated"  # open, impact stopped, root cause not yet fixed
    RESOLVED = "resolved"

    @property
    def is_open(self) -> bool:
        return self is not IncidentState.RESOLVED


@dataclass(frozen=True)
class Incident:
    id: str  # INC-N
    severity: Severity
    state: IncidentState
    summary: str
    declared_by: str  # Slack id
    declared_at: datetime
    endpoint: str | None = None
    environment: str | None = None
    commander: str | None = None  # Slack id
    on_call: str | None = None  # Slack id
    suggested_severity: Severity | None = None  # from the alert; a person decides
    alert_id: str | None = None  # ALERT-N it was declared from
    detected_at: datetime | None = None  # the alert's start, or the declaration
    acknowledged_at: datetime | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    root_cause: str | None = None
    channel: str | None = None  # its thread (or its own channel)
    thread_ts: str | None = None
    runbook: str | None = None  # a link, when [runbooks] names one
    # When the pager was first triggered for it (a P1/P2 declared, or raised to one);
    # None: never paged, so an acknowledge or resolve sends the pager nothing.
    paged_at: datetime | None = None
    rev: int = 0


@dataclass(frozen=True)
class Handoff:
    """An on-call hand-off note (`/aiops handoff "…"`), masked."""

    id: int
    author: str  # Slack id
    at: datetime
    text: str
    environment: str | None = None
