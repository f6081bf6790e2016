"""Paging the on-call through `rt.pager` (`commands.incidents.pager`), for an incident or
for an alert the bot raised itself.

Incidents: a P1 or P2 declared, or an incident raised to one, triggers; its acknowledgement
acknowledges and its resolution resolves, if it was ever paged. Every event carries the
incident id as `dedup_key`, so a trigger sent twice is one page. With no pager
(`[incidents] pager = "none"`) the alarm is an `@here` in the incident's thread, as the
canary `page` policy's is.

Alerts (`page_alert`): the canary `page` policy pages for its alert (`dedup_key` the alert
id, severity by the suggested-severity rule); the alert's acknowledgement acknowledges
and its close resolves, if it was paged. With no pager nothing is sent: the caller keeps
its `@here`.

An incident declared from an alert the bot paged for carries on that page rather than
opening a second one (`dedup_key`): its events use the alert's id as `dedup_key`, so the
on-call keeps one alert at the pager, now about the incident (PagerDuty adds a trigger
for an open dedup key to that alert, and opens it anew if it was resolved). Once the
incident has been paged, the alert's own acknowledge and close send nothing: the page is
the incident's, resolved when the incident is, not when the canary's rollback ends.

An incident's pages go out after the command's reply (`page_later`, on the runtime's
background work): the pager's retries (seconds when it is slow) never hold the answer. A
trigger delivered records `paged_at`, then catches up with what happened to the incident
meanwhile (acknowledged or resolved before it was delivered: that is sent too), so the
pager never keeps open an alert the bot has closed. A page that work never attempted (its
process died between the reply and the send: `rt.background` is memory) is owed, and
`catch_up` — the scheduler's `pages` job, once across replicas — sends it after
`OWED_AFTER`: a trigger for an open P1/P2 never paged, an acknowledge or resolve for a
paged incident acknowledged or resolved since. "Attempted" is read from the audit (a
`page_sent`, `page_failed` or `here_posted` row for that action since the moment it was
owed), so a page that failed is not sent again (it was said, with an `@here`); a trigger
sent twice is still one page (`dedup_key`). With no pager only the trigger (the `@here`)
is ever owed; an incident resolved within `OWED_WITHIN` owes its resolve however long ago
it was declared; a trigger is owed from a raise to P1/P2 (the only change that sends one).
A trigger that runs late (queued, or the sweep's) sends nothing for a resolved incident,
and one delivered after another process recorded the page resolves again if the
incident is resolved: a late trigger never reopens the pager's alert.

Either way a page not delivered is said where the page was about (the incident's thread,
the alert's message thread), with an `@here` for a trigger so someone is alerted anyway,
and audited `page_failed`; a delivered one is audited `page_sent`; with no pager, the
incident's `@here` is audited `here_posted` (nobody was paged)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from commands.audit import AuditAction
from commands.incidents.model import AlertRecord, Incident, IncidentState, Severity
from commands.incidents.pager import Page, PageAction, PageResult
from commands.incidents.records import store_of
from commands.incidents.runbooks import runbook_for
from commands.incidents.severity import suggest_for_alert
from commands.incidents.thread import line
from commands.messages import Post, Reply, Text, escape, mention
from commands.model import BOT
from commands.ports import AuditQuery
from commands.runtime import Runtime

log = logging.getLogger(__name__)

HERE = "<!here>"  # Slack's special mention: everyone active in the channel


def runbook_links(runbook: str | None) -> tuple[tuple[str, str], ...]:
    """A page's `links`: the runbook, when it is a web link."""
    if runbook and runbook.startswith(("https://", "http://")):
        return (("Runbook", runbook),)
    return ()


def routing_environment(rt: Runtime, environment: str | None) -> str:
    """The environment whose routing key a page uses: the incident's (or alert's), or for
    one with no endpoint `prod` (else the first configured): trouble nobody scoped is
    treated as the one that matters most."""
    if environment:
        return environment
    if "prod" in rt.config.environments:
        return "prod"
    return next(iter(rt.config.environments))


