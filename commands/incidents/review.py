"""The post-incident review draft (REVIEW, issue 17), drafted from the audit.

`build_review` is pure: from the incident, the audit rows about it, the changes involved
and (when given) canary checks, it puts together the document a review meeting starts
from: the timeline (alert fired, declared, acknowledged, each mitigation with its change
and who approved it, resolved, and the updates, pages and severity changes between), the
response times (`commands.incidents.metrics`: time to detect / acknowledge / mitigate /
resolve), the changes involved with the command that prints each one's dossier, canary
figures, the root cause, and the sections people write at the review — contributing
factors and action items — left empty, but for "add a runbook" when the alert had none.

Traceable: every timeline entry names the audit row it was read from (`row`), so each can
be checked against the hash chain (`aiops-bot audit verify`); a moment the incident
records with no row behind it is listed under `untraced` rather than shown as an event.

`review_for` reads the inputs through the ports (`Store`, `IncidentStore`, optionally
`CanaryStore`); `render_review(review, "md" | "json")` writes it out, JSON with stable
(sorted) keys. Times are UTC and the configured zone, as in the change dossier. All text
is masked again on the way out (`commands.text.outbound`), though what the audit holds was
masked when written.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from commands.audit import AuditAction
from commands.canary.model import Check
from commands.config import Config
from commands.errors import Refusal
from commands.incidents.metrics import IncidentTimes, incident_times, span_text
from commands.incidents.model import AlertRecord, Incident
from commands.incidents.ports import IncidentStore
from commands.incidents.runbooks import missing_runbook, runbook_for
from commands.messages import did_you_mean
from commands.model import Change, ChangeKind
from commands.ports import AuditEvent, AuditQuery, CanaryStore, People, Store
from commands.reports.dossier import Stamp, person
from commands.text import outbound

FORMATS = ("md", "json")
# How far before detection the endpoint's changes are listed as `preceding` (suspects).
PRECEDING = timedelta(hours=24)
# The canary checks the Markdown shows per change (the JSON has them all).
CANARY_LINES = 10

# Audit action → (the timeline entry's kind, its words). Rows of the incident's changes
# enter the timeline as one `mitigation` / `change` entry each, built from their rows.
_EVENTS: dict[str, tuple[str, str]] = {
    AuditAction.ALERT_RECEIVED: ("alert_fired", "alert fired"),
    AuditAction.ALERT_ACKNOWLEDGED: ("alert_acknowledged", "alert acknowledged"),
    AuditAction.ALERT_CLOSED: ("alert_closed", "alert closed by its monitor"),
    AuditAction.INCIDENT_DECLARED: ("declared", "incident declared"),
    AuditAction.INCIDENT_SEVERITY: ("severity", "severity changed"),
    AuditAction.INCIDENT_ACKNOWLEDGED: ("acknowledged", "incident acknowledged"),
    AuditAction.INCIDENT_UPDATED: ("update", "status update"),
    AuditAction.INCIDENT_MITIGATED: ("mitigated", "marked mitigated"),
    AuditAction.INCIDENT_RESOLVED: ("resolved", "resolved"),
    AuditAction.PAGE_SENT: ("page_sent", "on-call paged"),
    AuditAction.PAGE_FAILED: ("page_failed", "page not delivered"),
    AuditAction.HERE_POSTED: ("here_posted", "@here posted (no pager: nobody paged)"),
    AuditAction.HANDOFF: ("handoff", "hand-off note"),
    AuditAction.CANARY_ROLLBACK: ("canary_rollback", "canary rollback started by the bot"),
    AuditAction.STOP_REQUESTED: ("stop_requested", "rollback asked during a soak"),
}
# The incident's own moments and the row that records each (for `untraced`).
_MOMENTS = (
    ("declared", "declared_at", AuditAction.INCIDENT_DECLARED),
    ("acknowledged", "acknowledged_at", AuditAction.INCIDENT_ACKNOWLEDGED),
    ("mitigated", "mitigated_at", AuditAction.INCIDENT_MITIGATED),
    ("resolved", "resolved_at", AuditAction.INCIDENT_RESOLVED),
)


# --- which rows and changes -------------------------------------------------------------


def about(row: AuditEvent, incident: Incident, change_ids: Iterable[str] = ()) -> bool:
    """A row belongs to the review when it names the incident (`parameters["incident"]`),
    its alert (`parameters["alert"]`), or is a row of one of `change_ids`."""
    params = row.parameters or {}
    if params.get("incident") == incident.id:
        return True
    if incident.alert_id is not None and params.get("alert") == incident.alert_id:
        return True
    return row.change_id is not None and row.change_id in set(change_ids)


def linked_change_ids(rows: Iterable[AuditEvent], incident: Incident) -> list[str]:
    """The changes linked to the incident, in the order they were linked: the change of
    each row naming the incident (`change_id`, or `parameters["change"]`)."""
    out: list[str] = []
    for row in rows:
        if (row.parameters or {}).get("incident") != incident.id:
            continue
        cid = row.change_id or (row.parameters or {}).get("change")
        if isinstance(cid, str) and cid and cid not in out:
            out.append(cid)
    return out


# --- building ---------------------------------------------------------------------------


def _text(value: Any) -> str:
    return outbound(str(value)).replace("\r", " ").replace("\n", " ").strip() if value else ""


def _detail(row: AuditEvent) -> str:
    parts = [p for p in (_text(row.outcome), _text(row.justification)) if p]
    return " — ".join(dict.fromkeys(parts))


def _moment(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return None
        return at if at.tzinfo is not None else None
    return None


def build_review(
    incident: Incident,
    audit: Sequence[AuditEvent],
    changes: Sequence[Change],
    config: Config,
    *,
    alert: AlertRecord | None = None,
    canary_checks: Mapping[str, Sequence[Check]] | None = None,
    people: People | None = None,
) -> dict[str, Any]:
    """The review draft as plain data (see the module; `render_review` writes it out).

    `audit`: rows about the incident (those `about` keeps; others are ignored), the rows
    of its changes included. `changes`: the changes involved: those linked to the incident
    (its rows name them) are its `linked` changes — a rollback, or one that ended before
    the incident was mitigated, is a `mitigation` on the timeline; the others given are
    `preceding` (made before detection: the first suspects). `alert`: the incident's alert
    record. `canary_checks`: change id → its canary's checks (`CanaryStore.checks`), used
    for checks the audit has no row of."""
    stamp = Stamp(config)

    def who(slack_id: str | None) -> dict[str, str | None] | None:
        return person(config, people, slack_id)

    by_id = {c.id: c for c in changes}
    all_rows = sorted({r.id: r for r in audit}.values(), key=lambda r: (r.at, r.id or 0))
    linked = [cid for cid in linked_change_ids(all_rows, incident) if cid in by_id]
    rows = [r for r in all_rows if about(r, incident, by_id)]
    times = incident_times(incident, alert)
    policy = alert.notice.policy if alert else None
    for row in rows:
        if policy is None and row.action == AuditAction.ALERT_RECEIVED:
            found = (row.parameters or {}).get("policy")
            policy = found if isinstance(found, str) else None
    runbook = incident.runbook or runbook_for(config, policy, incident.endpoint)

    timeline: list[dict[str, Any]] = []
    alert_seen = False
    for row in rows:
        if row.action not in _EVENTS:
            continue
        params = row.parameters or {}
        kind, words = _EVENTS[row.action]
        at = row.at
        detail = _detail(row)
        if detail.casefold() in (words.casefold(), row.action.replace("_", " ")):
            detail = ""  # an outcome that only repeats the action
        if params.get("caught_up"):  # sent by the scheduler's sweep (`paging.catch_up`)
            owed = _moment(params.get("owed_since"))
            since = f"{owed.astimezone(config.timezone):%H:%M:%S %Z}" if owed else "earlier"
            words += f" late (owed since {since}: its first sender stopped)"
        if row.action == AuditAction.ALERT_RECEIVED:
            if alert_seen:
                kind, words = "alert_updated", "alert notification"
            else:
                alert_seen = True
                fired = (alert.notice.started_at if alert else None) or _moment(
                    params.get("started_at")
                )
                if fired is None and params.get("alert") == incident.alert_id:
                    fired = incident.detected_at
                at = fired or row.at
                received = f"received {row.at.astimezone(config.timezone):%H:%M:%S %Z}"
                detail = " — ".join(p for p in (detail, received) if p)
        timeline.append(
            {
                "at": stamp(at),
                "kind": kind,
                "text": f"{words}: {detail}" if detail else words,
                "actor": who(row.actor_id),
                "row": row.id,
                "change": row.change_id,
                "_sort": (at, row.id or 0),
            }
        )

    change_docs: list[dict[str, Any]] = []
    mitigated = times.mitigated
    for change in sorted(changes, key=lambda c: (c.created_at, c.id)):
        own = [r for r in all_rows if r.change_id == change.id]
        approvals = _approvals(change, own, who)
        role = "linked" if change.id in linked else "preceding"
        finished = next(
            (r for r in reversed(own) if r.action == AuditAction.EXECUTION_FINISHED), None
        )
        doc = {
            "id": change.id,
            "kind": change.kind.value,
            "endpoint": change.endpoint,
            "environment": change.environment,
            "version": change.version,
            "state": change.state.value,
            "role": role,
            "requested_by": who(change.requester_id),
            "requested_at": stamp(change.created_at),
            "reason": _text(change.reason) or None,
            "approved_by": approvals,
            "finished_at": stamp(finished.at) if finished else None,
            "dossier": f"aiops-bot audit dossier {change.id}",
            "rows": [r.id for r in own],
        }
        change_docs.append(doc)
        if role != "linked":
            continue
        link_row = next(
            (
                r
                for r in rows
                if r.change_id == change.id and (r.parameters or {}).get("incident") == incident.id
            ),
            None,
        )
        anchor = finished or link_row or (own[-1] if own else None)
        if anchor is None:
            continue  # no row to trace it to: listed under the changes, not on the timeline
        mitigation = change.kind is ChangeKind.ROLLBACK or (
            finished is not None and mitigated is not None and finished.at <= mitigated
        )
        approved = "; ".join(a["text"] for a in approvals) or "no decision recorded"
        what = f"{change.kind.value} {change.id} on `{change.endpoint}` ({change.environment})"
        if change.version:
            what += f" {change.version}"
        timeline.append(
            {
                "at": stamp(anchor.at),
                "kind": "mitigation" if mitigation else "change",
                "text": f"{what}: {change.state.value.replace('_', ' ')}; approved by {approved}",
                "actor": who(change.requester_id),
                "row": anchor.id,
                "change": change.id,
                "approved_by": approvals,
                "_sort": (anchor.at, anchor.id or 0),
            }
        )
    timeline.sort(key=lambda e: e.pop("_sort"))

    untraced: list[str] = []
    traced: dict[str, int | None] = {}
    for name, attr, action in _MOMENTS:
        at = getattr(incident, attr)
        moment_row = next(
            (
                r
                for r in rows
                if r.action == action and (r.parameters or {}).get("incident") == incident.id
            ),
            None,
        )
        traced[name] = moment_row.id if moment_row else None
        if at is not None and moment_row is None:
            untraced.append(f"{name} at {at.isoformat()}: no `{action}` row in the audit")

    action_items: list[dict[str, str]] = []
    if runbook is None:
        action_items.append(
            {"text": missing_runbook(policy, incident.endpoint), "source": "no runbook"}
        )

    return {
        "incident": incident.id,
        "generated_for": "post-incident review (draft)",
        "timezone": config.timezone.key,
        "summary": _text(incident.summary),
        "severity": incident.severity.value,
        "suggested_severity": (
            incident.suggested_severity.value if incident.suggested_severity else None
        ),
        "state": incident.state.value,
        "endpoint": incident.endpoint,
        "environment": incident.environment,
        "roles": {
            "declared_by": who(incident.declared_by),
            "commander": who(incident.commander),
            "on_call": who(incident.on_call),
        },
        "alert": _alert_doc(alert, policy, stamp) if (alert or incident.alert_id) else None,
        "alert_id": incident.alert_id,
        "runbook": runbook,
        "timeline": timeline,
        "times": _times_doc(times, traced, stamp),
        "changes": change_docs,
        "canary": _canary(all_rows, by_id, canary_checks or {}, stamp),
        "root_cause": _text(incident.root_cause) or None,
        "contributing_factors": [],
        "action_items": action_items,
        "untraced": untraced,
        "audit_rows": [r.id for r in rows],
    }


def _approvals(
    change: Change,
    own: Sequence[AuditEvent],
    who: Callable[[str | None], dict[str, str | None] | None],
) -> list[dict[str, Any]]:
    """Who let the change run: each approval row, a break glass, or the policy that
    approved it (`decided_by = "policy: …"`)."""
    out: list[dict[str, Any]] = []
    for r in own:
        if r.action == AuditAction.APPROVE:
            person_ = who(r.actor_id)
            out.append({"by": person_, "row": r.id, "text": _person_text(person_)})
        elif r.action == AuditAction.BREAK_GLASS:
            person_ = who(r.actor_id)
            out.append(
                {"by": person_, "row": r.id, "text": f"break glass by {_person_text(person_)}"}
            )
    if not out and change.decided_by:
        decided = change.decided_by
        text = (
            decided.removeprefix("policy:").strip()
            if decided.startswith("policy:")
            else _person_text(who(decided))
        )
        out.append({"by": who(decided), "row": None, "text": text})
    return out


def _alert_doc(alert: AlertRecord | None, policy: str | None, stamp: Stamp) -> dict[str, Any]:
    if alert is None:
        return {"id": None, "policy": _text(policy) or None}
    n = alert.notice
    return {
        "id": alert.id,
        "key": _text(n.key),
        "source": n.source.value,
        "policy": _text(n.policy),
        "condition": _text(n.condition) or None,
        "summary": _text(n.summary) or None,
        "observed": _text(n.observed) or None,
        "url": n.url,
        "started_at": stamp(n.started_at),
        "received_at": stamp(alert.received_at),
        "ended_at": stamp(n.ended_at),
    }


def _times_doc(
    times: IncidentTimes, traced: Mapping[str, int | None], stamp: Stamp
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "began": stamp(times.began),
        "detected": stamp(times.detected),
        "acknowledged": stamp(times.acknowledged),
        "mitigated": stamp(times.mitigated),
        "resolved": stamp(times.resolved),
        "rows": dict(traced),
    }
    for name, value in times.spans().items():
        out[name] = {
            "seconds": int(value.total_seconds()) if value is not None else None,
            "text": span_text(value),
        }
    return out


def _canary(
    rows: Sequence[AuditEvent],
    changes: Mapping[str, Change],
    checks: Mapping[str, Sequence[Check]],
    stamp: Stamp,
) -> list[dict[str, Any]]:
    """Every canary check of the changes involved: from their `canary_check` rows, then
    the given checks the audit has no row of (`row` None)."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str, int]] = set()
    for r in rows:
        if r.action != AuditAction.CANARY_CHECK or r.change_id is None:
            continue
        if r.change_id not in changes:
            continue
        p = r.parameters or {}
        seq = p.get("seq")
        seen.add((r.change_id, str(p.get("canary")), int(seq) if isinstance(seq, int) else -1))
        out.append(
            {
                "change": r.change_id,
                "canary": p.get("canary"),
                "seq": seq,
                "at": stamp(r.at),
                "share": p.get("share"),
                "verdict": _text(r.outcome),
                "canary_figures": p.get("canary_figures"),
                "stable_figures": p.get("stable_figures"),
                "row": r.id,
            }
        )
    for cid, found in sorted(checks.items()):
        if cid not in changes:
            continue
        for c in found:
            if (cid, f"CAN-{c.watch_id}", c.seq) in seen:
                continue
            out.append(
                {
                    "change": cid,
                    "canary": f"CAN-{c.watch_id}",
                    "seq": c.seq,
                    "at": stamp(c.at),
                    "share": c.canary_share,
                    "verdict": c.verdict.value,
                    "canary_figures": _figures(c.canary),
                    "stable_figures": _figures(c.stable),
                    "row": None,
                }
            )
    return out


