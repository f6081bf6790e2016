"""An incident from declared to resolved: status updates, severity changes, acknowledge
(of an incident or of an alert), mitigated, resolved with its root cause.

Every move is a compare-and-set on the incident's `rev` (a double click, two replicas or
two people at once move it once; the later one is told how it stands), audited with the
incident and alert ids, told in the incident's thread, drawn on its card, and followed by
the pager: acknowledge → acknowledge, resolve → resolve, raised to P1 / P2 → trigger."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from commands.audit import AuditAction
from commands.errors import Refusal
from commands.incidents.alerts import acknowledge_alert
from commands.incidents.cards import SUMMARY_MAX, incident_card
from commands.incidents.model import Incident, IncidentState
from commands.incidents.pager import PageAction
from commands.incidents.paging import page_later
from commands.incidents.people import require_responder
from commands.incidents.records import ALERT_ID, find_alert, find_incident, store_of
from commands.incidents.severity import parse_severity
from commands.incidents.thread import line, refresh_card
from commands.messages import Context, Reply, escape, mention, when
from commands.model import Actor
from commands.runtime import Runtime

_TRIES = 5

# What a move sets on the incident as it finds it; None: nothing to do (already so).
Fields = Callable[[Incident], dict[str, Any] | None]


def move(rt: Runtime, incident: Incident, fields: Fields) -> tuple[Incident, bool]:
    """Compare-and-set `fields(incident)` on the incident, reading it again after a lost
    race; (the incident as it stands, whether this call moved it). `fields` may raise a
    `Refusal` (the incident is no longer in a state for it)."""
    store = store_of(rt)
    for _ in range(_TRIES):
        wanted = fields(incident)
        if wanted is None:
            return incident, False
        moved = store.update_incident(incident.id, incident.rev, **wanted)
        if moved is not None:
            return moved, True
        fresh = store.get_incident(incident.id)
        if fresh is None:
            break
        incident = fresh
    raise Refusal(
        f"{incident.id} is being changed by others just now; nothing was done",
        f"Look again with `/aiops incident show {incident.id}` and try again.",
        code="busy",
    )


def _params(incident: Incident, **extra: Any) -> dict[str, Any]:
    return {"incident": incident.id, "alert": incident.alert_id} | extra


def _audit(
    rt: Runtime,
    action: AuditAction,
    actor_id: str,
    incident: Incident,
    outcome: str,
    request_id: str | None,
    justification: str | None = None,
    **params: Any,
) -> None:
    rt.auditor.record(
        action,
        actor_id,
        outcome,
        environment=incident.environment,
        target=incident.endpoint,
        request_id=request_id,
        justification=justification,
        parameters=_params(incident, **params),
    )


def _resolved(incident: Incident, verb: str) -> Refusal:
    return Refusal(
        f"{incident.id} is resolved; nothing to {verb}",
        "A new problem is a new incident: `/aiops incident declare …`.",
        code="resolved",
    )


def _shown(rt: Runtime, incident: Incident, note: str) -> Reply:
    card = incident_card(incident, rt.config, buttons=False)
    return Reply(text=note, blocks=[*card.blocks, Context((note,))])


def _open(rt: Runtime, actor: Actor, ref: str | None, usage: str, verb: str) -> Incident:
    incident = find_incident(rt, ref, usage)
    require_responder(rt, actor, incident.environment, verb)
    if not incident.state.is_open:
        raise _resolved(incident, verb)
    return incident


# --- update, severity -----------------------------------------------------------------


def update(
    rt: Runtime, actor: Actor, ref: str | None, text: str | None, request_id: str | None
) -> Reply:
    usage = '/aiops incident update INC-N "what changed"'
    incident = _open(rt, actor, ref, usage, "update")
    text = (text or "").strip()
    if not text:
        raise Refusal("an update needs its text", f"Usage: `{usage}`", code="malformed")
    if len(text) > 4 * SUMMARY_MAX:
        raise Refusal(
            f"the update is {len(text):,} characters long; the limit is {4 * SUMMARY_MAX:,}",
            "Post long details in the thread itself.",
            code="too_long",
        )
    _audit(rt, AuditAction.INCIDENT_UPDATED, actor.id, incident, "update", request_id, text=text)
    line(rt, incident, f":memo: {mention(actor.id)}: {escape(text)}")
    return Reply.info(f"Posted to {incident.id}'s thread.")


def change_severity(
    rt: Runtime,
    actor: Actor,
    ref: str | None,
    typed: str | None,
    reason: str | None,
    request_id: str | None,
) -> Reply:
    usage = '/aiops incident severity INC-N P1|P2|P3 [reason="…"]'
    incident = _open(rt, actor, ref, usage, "change the severity of")
    new = parse_severity(typed, usage)

    def fields(current: Incident) -> dict[str, Any] | None:
        if not current.state.is_open:
            raise _resolved(current, "change")
        if current.severity is new:
            raise Refusal(f"{current.id} is {new.value} already", code="unchanged")
        return {"severity": new}

    old = incident.severity
    incident, _ = move(rt, incident, fields)
    raised = new.rank < old.rank
    _audit(
        rt,
        AuditAction.INCIDENT_SEVERITY,
        actor.id,
        incident,
        f"{old.value} → {new.value}",
        request_id,
        justification=reason,
        **{"from": old.value, "to": new.value},
    )
    why = f": {escape(reason)}" if reason else ""
    line(
        rt,
        incident,
        f":{'arrow_up' if raised else 'arrow_down'}: {mention(actor.id)} changed the severity"
        f" {old.value} → {new.value}{why}.",
    )
    refresh_card(rt, incident)
    paging = ""
    if raised and new.pages:
        page_later(rt, incident, PageAction.TRIGGER, actor.id)  # after this reply
        paging = " Paging the on-call: the thread says when it is delivered."
    return _shown(rt, incident, f"{incident.id} is now {new.value}.{paging}")


# --- acknowledge, mitigated, resolve ----------------------------------------------------


def acknowledge(rt: Runtime, actor: Actor, ref: str | None, request_id: str | None) -> Reply:
    """`/aiops incident ack <INC-N|ALERT-N>` and the Acknowledge buttons. An alert's
    acknowledgement acknowledges its incident too, and the other way round."""
    usage = "/aiops incident ack <INC-N|ALERT-N>"
    if ref and ref.strip().upper().startswith(ALERT_ID):
        return _acknowledge_alert(rt, actor, ref, request_id)
    incident = _open(rt, actor, ref, usage, "acknowledge")
    incident, moved = acknowledge_incident(rt, actor, incident, request_id)
    if not moved:
        return _shown(rt, incident, f"{incident.id} was acknowledged already ({incident.state}).")
    return _shown(rt, incident, f"Acknowledged {incident.id}.")


def acknowledge_incident(
    rt: Runtime, actor: Actor, incident: Incident, request_id: str | None
) -> tuple[Incident, bool]:
    """Acknowledge `incident` (audited, told, the pager and its alert following); (the
    incident as it stands, whether this call acknowledged it)."""
    now = rt.clock()

    def fields(current: Incident) -> dict[str, Any] | None:
        if not current.state.is_open:
            raise _resolved(current, "acknowledge")
        if current.state is not IncidentState.DECLARED:
            return None
        return {
            "state": IncidentState.ACKNOWLEDGED,
            "acknowledged_at": now,
            "on_call": current.on_call or actor.id,
        }

    incident, moved = move(rt, incident, fields)
    if not moved:
        return incident, False
    _audit(
        rt,
        AuditAction.INCIDENT_ACKNOWLEDGED,
        actor.id,
        incident,
        "acknowledged",
        request_id,
        on_call=incident.on_call,
    )
    line(rt, incident, f":eyes: {mention(actor.id)} acknowledged {incident.id}.")
    refresh_card(rt, incident)
    page_later(rt, incident, PageAction.ACKNOWLEDGE, actor.id)
    if incident.alert_id:
        alert = store_of(rt).get_alert(incident.alert_id)
        if alert is not None and alert.acknowledged_by is None:
            acknowledge_alert(rt, alert, actor.id)
    return incident, True


def _acknowledge_alert(rt: Runtime, actor: Actor, ref: str, request_id: str | None) -> Reply:
    alert = find_alert(rt, ref)
    require_responder(rt, actor, alert.notice.environment, "acknowledge")
    acked = acknowledge_alert(rt, alert, actor.id)
    notes = []
    if acked is None:
        fresh = store_of(rt).get_alert(alert.id) or alert
        by = mention(fresh.acknowledged_by) if fresh.acknowledged_by else "someone"
        notes.append(
            f"{alert.id} was acknowledged already by {by}"
            f" at {when(fresh.acknowledged_at, rt.config.timezone)}."
        )
        alert = fresh
    else:
        alert = acked
        notes.append(f"Acknowledged {alert.id}.")
    if alert.incident_id:
        incident = store_of(rt).get_incident(alert.incident_id)
        if incident is not None and incident.state is IncidentState.DECLARED:
            acknowledge_incident(rt, actor, incident, request_id)
            notes.append(f"Its incident {incident.id} too.")
    elif acked is not None:
        notes.append(
            f"No incident was declared from it; declare one with the alert's Declare button or"
            f" `/aiops incident declare {alert.notice.endpoint or ''} sev=… alert={alert.id}`."
        )
    return Reply.info(" ".join(notes))


def mitigated(rt: Runtime, actor: Actor, ref: str | None, request_id: str | None) -> Reply:
    """Impact has stopped (traffic restored, the canary rolled back); the root cause is
    still to be found. Also acknowledges an incident nobody had."""
    usage = "/aiops incident mitigated INC-N"
    incident = _open(rt, actor, ref, usage, "mark mitigated")
    now = rt.clock()
    was_acknowledged = incident.acknowledged_at is not None

    def fields(current: Incident) -> dict[str, Any] | None:
        if not current.state.is_open:
            raise _resolved(current, "mark mitigated")
        if current.state is IncidentState.MITIGATED:
            return None
        out: dict[str, Any] = {"state": IncidentState.MITIGATED, "mitigated_at": now}
        if current.acknowledged_at is None:
            out |= {"acknowledged_at": now, "on_call": current.on_call or actor.id}
        return out

    incident, moved = move(rt, incident, fields)
    if not moved:
        return _shown(rt, incident, f"{incident.id} was marked mitigated already.")
    _audit(rt, AuditAction.INCIDENT_MITIGATED, actor.id, incident, "mitigated", request_id)
    line(
        rt,
        incident,
        f":adhesive_bandage: {mention(actor.id)} marked {incident.id} mitigated: impact"
        f' stopped. Resolve it with its root cause: `/aiops incident resolve {incident.id} cause="…"`.',
    )
    refresh_card(rt, incident)
    if not was_acknowledged:
        page_later(rt, incident, PageAction.ACKNOWLEDGE, actor.id)
    return _shown(rt, incident, f"{incident.id} is mitigated.")


def resolve(
    rt: Runtime, actor: Actor, ref: str | None, cause: str | None, request_id: str | None
) -> Reply:
    usage = '/aiops incident resolve INC-N cause="the root cause, in a line"'
    incident = _open(rt, actor, ref, usage, "resolve")
    cause = (cause or "").strip()
    if not cause:
        raise Refusal(
            f"resolving {incident.id} needs its root cause",
            f'Add `cause="…"` (the review starts from it), e.g. `{usage}`. If it is not'
            f" known yet, mark it mitigated: `/aiops incident mitigated {incident.id}`.",
            code="missing_cause",
        )
    if len(cause) > SUMMARY_MAX:
        raise Refusal(
            f"the cause is {len(cause):,} characters long; the limit is {SUMMARY_MAX}",
            "One line; the review holds the details.",
            code="too_long",
        )
    now = rt.clock()

    def fields(current: Incident) -> dict[str, Any] | None:
        if not current.state.is_open:
            raise _resolved(current, "resolve")
        return {"state": IncidentState.RESOLVED, "resolved_at": now, "root_cause": cause}

    incident, _ = move(rt, incident, fields)
    detected = incident.detected_at or incident.declared_at
    _audit(
        rt,
        AuditAction.INCIDENT_RESOLVED,
        actor.id,
        incident,
        "resolved",
        request_id,
        justification=cause,
        root_cause=cause,
        minutes_to_resolve=int((now - detected).total_seconds() // 60),
    )
    line(
        rt,
        incident,
        f":white_check_mark: {mention(actor.id)} resolved {incident.id}."
        f" Root cause: {escape(cause)}",
    )
    refresh_card(rt, incident)
    page_later(rt, incident, PageAction.RESOLVE, actor.id)
    return _shown(rt, incident, f"Resolved {incident.id}.")
