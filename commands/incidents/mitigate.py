"""MITIGATE from an incident or an alert: its Roll back, Pause canary and Scale up
buttons, and their typed forms. They go through the same machinery as typed commands
(`/rollback` and `/aiops scale` through `commands.changes.request`, the canary's pause),
under the same rules: a rollback runs at once in production (mitigation first) and is
announced where approvers look; a scale-up is a change approved as configured (more
replicas cost money; the approver sees the cost a day before → after). The change is linked to the incident open on the endpoint
(`commands.incidents.links`), so its audit rows and the incident's thread say so."""

from __future__ import annotations

from commands.audit import AuditAction
from commands.canary.commands import pause
from commands.changes.request import request_change, spec_of
from commands.errors import Refusal
from commands.incidents.links import open_incident
from commands.incidents.model import Incident, IncidentState
from commands.incidents.people import require_responder
from commands.incidents.progress import acknowledge_incident
from commands.incidents.records import ALERT_ID, find_alert, find_incident
from commands.incidents.thread import line
from commands.messages import Context, Reply, escape, mention
from commands.model import ChangeKind, Invocation
from commands.parsing import parse
from commands.runtime import Runtime

ROLLBACK_USAGE = '/aiops incident rollback <INC-N|ALERT-N> [reason="…"]'
PAUSE_USAGE = "/aiops incident pause INC-N"
SCALE_USAGE = '/aiops incident scale <INC-N|ALERT-N> [reason="…"]'


def _quoted(text: str) -> str:
    """A value the command parser reads back as written (`commands.parsing`)."""
    body = text.replace("\\", "/").replace('"', '\\"')
    return f'"{body}"'


def _target(rt: Runtime, ref: str | None, usage: str) -> tuple[str, Incident | None, str]:
    """The endpoint a mitigation acts on, the incident it serves (if any) and the name of
    what was clicked (`INC-3`, `ALERT-2`)."""
    if ref and ref.strip().upper().startswith(ALERT_ID):
        alert = find_alert(rt, ref)
        if not alert.notice.endpoint:
            raise Refusal(
                f"{alert.id} is not mapped to an endpoint; nothing to roll back",
                'Roll back the endpoint you mean: `/rollback <endpoint> reason="…"`.',
                code="no_endpoint",
            )
        incident = (
            rt.incidents.get_incident(alert.incident_id)
            if (rt.incidents and alert.incident_id)
            else None
        )
        return alert.notice.endpoint, incident, alert.id
    incident = find_incident(rt, ref, usage)
    if not incident.state.is_open:
        raise Refusal(
            f"{incident.id} is resolved; a mitigation now is a change of its own",
            'Type it: `/rollback <endpoint> reason="…"` or `/aiops pause <endpoint>`.',
            code="resolved",
        )
    if not incident.endpoint:
        raise Refusal(
            f"{incident.id} names no endpoint; nothing to act on",
            'Type the mitigation with its endpoint: `/rollback <endpoint> reason="…"`.',
            code="no_endpoint",
        )
    return incident.endpoint, incident, incident.id


def _on_it(rt: Runtime, inv: Invocation, incident: Incident | None) -> None:
    """Whoever mitigates an incident nobody had acknowledged is on it: acknowledged."""
    if incident is not None and incident.state is IncidentState.DECLARED:
        fresh = rt.incidents.get_incident(incident.id) if rt.incidents else None
        if fresh is not None and fresh.state is IncidentState.DECLARED:
            acknowledge_incident(rt, inv.actor, fresh, inv.request_id)