def _figures(f: Any) -> dict[str, Any]:
    return {"p95_ms": f.p95_latency_ms, "error_rate": f.error_rate, "requests": f.requests}


# --- reading the inputs -------------------------------------------------------------------


def review_for(
    store: Store,
    incidents: IncidentStore,
    config: Config,
    incident_id: str,
    *,
    canary: CanaryStore | None = None,
    people: People | None = None,
) -> dict[str, Any]:
    """`build_review` on what the ports hold: the incident and its alert, the audit rows
    from its first moment on that are `about` it, the changes linked to it and the
    endpoint's changes made in the `PRECEDING` 24 h before detection, their rows, and
    their canaries' checks. A `Refusal` (`not_found`) for an unknown incident, naming the
    closest known ids."""
    incident = incidents.get_incident(incident_id.strip().upper())
    if incident is None:
        known = [i.id for i in incidents.list_incidents()[:200]]
        recent = ", ".join(f"`{i}`" for i in known[:5]) or "none yet"
        raise Refusal(
            f"no incident `{_text(incident_id)}`"
            + did_you_mean(incident_id.strip().upper()[:40], known),
            f"Incident ids look like `INC-12`. Recent incidents: {recent}.",
            code="not_found",
        )
    alert = incidents.get_alert(incident.alert_id) if incident.alert_id else None
    times = incident_times(incident, alert)
    starts = [t for t in (times.began, times.detected, incident.declared_at) if t is not None]
    since = min(starts) - timedelta(minutes=1)
    rows = {r.id: r for r in store.audit(AuditQuery(since=since)) if about(r, incident)}
    ids = linked_change_ids(rows.values(), incident)
    if incident.endpoint:
        for c in store.list_changes(endpoint=incident.endpoint, limit=50):
            if times.detected - PRECEDING <= c.created_at <= times.detected and c.id not in ids:
                ids.append(c.id)
    changes = [c for c in (store.get_change(cid) for cid in ids) if c is not None]
    for c in changes:
        rows.update({r.id: r for r in store.audit(AuditQuery(change_id=c.id))})
    checks: dict[str, list[Check]] = {}
    if canary is not None:
        for c in changes:
            watch = canary.watch_for_change(c.id)
            if watch is not None:
                checks[c.id] = canary.checks(watch.id, limit=1000)
    return build_review(
        incident,
        list(rows.values()),
        changes,
        config,
        alert=alert,
        canary_checks=checks,
        people=people,
    )


