"""The respond store of a runtime, and finding what a command names in it."""

from __future__ import annotations

from commands.errors import Refusal
from commands.incidents.model import AlertRecord, Incident
from commands.incidents.ports import IncidentStore
from commands.messages import did_you_mean, escape
from commands.runtime import Runtime

INCIDENT_ID = "INC-"
ALERT_ID = "ALERT-"


def store_of(rt: Runtime) -> IncidentStore:
    if rt.incidents is None:
        raise Refusal("incidents have no store in this runtime", code="unavailable")
    return rt.incidents


def find_incident(rt: Runtime, ref: str | None, usage: str) -> Incident:
    """The incident a command names (`INC-12`, any case); a refusal naming the closest
    known ids otherwise."""
    if not ref:
        raise Refusal(
            "which incident?",
            f"Usage: `{usage}` — an incident id like `INC-3`; `/aiops incident list` lists them.",
            code="malformed",
        )
    store = store_of(rt)
    found = store.get_incident(ref)
    if found is not None:
        return found
    known = [i.id for i in store.list_incidents()[:200]]
    close = did_you_mean(ref.strip().upper(), known) if ref.upper().startswith(INCIDENT_ID) else ""
    return _unknown(f"no incident `{escape(ref)}`{close}", known)


def _unknown(message: str, known: list[str]) -> Incident:
    open_ones = ", ".join(f"`{i}`" for i in known[:5]) or "none yet"
    raise Refusal(
        message,
        f"Recent incidents: {open_ones}. `/aiops incident list` lists them.",
        code="not_found",
    )


def find_alert(rt: Runtime, ref: str) -> AlertRecord:
    found = store_of(rt).get_alert(ref)
    if found is None:
        raise Refusal(
            f"no alert `{escape(ref)}`",
            "Alert ids are on the alert's message in the ops channel (`ALERT-12`).",
            code="not_found",
        )
    return found