def rollback(rt: Runtime, inv: Invocation, ref: str | None, reason: str | None) -> Reply:
    """`/rollback <endpoint>` on the endpoint of the incident or alert, with the reason
    naming it: the same request, checks, approval policy and audit as if typed."""
    endpoint, incident, name = _target(rt, ref, ROLLBACK_USAGE)
    why = reason or f"mitigation of {name}" + (
        f" ({incident.severity.value})" if incident is not None else ""
    )
    typed = Invocation(
        actor=inv.actor,
        command="/rollback",
        text=f"{endpoint} reason={_quoted(why)}",
        channel_id=inv.channel_id,
        request_id=inv.request_id,
    )
    under = open_incident(rt, endpoint)  # what `open_change` links the rollback to
    reply = request_change(rt, ChangeKind.ROLLBACK, typed)
    _on_it(rt, inv, incident)
    if under is not None:
        reply.blocks.append(Context((f"Linked to {under.id}: its thread follows the rollback.",)))
    return reply


def pause_canary(rt: Runtime, inv: Invocation, ref: str | None) -> Reply:
    """The canary on the incident's endpoint stops its checks, steps and automatic
    rollback (`/aiops pause`), recorded against the incident."""
    endpoint, incident, name = _target(rt, ref, PAUSE_USAGE)
    environment = (
        rt.config.endpoints[endpoint].environment if endpoint in rt.config.endpoints else None
    )
    require_responder(rt, inv.actor, environment, "pause canaries for")
    reply = pause(rt, inv.actor, endpoint, f"mitigation of {name}")
    _on_it(rt, inv, incident)
    if incident is not None:
        rt.auditor.record(
            AuditAction.INCIDENT_LINKED,
            inv.actor.id,
            f"canary on {endpoint} paused under {incident.id}",
            environment=incident.environment,
            target=endpoint,
            request_id=inv.request_id,
            parameters={"incident": incident.id, "alert": incident.alert_id, "action": "pause"},
        )
        line(
            rt,
            incident,
            f":double_vertical_bar: {mention(inv.actor.id)} paused the canary on `{endpoint}`"
            f" for {incident.id}.",
        )
    return reply


def scale_up(rt: Runtime, inv: Invocation, ref: str | None, reason: str | None) -> Reply:
    """`/aiops scale <endpoint> <version> min=N+1 max=M` for the version taking the most
    traffic on the incident's endpoint: one more replica always held (`min`), and `max`
    raised to match if it was lower, within `[endpoints.X] max_replicas`. Refused, saying
    so, when the endpoint serves nothing or already holds its configured maximum."""
    endpoint, incident, name = _target(rt, ref, SCALE_USAGE)
    ep = rt.endpoint(endpoint, SCALE_USAGE)
    state = rt.platform.endpoint_state(ep)
    serving = max(state.deployed, key=lambda d: state.traffic.get(d.id, 0), default=None)
    if serving is None or not state.traffic.get(serving.id):
        raise Refusal(
            f"`{endpoint}` serves no traffic; there is nothing to scale up",
            "Roll back or deploy first: `/aiops status " + endpoint + "` shows what it holds.",
            code="nothing_serving",
        )
    new_min = serving.replicas + 1
    if new_min > ep.max_replicas:
        raise Refusal(
            f"`{endpoint}` {escape(serving.version.version)} already holds"
            f" {serving.replicas} replica(s), its configured maximum is {ep.max_replicas}",
            f"Raise `[endpoints.{endpoint}] max_replicas` (a config change), or roll back:"
            f" `/aiops incident rollback {name}`.",
            code="at_max_replicas",
        )
    new_max = min(max(serving.max_replicas or new_min, new_min), ep.max_replicas)
    why = reason or f"mitigation of {name}" + (
        f" ({incident.severity.value})" if incident is not None else ""
    )
    text = f"{endpoint} {serving.version.version} min={new_min} max={new_max} reason={_quoted(why)}"
    typed = Invocation(
        actor=inv.actor,
        command="/aiops",
        text=f"scale {text}",
        channel_id=inv.channel_id,
        request_id=inv.request_id,
    )
    under = open_incident(rt, endpoint)
    spec = spec_of(ChangeKind.SCALE)
    reply = request_change(
        rt, ChangeKind.SCALE, typed, parse(text, set(spec.options), spec.positionals)
    )
    _on_it(rt, inv, incident)
    if under is not None:
        reply.blocks.append(Context((f"Linked to {under.id}: its thread follows the scale-up.",)))
    return reply
