"""Where an incident and an alert are told: the incident's card (its thread's head,
updated as it moves), the lines in its thread, and the alert's one message."""

from __future__ import annotations

from commands.incidents.cards import alert_message, incident_card
from commands.incidents.model import AlertRecord, Incident
from commands.messages import Post, Reply, Text
from commands.runtime import Runtime


def line(rt: Runtime, incident: Incident, text: str) -> None:
    """One line in the incident's thread (nothing when its card never arrived)."""
    if incident.channel and incident.thread_ts:
        rt.notifier.post(
            Post(
                incident.channel,
                Reply(text=text, blocks=[Text(text)], ephemeral=False),
                thread_ts=incident.thread_ts,
            )
        )


def refresh_card(rt: Runtime, incident: Incident) -> None:
    """Draw the incident's card again where it was posted (its buttons go once resolved)."""
    if incident.channel and incident.thread_ts:
        rt.notifier.post(
            Post(
                incident.channel,
                incident_card(incident, rt.config),
                update=True,
                ts=incident.thread_ts,
            )
        )


def refresh_alert(rt: Runtime, record: AlertRecord) -> None:
    """Draw the alert's message again (acknowledged, declared, resolved)."""
    if record.channel and record.message_ts:
        rt.notifier.post(
            Post(
                record.channel,
                alert_message(record, rt.config),
                update=True,
                ts=record.message_ts,
            )
        )