def dedup_key(rt: Runtime, incident: Incident) -> str:
    """The `dedup_key` of the incident's page: `INC-N`, or the id of the alert it was
    declared from when the bot paged for that alert (see the module): one page, not two."""
    if incident.alert_id and rt.incidents is not None:
        alert = store_of(rt).get_alert(incident.alert_id)
        if alert is not None and alert.paged_at is not None:
            return alert.id
    return incident.id


def _page(rt: Runtime, incident: Incident, action: PageAction) -> Page:
    summary = f"{incident.id} {incident.severity.value}"
    if incident.endpoint:
        summary += f" {incident.endpoint}"
    summary = f"{summary}: {incident.summary}"[:1024]
    details = {
        "incident": incident.id,
        "severity": incident.severity.value,
        "state": incident.state.value,
        "declared_by": incident.declared_by,
    }
    if incident.endpoint:
        details["endpoint"] = incident.endpoint
    if incident.alert_id:
        details["alert"] = incident.alert_id
    if incident.commander:
        details["commander"] = incident.commander
    links = runbook_links(incident.runbook)
    ep = rt.config.endpoints.get(incident.endpoint or "")
    key = dedup_key(rt, incident)
    if key != incident.id:
        details["carries_page_of"] = key
    return Page(
        action=action,
        dedup_key=key,
        environment=routing_environment(rt, incident.environment),
        summary=summary,
        source=incident.endpoint or "aiops-bot",
        severity=incident.severity.pager_severity,
        component=ep.model if ep else None,
        custom_details=details,
        links=links,
    )


def page(
    rt: Runtime,
    incident: Incident,
    action: PageAction,
    actor_id: str,
    *,
    late: dict[str, Any] | None = None,
) -> PageResult | None:
    """Send `action` for `incident` and tell and audit what became of it. Acknowledge and
    resolve go only to an incident that was paged (`paged_at`); None when nothing was
    sent for that reason. The caller records `paged_at` after a trigger."""
    if action is not PageAction.TRIGGER and incident.paged_at is None:
        return None
    base = {"incident": incident.id, "alert": incident.alert_id, "action": action.value}
    base |= late or {}  # a page the sweep caught up: when it was owed since
    if rt.pager.name == "none":
        if action is not PageAction.TRIGGER:
            return None
        line(
            rt,
            incident,
            f"{HERE} :rotating_light: {incident.id} is {incident.severity.value}"
            + (f" on `{incident.endpoint}`" if incident.endpoint else "")
            + f": {escape(incident.summary)} — commander"
            f" {mention(incident.commander or incident.declared_by)}."
            ' (Paging is off: `[incidents] pager = "none"`.)',
        )
        rt.auditor.record(
            AuditAction.HERE_POSTED,
            actor_id,
            "@here posted in the incident's thread; nobody paged (paging is off)",
            environment=incident.environment,
            target=incident.endpoint,
            parameters=base | {"pager": "none", "via": "@here"},
        )
        return PageResult(delivered=True, attempts=0)
    event = _page(rt, incident, action)
    carried = "" if event.dedup_key == incident.id else f" (carrying on {event.dedup_key}'s page)"
    return deliver(
        rt,
        event,
        subject=incident.id + carried,
        actor_id=actor_id,
        environment=incident.environment,
        target=incident.endpoint,
        params=base,
        tell=lambda text: line(rt, incident, text),
    )


def page_later(rt: Runtime, incident: Incident, action: PageAction, actor_id: str) -> None:
    """`page` for the incident after the reply, on `rt.background` (see the module): its
    outcome is said in the thread and audited as `page` does."""
    rt.background.submit(lambda: page_now(rt, incident.id, action, actor_id))


_TRIES = 5  # compare-and-set attempts on `paged_at`


