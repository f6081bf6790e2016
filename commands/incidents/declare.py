"""TRIAGE: declaring an incident, typed or from an alert's Declare form (the form's
submission is this same typed command, `alert=ALERT-N` included).

`/aiops incident declare [endpoint] sev=P1|P2|P3 summary="…" [commander=@x] [oncall=@y]
[alert=ALERT-N]`: an `INC-N` with the severity the person chose (the rule's suggestion
shown beside it), its card at the head of its own thread in the incidents channel (or a
channel of its own), the alert it came from marked, and for P1 / P2 a page."""

from __future__ import annotations

import re

from commands.audit import AuditAction
from commands.errors import Refusal
from commands.incidents.alerts import attach_incident
from commands.incidents.cards import SUMMARY_MAX, incident_card
from commands.incidents.model import AlertRecord, Incident, IncidentState, Severity
from commands.incidents.pager import PageAction
from commands.incidents.paging import page_later
from commands.incidents.people import person, require_responder
from commands.incidents.ports import AlertDeclared, ChannelMaker
from commands.incidents.records import find_alert, store_of
from commands.incidents.runbooks import runbook_for
from commands.incidents.settings import incident_settings
from commands.incidents.severity import parse_severity, suggest_for_alert, suggest_for_health
from commands.messages import Context, Post, Reply, Text, escape, mention
from commands.model import Invocation
from commands.parsing import Args
from commands.ports import Delivery, PlatformError
from commands.runtime import Runtime

USAGE = (
    '/aiops incident declare [endpoint] sev=P1|P2|P3 summary="…"'
    " [commander=@name] [oncall=@name] [alert=ALERT-N]"
)
_TRIES = 5


def _summary(args: Args, alert: AlertRecord | None) -> str:
    text = (args.options.get("summary") or "").strip()
    if not text and alert is not None:
        text = alert.notice.policy + (f": {alert.notice.summary}" if alert.notice.summary else "")
    if not text:
        raise Refusal(
            "an incident needs a summary: what is wrong, in a line",
            f'Add `summary="…"`, e.g. `summary="loan-assessor 5xx since 14:05"`. `{USAGE}`',
            code="malformed",
        )
    if len(text) > SUMMARY_MAX:
        raise Refusal(
            f"the summary is {len(text):,} characters long; the limit is {SUMMARY_MAX}",
            "One line: what is wrong. Post the details in the incident's thread.",
            code="too_long",
        )
    return text


def _suggested(
    rt: Runtime, endpoint: str | None, alert: AlertRecord | None
) -> tuple[Severity, str]:
    if alert is not None:
        return suggest_for_alert(rt.config, alert.notice)
    health = None
    ep = rt.config.endpoints.get(endpoint or "")
    if ep is not None:
        try:
            health = rt.platform.health([ep]).get(ep.slug)
        except PlatformError:
            health = None  # the rule then reads "not about errors"
    return suggest_for_health(rt.config, endpoint, health)


def declare(rt: Runtime, inv: Invocation, args: Args) -> Reply:
    """Declare an incident. Refused (state untouched): a person who may not respond
    there, an unknown endpoint (with the closest names) or alert, a missing severity
    (with the suggestion) or summary, an alert already declared, an endpoint that already
    has an open incident (update that one)."""
    store = store_of(rt)
    actor = inv.actor
    alert = find_alert(rt, args.options["alert"]) if args.options.get("alert") else None
    slug = args.positionals[1] if len(args.positionals) > 1 else None
    if slug is None and alert is not None:
        slug = alert.notice.endpoint
    ep = rt.endpoint(slug, USAGE) if slug else None
    environment = ep.environment if ep else None
    require_responder(rt, actor, environment, "declare")
    if alert is not None and alert.incident_id:
        raise _already(rt, alert.id, alert.incident_id)
    suggested, why = _suggested(rt, ep.slug if ep else None, alert)
    if not args.options.get("sev"):
        raise Refusal(
            f"which severity? Suggested: *{suggested.value}* ({why})",
            f"A person decides: add `sev={suggested.value}` (or another). `{USAGE}`",
            code="malformed",
        )
    severity = parse_severity(args.options["sev"], USAGE)
    summary = _summary(args, alert)
    commander = person(rt, args.options.get("commander"), "commander") or actor.id
    on_call = person(rt, args.options.get("oncall"), "on-call")
    if ep is not None:
        held = store.open_incidents_for(ep.slug)
        if held:
            open_one = held[0]
            raise Refusal(
                f"`{ep.slug}` already has an open incident: {open_one.id}"
                f" ({open_one.severity.value}, {open_one.state.value}, declared by"
                f" {mention(open_one.declared_by)})",
                f'Add to it: `/aiops incident update {open_one.id} "…"`, or change its severity'
                f" with `/aiops incident severity {open_one.id} P1`.",
                code="incident_open",
            )
    now = rt.clock()
    try:
        incident = store.create_incident(
            Incident(
                id="",
                severity=severity,
                state=IncidentState.DECLARED,
                summary=summary,
                declared_by=actor.id,
                declared_at=now,
                endpoint=ep.slug if ep else None,
                environment=environment,
                commander=commander,
                on_call=on_call,
                suggested_severity=suggested,
                alert_id=alert.id if alert else None,
                detected_at=(alert.notice.started_at or alert.received_at) if alert else now,
                runbook=runbook_for(
                    rt.config, alert.notice.policy if alert else None, ep.slug if ep else None
                ),
            )
        )
    except AlertDeclared as taken:  # a second Declare on the same alert, a moment later
        raise _already(rt, taken.incident.alert_id or "", taken.incident.id) from None
    rt.auditor.record(
        AuditAction.INCIDENT_DECLARED,
        actor.id,
        f"declared {severity.value}",
        environment=environment,
        target=incident.endpoint,
        request_id=inv.request_id,
        justification=summary,
        parameters={
            "incident": incident.id,
            "alert": incident.alert_id,
            "severity": severity.value,
            "suggested_severity": suggested.value,
            "rule": why,
            "commander": commander,
            "on_call": on_call,
            "detected_at": incident.detected_at.isoformat() if incident.detected_at else None,
        },
    )
    if alert is not None:
        attach_incident(rt, alert, incident.id)
    incident, delivery, where = _post_card(rt, incident)
    if severity.pages:
        page_later(rt, incident, PageAction.TRIGGER, actor.id)  # after the reply
    return _declared_reply(rt, incident, suggested, why, delivery, where)


