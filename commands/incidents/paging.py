"""Paging the on-call for an incident through `rt.pager` (`commands.incidents.pager`).

When: a P1 or P2 declared, or an incident raised to one, triggers; its acknowledgement
acknowledges and its resolution resolves, if it was ever paged. Every event carries the
incident id as `dedup_key`, so a trigger sent twice is one page. With no pager
(`[incidents] pager = "none"`) the alarm is an `@here` in the incident's thread, as the
canary `page` policy's is. A page not delivered is said in the thread (with an `@here`
for a trigger, so someone is alerted anyway) and audited `page_failed`; a delivered one
is audited `page_sent`."""

from __future__ import annotations

from commands.audit import AuditAction
from commands.incidents.model import Incident
from commands.incidents.pager import Page, PageAction, PageResult
from commands.incidents.thread import line
from commands.messages import escape, mention
from commands.runtime import Runtime

HERE = "<!here>"  # Slack's special mention: everyone active in the channel


def routing_environment(rt: Runtime, incident: Incident) -> str:
    """The environment whose routing key a page uses: the incident's, or for one with no
    endpoint `prod` (else the first configured): an incident nobody scoped is treated as
    the one that matters most."""
    if incident.environment:
        return incident.environment
    if "prod" in rt.config.environments:
        return "prod"
    return next(iter(rt.config.environments))


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
    links: tuple[tuple[str, str], ...] = ()
    if incident.runbook and incident.runbook.startswith(("https://", "http://")):
        links = (("Runbook", incident.runbook),)
    ep = rt.config.endpoints.get(incident.endpoint or "")
    return Page(
        action=action,
        dedup_key=incident.id,
        environment=routing_environment(rt, incident),
        summary=summary,
        source=incident.endpoint or "aiops-bot",
        severity=incident.severity.pager_severity,
        component=ep.model if ep else None,
        custom_details=details,
        links=links,
    )


def page(rt: Runtime, incident: Incident, action: PageAction, actor_id: str) -> PageResult | None:
    """Send `action` for `incident` and tell and audit what became of it. Acknowledge and
    resolve go only to an incident that was paged (`paged_at`); None when nothing was
    sent for that reason. The caller records `paged_at` after a trigger."""
    if action is not PageAction.TRIGGER and incident.paged_at is None:
        return None
    base = {"incident": incident.id, "alert": incident.alert_id, "action": action.value}
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
            AuditAction.PAGE_SENT,
            actor_id,
            "@here in the incident's thread (paging is off)",
            environment=incident.environment,
            target=incident.endpoint,
            parameters=base | {"pager": "none", "via": "@here"},
        )
        return PageResult(delivered=True, attempts=0)
    result = rt.pager.send(_page(rt, incident, action))
    params = base | {"pager": rt.pager.name, "attempts": result.attempts}
    if result.delivered:
        rt.auditor.record(
            AuditAction.PAGE_SENT,
            actor_id,
            f"{action.value} delivered",
            environment=incident.environment,
            target=incident.endpoint,
            parameters=params | {"severity": incident.severity.pager_severity},
        )
        if action is PageAction.TRIGGER:
            line(
                rt,
                incident,
                f":pager: Paged the on-call ({rt.pager.name},"
                f" {incident.severity.pager_severity}) for {incident.id}.",
            )
        return result
    error = result.error or "not delivered"
    rt.auditor.record(
        AuditAction.PAGE_FAILED,
        actor_id,
        f"{action.value} not delivered: {error}",
        environment=incident.environment,
        target=incident.endpoint,
        parameters=params | {"error": error},
    )
    alarm = f"{HERE} " if action is PageAction.TRIGGER else ""
    line(
        rt,
        incident,
        f"{alarm}:warning: The page ({action.value}) for {incident.id} did not reach"
        f" {rt.pager.name}: {escape(error)}."
        + (" Call the on-call directly." if action is PageAction.TRIGGER else ""),
    )
    return result
