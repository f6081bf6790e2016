"""Changes made under an incident: every change requested while an incident is open on its
endpoint is linked to it (the newest open one, when several are). The link is the
change's `plan.incident`, so every audit row of the change names the incident
(`commands.audit.Auditor.record`), plus one `incident_linked` row; the incident's thread
gets a line when the change is requested, starts and finishes.

`commands.changes.lifecycle.open_change` (every change, people's and the bot's) and
`commands.changes.execute` call in here; nothing here calls back into them."""

from __future__ import annotations

from commands.audit import AuditAction
from commands.incidents.model import Incident
from commands.incidents.thread import line
from commands.messages import mention
from commands.model import Change
from commands.runtime import Runtime


def open_incident(rt: Runtime, endpoint: str | None) -> Incident | None:
    """The newest incident open on `endpoint`; None without one (or without a store)."""
    if rt.incidents is None or not endpoint:
        return None
    found = rt.incidents.open_incidents_for(endpoint)
    return found[0] if found else None


def mark(rt: Runtime, change: Change) -> Incident | None:
    """Before the change is stored: name the incident open on its endpoint in its plan."""
    incident = open_incident(rt, change.endpoint)
    if incident is not None:
        change.plan.incident = incident.id
    return incident


def linked(rt: Runtime, change: Change, incident: Incident, actor_id: str) -> None:
    """After the change is stored: audit the link and say so in the incident's thread."""
    rt.auditor.record(
        AuditAction.INCIDENT_LINKED,
        actor_id,
        f"{change.id} linked to {incident.id}",
        change=change,
        parameters={
            "incident": incident.id,
            "alert": incident.alert_id,
            "change": change.id,
            "kind": change.kind.value,
        },
    )
    line(
        rt,
        incident,
        f":link: {change.id}: {change.kind.value} of `{change.endpoint}` requested by"
        f" {mention(change.requester_id)} (linked to {incident.id}).",
    )


def moved(rt: Runtime, change: Change, text: str) -> None:
    """A line in the linked incident's thread as the change starts or finishes."""
    if not change.plan.incident or rt.incidents is None:
        return
    incident = rt.incidents.get_incident(change.plan.incident)
    if incident is not None:
        line(rt, incident, text)