def page_now(
    rt: Runtime,
    incident_id: str,
    action: PageAction,
    actor_id: str,
    *,
    late: dict[str, Any] | None = None,
) -> None:
    """Send `action` for the incident as it is stored now. After the first trigger
    delivered, `paged_at` is set and what happened since is sent after it. `late` (the
    sweep's): parameters its audit rows carry to say it was caught up."""
    store = store_of(rt)
    incident = store.get_incident(incident_id)
    if incident is None:
        return
    if action is not PageAction.TRIGGER:
        page(rt, incident, action, actor_id, late=late)
        return
    if not incident.state.is_open:
        # A trigger that waited (a busy worker, the sweep) past the resolution: nobody is
        # to be woken now, and for a paged incident it would reopen the resolved alert.
        return
    result = page(rt, incident, PageAction.TRIGGER, actor_id, late=late)
    if result is None or not result.delivered:
        return
    if incident.paged_at is not None:  # paged before (one dedup key: one alert at the pager)
        _resolve_if_resolved(rt, incident.id, actor_id)
        return
    for _ in range(_TRIES):
        moved = store.update_incident(incident.id, incident.rev, paged_at=rt.clock())
        if moved is not None:
            break
        fresh = store.get_incident(incident.id)
        if fresh is None or fresh.paged_at is not None:
            # Another trigger recorded it and caught up, perhaps before this one (slow, a
            # retry) reached the pager: a resolve it sent then is undone by this trigger.
            _resolve_if_resolved(rt, incident.id, actor_id)
            return
        incident = fresh
    else:
        return
    # Whoever acknowledged or resolved before `paged_at` was set sent nothing to the pager
    # (`page` sends those only for an incident that was paged): send it now.
    if moved.state is IncidentState.RESOLVED:
        page(rt, moved, PageAction.RESOLVE, actor_id)
    elif moved.acknowledged_at is not None:
        page(rt, moved, PageAction.ACKNOWLEDGE, actor_id)


def _resolve_if_resolved(rt: Runtime, incident_id: str, actor_id: str) -> None:
    """After a trigger delivered to an incident someone else paged: if it is resolved now,
    resolve again (PagerDuty takes a second resolve as a no-op), so that a trigger that
    reached the pager after the resolve does not leave the alert open."""
    fresh = store_of(rt).get_incident(incident_id)
    if fresh is not None and fresh.state is IncidentState.RESOLVED:
        page(rt, fresh, PageAction.RESOLVE, actor_id)


# A page `page_later` has not attempted by then was lost with its process: a PagerDuty send
# ends within 90 s however slow (bot/pager/pagerduty.py: its deadline plus one attempt).
OWED_AFTER = timedelta(minutes=2)
# How far back a moment may be and still owe its page (a scheduler down longer than this
# is an outage of its own, seen on /healthz).
OWED_WITHIN = timedelta(days=1)
PAGE_SWEEP_SECONDS = 30.0  # the scheduler's `pages` job interval
_ATTEMPTS = frozenset({AuditAction.PAGE_SENT, AuditAction.PAGE_FAILED, AuditAction.HERE_POSTED})
# What the sweep reads of the audit (migration 0015 indexes action and time): the attempts,
# and the severity raises that make a trigger owed anew.
_READ: frozenset[str] = _ATTEMPTS | {AuditAction.INCIDENT_SEVERITY}


def _owed_moment(incident: Incident) -> tuple[PageAction, datetime] | None:
    """What the pager should have been sent last for `incident`, and since when."""
    if incident.paged_at is None:
        if incident.state.is_open and incident.severity.pages:
            return PageAction.TRIGGER, incident.declared_at
        return None
    if incident.state is IncidentState.RESOLVED and incident.resolved_at is not None:
        return PageAction.RESOLVE, incident.resolved_at
    if incident.acknowledged_at is not None:
        return PageAction.ACKNOWLEDGE, incident.acknowledged_at
    return None