# --- rendering ------------------------------------------------------------------------------


def render_review(review: Mapping[str, Any], fmt: str = "md") -> str:
    """The review as Markdown (`md`) or JSON (`json`, keys sorted, so two renderings of
    the same review are byte-identical). ValueError for another format."""
    if fmt == "json":
        return json.dumps(review, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    if fmt == "md":
        return _markdown(review)
    raise ValueError(f"`{fmt}` is not a review format; write `md` or `json`")


def _link(label: str, url: str) -> str:
    """A Markdown link for an https URL that cannot break out of it; anything else (a
    payload's URL is outside input) is shown as code, not made clickable."""
    if url.startswith("https://") and not any(ch.isspace() or ch in "()<>[]`" for ch in url):
        return f"[{label}]({url})"
    shown = _text(url).replace("`", "'")
    return f"`{shown}`"


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text.replace("|", "\\|").replace("\n", " ")


def _person_text(p: Mapping[str, Any] | None) -> str:
    if not p:
        return "—"
    return f"{p['name']} ({p['id']})" if p.get("name") else str(p["id"])


def _local(value: Mapping[str, str] | None, tz: ZoneInfo) -> str:
    if not value:
        return "—"
    return datetime.fromisoformat(value["utc"]).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def _figures_text(f: Mapping[str, Any] | None) -> str:
    if not f:
        return "—"
    p95 = f.get("p95_ms")
    err = f.get("error_rate")
    parts = [
        f"P95 {p95:,.0f} ms" if isinstance(p95, int | float) else "P95 n/a",
        f"errors {err:.2%}" if isinstance(err, int | float) else "errors n/a",
        f"{f.get('requests') or 0:,} req",
    ]
    return ", ".join(parts)


_TIME_WORDS = (
    ("time_to_detect", "Time to detect", "began", "detected"),
    ("time_to_acknowledge", "Time to acknowledge", "detected", "acknowledged"),
    ("time_to_mitigate", "Time to mitigate", "detected", "mitigated"),
    ("time_to_resolve", "Time to resolve", "detected", "resolved"),
)


def _markdown(r: Mapping[str, Any]) -> str:
    tz = ZoneInfo(r["timezone"])
    where = f"`{r['endpoint']}`" if r.get("endpoint") else "no endpoint"
    if r.get("environment"):
        where += f" ({r['environment']})"
    roles = r["roles"]
    out = [
        f"# Post-incident review (draft): {r['incident']}",
        "",
        f"> {r['summary'] or '—'}",
        "",
        f"- Severity: {r['severity']}"
        + (
            f" (suggested from the alert: {r['suggested_severity']})"
            if r.get("suggested_severity") and r["suggested_severity"] != r["severity"]
            else ""
        ),
        f"- State: {r['state']} · endpoint {where}",
        f"- Declared by: {_person_text(roles['declared_by'])} · commander:"
        f" {_person_text(roles['commander'])} · on-call: {_person_text(roles['on_call'])}",
    ]
    alert = r.get("alert")
    if alert:
        line = f"- Alert: {alert.get('id') or r.get('alert_id') or '—'}"
        if alert.get("policy"):
            line += f" · policy “{alert['policy']}”"
        if alert.get("observed"):
            line += f" · {alert['observed']}"
        if alert.get("url"):
            line += f" · {_link('in Cloud Monitoring', alert['url'])}"
        out.append(line)
    out.append(
        f"- Runbook: {_link(r['runbook'], r['runbook'])}"
        if r.get("runbook")
        else "- Runbook: **none** (see action items)"
    )
    out += [
        "",
        f"Times are {r['timezone']} (the JSON form has UTC too). Every event names the audit"
        " row it comes from; `aiops-bot audit verify` checks those rows are the ones written.",
        "",
        "## Timeline",
        "",
        "| time | event | by | audit row |",
        "| --- | --- | --- | --- |",
    ]
    for e in r["timeline"]:
        out.append(
            f"| {_local(e['at'], tz)} | {_cell(e['text'])} | {_cell(_person_text(e['actor']))} |"
            f" {e['row']} |"
        )
    if not r["timeline"]:
        out.append("| — | no audit rows about this incident | — | — |")
    if r.get("untraced"):
        out += ["", "Recorded on the incident without an audit row (not on the timeline):", ""]
        out += [f"- {_cell(u)}" for u in r["untraced"]]

    t = r["times"]
    out += [
        "",
        "## Response times",
        "",
        "| measure | time | from | to |",
        "| --- | --- | --- | --- |",
    ]
    for key, label, start, end in _TIME_WORDS:
        out.append(
            f"| {label} | {t[key]['text']} | {start} {_local(t[start], tz)} | {end} {_local(t[end], tz)} |"
        )
    out += [
        "",
        "Began: the alert's start (the monitor's first breach); detected: the alert reaching"
        " Slack, or the declaration when there was no alert; acknowledged: the first"
        " acknowledgement of the alert or the incident; mitigated: impact stopped (the"
        " resolution when never marked). Detect is began → detected; the others run from"
        " detected (PagerDuty's and Atlassian's definitions). — : not reached, or unknown.",
        "",
        "## Changes involved",
        "",
    ]
    for c in r["changes"]:
        approved = "; ".join(a["text"] for a in c["approved_by"]) or "no decision recorded"
        what = f"{c['kind']} `{c['endpoint']}` ({c['environment']})"
        if c.get("version"):
            what += f" {c['version']}"
        out.append(
            f"- **{c['id']}** {what} · {c['state'].replace('_', ' ')} · {c['role']}"
            f" · requested by {_person_text(c['requested_by'])} at {_local(c['requested_at'], tz)}"
            f" · approved by {_cell(approved)} · dossier: `{c['dossier']}`"
        )
    if not r["changes"]:
        out.append("- none recorded")
    out += ["", "## Canary figures", ""]
    if r["canary"]:
        out += [
            "| change | canary | at | share | canary | stable | verdict | audit row |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        by_change: dict[str, list[Mapping[str, Any]]] = {}
        for c in r["canary"]:
            by_change.setdefault(str(c["change"]), []).append(c)
        for cid, found in by_change.items():
            if len(found) > CANARY_LINES:
                out.append(
                    f"| {cid} | … {len(found) - CANARY_LINES} earlier check(s) in the JSON"
                    " | | | | | | |"
                )
            for c in found[-CANARY_LINES:]:
                out.append(
                    f"| {cid} | {c['canary']} | {_local(c['at'], tz)} | {c['share']}% |"
                    f" {_figures_text(c['canary_figures'])} | {_figures_text(c['stable_figures'])}"
                    f" | {_cell(c['verdict'])} | {c['row'] if c['row'] is not None else 'not in the audit'} |"
                )
    else:
        out.append("- no canary figures for the changes involved")
    out += [
        "",
        "## Root cause",
        "",
        r["root_cause"] or "_Not recorded yet: resolving the incident asks for it._",
        "",
        "## Contributing factors",
        "",
        "_To be written at the review._",
        "",
        "## Action items",
        "",
    ]
    out += [f"- [ ] {_cell(a['text'])}" for a in r["action_items"]]
    out.append(
        "_More to be agreed at the review._"
        if r["action_items"]
        else "_To be agreed at the review._"
    )
    out += [
        "",
        "## Audit rows read",
        "",
        ", ".join(str(i) for i in r["audit_rows"]) or "none",
    ]
    chain = r.get("chain")
    if chain:  # the CLI verifies the hash chain these rows belong to
        # its message begins "audit chain intact: …" / "audit chain broken at …": said once
        said = _cell(chain["message"]).removeprefix("audit chain ")
        out += ["", f"Audit chain: {said}" if chain["ok"] else f"Audit chain: **BROKEN** — {said}"]
    return "\n".join(out).rstrip("\n") + "\n"
