"""How an alert and an incident look: one message each, posted once and updated as they
move, with the buttons that act on them while they are open.

Buttons go through the catalog (`commands.catalog.BUTTONS`): `incident.ack`,
`incident.rollback`, `incident.pause` and `incident.review` run
`/aiops incident <verb> <value>`;
`incident.declare` and `incident.resolve` open a form first (the Slack edge,
`bot/slack/incident_forms.py`) whose submission is the typed command shown as `typed`.
Every text an alert or a person supplied is escaped here, where the message is composed.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

from commands.config import Config
from commands.incidents.model import AlertRecord, AlertState, Incident, IncidentState, Severity
from commands.incidents.runbooks import missing_runbook, runbook_for
from commands.incidents.severity import suggest_for_alert
from commands.messages import (
    Block,
    Button,
    Buttons,
    Confirm,
    Context,
    Fields,
    Header,
    Reply,
    Text,
    escape,
    mention,
    when,
)
from commands.text import cut

SUMMARY_MAX = 500  # characters of an incident's summary (a line, not a report)
# A drift alert's labels naming what trained the serving version (`alerts.with_lineage`)
LINEAGE_MODEL = "aiops_model"
_URL = re.compile(r"https?://[^\s<>|\"`]{1,1500}")

_MARK = {
    IncidentState.DECLARED: ":rotating_light:",
    IncidentState.ACKNOWLEDGED: ":eyes:",
    IncidentState.MITIGATED: ":adhesive_bandage:",
    IncidentState.RESOLVED: ":white_check_mark:",
}


def link(url: str | None, label: str) -> str | None:
    """A mrkdwn link to `url` if it is a plain http(s) URL (no markup can ride in it);
    None otherwise."""
    if url and _URL.fullmatch(url):
        return f"<{url}|{label}>"
    return None


def minutes_between(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "—"
    total = max(0, int((end - start).total_seconds() // 60))
    return f"{total} min" if total < 120 else f"{total // 60} h {total % 60} min"


# --- the alert's message --------------------------------------------------------------


def declare_value(record: AlertRecord, config: Config) -> str:
    """The Declare button's value: what the form is pre-filled with (the alert, its
    endpoint, the suggested severity and the rule's reason, a summary), as JSON within
    Slack's 2,000 characters. The server that opens the form reads no store: this is
    all it knows of the alert."""
    severity, why = suggest_for_alert(config, record.notice)
    summary = record.notice.policy
    if record.notice.summary:
        summary = f"{summary}: {record.notice.summary}"
    data = {
        "alert": record.id,
        "endpoint": record.notice.endpoint or "",
        "severity": severity.value,
        "summary": cut(summary, SUMMARY_MAX),
        "rule": cut(why, 300),
    }
    # at most 500 + 300 characters of text, each escaped to at most two: within 2,000
    return json.dumps(data, ensure_ascii=False)


def alert_message(record: AlertRecord, config: Config) -> Reply:
    """An alert as it stands: open (with Declare incident / Roll back / Acknowledge),
    acknowledged, declared as an incident, or resolved at its end time (no buttons)."""
    n = record.notice
    tz = config.timezone
    closed = n.state is AlertState.CLOSED
    severity, why = suggest_for_alert(config, n)
    where = f"`{escape(n.endpoint)}`" if n.endpoint else "no endpoint mapped"
    if n.endpoint and n.environment:
        where += f" ({escape(n.environment)})"
    head = ":white_check_mark: Resolved" if closed else ":rotating_light: Alert"
    blocks: list[Block] = [Header(cut(f"{head} · {record.id} · {escape(n.policy)}", 150))]
    lines = []
    if n.summary:
        lines.append(escape(n.summary))
    if n.observed:
        lines.append(f"*Observed:* {escape(n.observed)}")
    model = n.labels.get(LINEAGE_MODEL)
    if model and not closed:  # drift: what the serving version was trained on, and the remedy
        lines.append(
            f"*Trained by:* {escape(n.labels.get('aiops_serving_version', '?'))} came from"
            f" training pipeline run {escape(n.labels.get('aiops_training_pipeline', '?'))}"
            f" (dataset {escape(n.labels.get('aiops_dataset', '?'))}). Retrain it on fresh data:"
            f' `/aiops retrain {escape(model)} reason="…"`'
        )
    if closed:
        lines.append(
            f"*Resolved at {when(n.ended_at or record.closed_at, tz)}*"
            f" (open {minutes_between(n.started_at, n.ended_at or record.closed_at)})."
        )
    if lines:
        blocks.append(Text(cut("\n".join(lines), 2900)))
    blocks.append(
        Fields(
            (
                ("Endpoint", where),
                ("Started", when(n.started_at or record.received_at, tz)),
                ("Suggested severity", f"{severity.value}: {why}"),
                ("Condition", escape(n.condition) or "—"),
            )
        )
    )
    notes = [f"Source: {n.source.value} · `{escape(n.key)}`"]
    shown = link(n.url, "Open in Cloud Monitoring")
    if shown:
        notes.append(shown)
    runbook = runbook_for(config, n.policy, n.endpoint)
    notes.append(
        link(runbook, "Runbook") or f"No runbook: {escape(missing_runbook(n.policy, n.endpoint))}"
    )
    if n.documentation:
        notes.append(cut(escape(n.documentation), 600))
    if record.acknowledged_by:
        notes.append(
            f"Acknowledged by {mention(record.acknowledged_by)}"
            f" at {when(record.acknowledged_at, tz)}"
        )
    if record.incident_id:
        notes.append(f"Declared as *{record.incident_id}*: its thread has the rest.")
    elif closed:  # no buttons on a closed alert: the typed command still declares one
        notes.append(
            "Closed by its monitor. If it had impact, declare it afterwards:"
            f' `/aiops incident declare {n.endpoint or ""} sev=… summary="…"'
            f" alert={record.id}`".replace("  ", " ")
        )
    blocks.append(Context(tuple(notes)))
    buttons = []
    # A closed alert (whatever order its notices came in) offers nothing to click: no
    # Declare (its trouble is over; the command above declares one after the fact), no
    # Roll back, no Acknowledge (nobody needs to take an alert that has ended).
    if record.incident_id is None and not closed:
        buttons.append(
            Button(
                "Declare incident",
                "incident.declare",
                declare_value(record, config),
                f"/aiops incident declare {n.endpoint or ''} sev={severity.value}"
                f' summary="…" alert={record.id}'.replace("  ", " "),
                style="danger" if severity is Severity.P1 else None,
            )
        )
    if not closed and n.endpoint:
        buttons.append(
            Button(
                "Roll back",
                "incident.rollback",
                record.id,
                f"/aiops incident rollback {record.id}",
                confirm=Confirm(
                    f"Roll back {n.endpoint}?",
                    f"Restores the last stable traffic split of {n.endpoint}"
                    f" ({n.environment or 'its environment'}) and undeploys its canary."
                    " In production it runs at once (mitigation first).",
                    "Roll back",
                ),
            )
        )
    if not closed and record.acknowledged_by is None:
        buttons.append(
            Button("Acknowledge", "incident.ack", record.id, f"/aiops incident ack {record.id}")
        )
    if buttons:
        blocks.append(Buttons(tuple(buttons)))
    state = "resolved" if closed else "open"
    return Reply(
        text=cut(f"{record.id} {state}: {escape(n.policy)} ({n.endpoint or 'no endpoint'})", 300),
        blocks=blocks,
        ephemeral=False,
    )


# --- the incident's card --------------------------------------------------------------


def incident_title(incident: Incident) -> str:
    where = incident.endpoint or "no endpoint"
    return f"{incident.id} · {incident.severity.value} · {where}"


def incident_card(incident: Incident, config: Config, *, buttons: bool = True) -> Reply:
    """The incident's one message (the head of its thread): severity, state, roles,
    times, and while it is open Roll back / Pause canary / Acknowledge / Resolve; once
    resolved, Review (the post-incident review draft in its thread)."""
    tz = config.timezone
    state = incident.state
    blocks: list[Block] = [Header(cut(f"{_MARK[state]} {incident_title(incident)}", 150))]
    blocks.append(Text(cut(escape(incident.summary), 2900)))
    severity = incident.severity.value
    if incident.suggested_severity and incident.suggested_severity is not incident.severity:
        severity += f" (suggested {incident.suggested_severity.value})"
    where = f"`{incident.endpoint}` ({incident.environment})" if incident.endpoint else "—"
    blocks.append(
        Fields(
            (
                ("Severity", severity),
                ("State", state.value),
                ("Commander", mention(incident.commander) if incident.commander else "—"),
                ("On-call", mention(incident.on_call) if incident.on_call else "—"),
                ("Endpoint", where),
                (
                    "Declared",
                    f"by {mention(incident.declared_by)} at {when(incident.declared_at, tz)}",
                ),
            )
        )
    )
    times = [f"Detected {when(incident.detected_at, tz)}"]
    if incident.acknowledged_at:
        times.append(f"acknowledged {when(incident.acknowledged_at, tz)}")
    if incident.mitigated_at:
        times.append(f"mitigated {when(incident.mitigated_at, tz)}")
    if incident.resolved_at:
        times.append(f"resolved {when(incident.resolved_at, tz)}")
    notes = [" · ".join(times)]
    if incident.alert_id:
        notes.append(f"From alert {incident.alert_id}")
    runbook = link(incident.runbook, "Runbook")
    notes.append(runbook or f"No runbook: {escape(missing_runbook(None, incident.endpoint))}")
    blocks.append(Context(tuple(notes)))
    if state is IncidentState.RESOLVED and incident.root_cause:
        blocks.append(Text(cut(f"*Root cause:* {escape(incident.root_cause)}", 2900)))
    if buttons and state.is_open:
        blocks.append(Buttons(incident_buttons(incident)))
    elif buttons:  # resolved: what is left is the review
        blocks.append(
            Buttons(
                (
                    Button(
                        "Review",
                        "incident.review",
                        incident.id,
                        f"/aiops incident review {incident.id}",
                    ),
                )
            )
        )
    return Reply(
        text=cut(f"{incident_title(incident)} ({state.value}): {escape(incident.summary)}", 300),
        blocks=blocks,
        ephemeral=False,
    )


def incident_buttons(incident: Incident) -> tuple[Button, ...]:
    out: list[Button] = []
    ep = incident.endpoint
    if ep:
        out.append(
            Button(
                "Roll back",
                "incident.rollback",
                incident.id,
                f"/aiops incident rollback {incident.id}",
                style="danger",
                confirm=Confirm(
                    f"Roll back {ep}?",
                    f"Restores the last stable traffic split of {ep} and undeploys its canary,"
                    f" linked to {incident.id}. In production it runs at once.",
                    "Roll back",
                ),
            )
        )
        out.append(
            Button(
                "Pause canary",
                "incident.pause",
                incident.id,
                f"/aiops incident pause {incident.id}",
            )
        )
        out.append(
            Button(
                "Scale up",
                "incident.scale",
                incident.id,
                f"/aiops incident scale {incident.id}",
                confirm=Confirm(
                    f"Scale up {ep}?",
                    f"Requests one more replica for the version serving {ep} (a change,"
                    f" approved as configured), linked to {incident.id}.",
                    "Request",
                ),
            )
        )
    if incident.state is IncidentState.DECLARED:
        out.append(
            Button("Acknowledge", "incident.ack", incident.id, f"/aiops incident ack {incident.id}")
        )
    out.append(
        Button(
            "Resolve",
            "incident.resolve",
            incident.id,
            f'/aiops incident resolve {incident.id} cause="…"',
            style="primary",
        )
    )
    return tuple(out)