def _raised_to_paging(params: dict[str, Any]) -> bool:
    """An `incident_severity` row's parameters (`from`, `to`) say a raise to P1 or P2."""
    try:
        old, new = Severity(str(params.get("from"))), Severity(str(params.get("to")))
    except ValueError:
        return False
    return new.pages and new.rank < old.rank


def owed_pages(rt: Runtime) -> list[tuple[Incident, PageAction, datetime]]:
    """Incidents whose last page was never attempted (see the module), oldest first: the
    action owed for each and the moment it became owed. Reads the incidents of the last
    `OWED_WITHIN` and, for those that may owe one, their page attempts and severity
    raises since that moment."""
    if rt.incidents is None:
        return []
    now = rt.clock()
    out: list[tuple[Incident, PageAction, datetime]] = []
    # Resolved since counts too: an incident open for days still owes its resolve.
    window = store_of(rt).list_incidents(since=now - OWED_WITHIN, resolved_since=now - OWED_WITHIN)
    for incident in reversed(window):
        owed = _owed_moment(incident)
        if owed is None:
            continue
        action, moment = owed
        if action is not PageAction.TRIGGER and rt.pager.name == "none":
            continue  # with no pager only the trigger is said (`@here`): nothing else is owed
        if not now - OWED_WITHIN <= moment <= now - OWED_AFTER:
            continue
        query = AuditQuery(since=moment, environment=incident.environment, actions=_READ)
        rows = [
            r for r in rt.store.audit(query) if (r.parameters or {}).get("incident") == incident.id
        ]
        if action is PageAction.TRIGGER:  # owed since it was raised to a paging severity
            # Only a raise sends a trigger (`change_severity`): a P1 lowered to P2 whose
            # trigger failed owes nothing new.
            raised = [
                r.at
                for r in rows
                if r.action == AuditAction.INCIDENT_SEVERITY
                and _raised_to_paging(r.parameters or {})
            ]
            moment = max([moment, *raised])
            if moment > now - OWED_AFTER:
                continue
        attempted = any(
            r.action in _ATTEMPTS
            and (r.parameters or {}).get("action") == action.value
            and r.at >= moment
            for r in rows
        )
        if not attempted:
            out.append((incident, action, moment))
    return out


def catch_up(rt: Runtime, claim: Callable[[str, datetime], bool] | None = None) -> list[str]:
    """Send every owed page (`owed_pages`), saying so in each incident's thread first;
    `INC-N:action` for each. The scheduler's `pages` job (bot/scheduler.py).

    `claim(key, since)` (`key` `INC-N:action`, `since` the moment it became owed) is asked
    before each send; False skips it. The scheduler's claims a run key, so that a page is
    sent once across replicas even when one sweep is still sending (a slow pager retries
    for up to a minute) as the next, on another replica, reads the audit."""
    sent: list[str] = []
    for incident, action, since in owed_pages(rt):
        if claim is not None and not claim(f"{incident.id}:{action.value}", since):
            continue
        log.warning(
            "%s: its %s page was never sent (lost with its process); sending it now",
            incident.id,
            action.value,
        )
        line(
            rt,
            incident,
            f":hourglass: {incident.id}'s page ({action.value}) had not gone out: the process"
            " that was sending it stopped. Sending it now.",
        )
        late = {"caught_up": True, "owed_since": since.isoformat()}
        if action is PageAction.TRIGGER:
            page_now(rt, incident.id, action, BOT.id, late=late)
        else:
            page(rt, incident, action, BOT.id, late=late)
        sent.append(f"{incident.id}:{action.value}")
    return sent