def _already(rt: Runtime, alert_id: str, incident_id: str) -> Refusal:
    found = store_of(rt).get_incident(incident_id)
    by = f" by {mention(found.declared_by)}" if found else ""
    return Refusal(
        f"{alert_id} was already declared as {incident_id}{by}",
        f'Follow it in its thread, or add to it: `/aiops incident update {incident_id} "…"`.',
        code="already_declared",
    )


_CHANNEL_NAME = re.compile(r"[^a-z0-9_-]+")


def channel_name(incident: Incident) -> str:
    """`inc-12-loan-assessor`: Slack's rules (lowercase letters, digits, `-` and `_`, at
    most 80 characters)."""
    base = f"{incident.id}-{incident.endpoint}" if incident.endpoint else incident.id
    return _CHANNEL_NAME.sub("-", base.lower()).strip("-")[:80]


def _post_card(rt: Runtime, incident: Incident) -> tuple[Incident, Delivery, str]:
    """Post the incident's card where its thread lives and remember where: its own
    channel when configured (announced in the incidents channel), else the incidents
    channel. Returns the incident as stored, the card's delivery and where it went."""
    settings = incident_settings(rt.config)
    channel = settings.channel
    note = ""
    if settings.channel_per_incident:
        maker = rt.notifier if isinstance(rt.notifier, ChannelMaker) else None
        members = sorted({p for p in (incident.commander, incident.on_call) if p})
        made = maker.create_channel(channel_name(incident), members) if maker else None
        if made is not None and made.id:
            channel = made.id
        else:
            why = made.error if made is not None else "this notifier cannot make channels"
            note = f" (a channel of its own could not be made: {escape(why or 'unknown')})"
            rt.auditor.record(
                AuditAction.INCIDENT_UPDATED,
                "bot",
                f"no channel of its own: {why}",
                environment=incident.environment,
                target=incident.endpoint,
                parameters={"incident": incident.id, "alert": incident.alert_id, "error": why},
            )
    delivery = rt.notifier.deliver(Post(channel, incident_card(incident, rt.config)))
    if delivery.ref is not None:
        for _ in range(_TRIES):
            moved = store_of(rt).update_incident(
                incident.id, incident.rev, channel=delivery.ref.channel, thread_ts=delivery.ref.ts
            )
            if moved is not None:
                incident = moved
                break
            fresh = store_of(rt).get_incident(incident.id)
            if fresh is None:
                break
            incident = fresh
        if channel != settings.channel:  # its own channel: say where in the incidents one
            text = (
                f":rotating_light: {incident.id} ({incident.severity.value}) declared"
                f" by {mention(incident.declared_by)}: {escape(incident.summary)}"
                f" — follow it in <#{channel}>."
            )
            rt.notifier.post(
                Post(settings.channel, Reply(text=text, blocks=[Text(text)], ephemeral=False))
            )
    return incident, delivery, f"<#{channel}>{note}"


def _declared_reply(
    rt: Runtime,
    incident: Incident,
    suggested: Severity,
    why: str,
    delivery: Delivery,
    where: str,
) -> Reply:
    card = incident_card(incident, rt.config, buttons=False)
    lines = [f"Declared {incident.id}; its thread is in {where}."]
    if suggested is not incident.severity:
        lines.append(
            f"You chose {incident.severity.value}; the rule suggested {suggested.value} ({why})."
        )
    if delivery.error is not None:
        lines.append(
            f":warning: Its card did not arrive (Slack said `{escape(delivery.error)}`):"
            " invite the bot to the incidents channel (`/invite @aiops-bot`)."
            f" The incident stands; follow it with `/aiops incident show {incident.id}`."
        )
    if incident.severity.pages:
        if rt.pager.name == "none":
            lines.append("Paging is off: an @here goes in the thread.")
        else:
            lines.append(
                f"Paging the on-call ({rt.pager.name}): the thread says when it is delivered."
            )
    return Reply(
        text=f"{incident.id} declared ({incident.severity.value})",
        blocks=[*card.blocks, Context(tuple(lines))],
    )