def deliver(
    rt: Runtime,
    event: Page,
    *,
    subject: str,
    actor_id: str,
    environment: str | None,
    target: str | None,
    params: dict[str, Any],
    tell: Callable[[str], None],
) -> PageResult:
    """Send one event through `rt.pager`, audit what became of it (`page_sent` /
    `page_failed`, with `params`), and `tell` it where `subject` (`INC-N`, `ALERT-N`) is
    followed: a delivered trigger in a line, an undelivered event in a line with the
    reason (and an `@here` for a trigger, so that someone is alerted anyway)."""
    result = rt.pager.send(event)
    action = event.action
    params = params | {
        "pager": rt.pager.name,
        "attempts": result.attempts,
        "dedup_key": event.dedup_key,
    }
    if result.delivered:
        rt.auditor.record(
            AuditAction.PAGE_SENT,
            actor_id,
            f"{action.value} delivered",
            environment=environment,
            target=target,
            parameters=params | {"severity": event.severity},
        )
        if action is PageAction.TRIGGER:
            tell(f":pager: Paged the on-call ({rt.pager.name}, {event.severity}) for {subject}.")
        return result
    error = result.error or "not delivered"
    rt.auditor.record(
        AuditAction.PAGE_FAILED,
        actor_id,
        f"{action.value} not delivered: {error}",
        environment=environment,
        target=target,
        parameters=params | {"error": error},
    )
    alarm = f"{HERE} " if action is PageAction.TRIGGER else ""
    tell(
        f"{alarm}:warning: The page ({action.value}) for {subject} did not reach"
        f" {rt.pager.name}: {escape(error)}."
        + (" Call the on-call directly." if action is PageAction.TRIGGER else "")
    )
    return result


# --- an alert the bot raised itself ---------------------------------------------------


def _alert_page(rt: Runtime, record: AlertRecord, action: PageAction) -> Page:
    n = record.notice
    severity, why = suggest_for_alert(rt.config, n)
    summary = f"{record.id} {severity.value}"
    if n.endpoint:
        summary += f" {n.endpoint}"
    summary = f"{summary}: {n.summary or n.policy}"[:1024]
    details = {
        "alert": record.id,
        "policy": n.policy,
        "source": n.source.value,
        "suggested_severity": severity.value,
        "rule": why,
    }
    if n.endpoint:
        details["endpoint"] = n.endpoint
    if n.observed:
        details["observed"] = n.observed
    runbook = runbook_for(rt.config, n.policy, n.endpoint)
    links = runbook_links(runbook)
    ep = rt.config.endpoints.get(n.endpoint or "")
    return Page(
        action=action,
        dedup_key=record.id,
        environment=routing_environment(rt, n.environment),
        summary=summary,
        source=n.endpoint or "aiops-bot",
        severity=severity.pager_severity,
        component=ep.model if ep else None,
        custom_details=details,
        links=links,
    )


def alert_line(rt: Runtime, record: AlertRecord, text: str) -> None:
    """One line under the alert's message (its thread), or in the ops channel when the
    message never arrived."""
    reply = Reply(text=text, blocks=[Text(text)], ephemeral=False)
    if record.channel and record.message_ts:
        rt.notifier.post(Post(record.channel, reply, thread_ts=record.message_ts))
    else:
        rt.notifier.post(Post(rt.config.channels.ops, reply))


def page_alert(
    rt: Runtime, record: AlertRecord, action: PageAction, actor_id: str
) -> PageResult | None:
    """Send `action` for an alert through the pager (see the module). None when nothing
    was sent: no pager (`[incidents] pager = "none"`: the caller keeps its `@here`), or an
    acknowledge or resolve of an alert never paged. The caller records `paged_at` after a
    delivered trigger."""
    if rt.pager.name == "none":
        return None
    if action is not PageAction.TRIGGER and record.paged_at is None:
        return None
    if record.incident_id and action is not PageAction.TRIGGER:
        incident = store_of(rt).get_incident(record.incident_id)
        if incident is not None and incident.paged_at is not None:
            return None  # its incident carries the page on (`dedup_key`), and ends it
    return deliver(
        rt,
        _alert_page(rt, record, action),
        subject=record.id,
        actor_id=actor_id,
        environment=record.notice.environment,
        target=record.notice.endpoint,
        params={"alert": record.id, "key": record.notice.key, "action": action.value},
        tell=lambda text: alert_line(rt, record, text),
    )
