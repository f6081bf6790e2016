"""`[incidents]`: where incidents get their threads and whether P1 / P2 page someone."""

from __future__ import annotations

from dataclasses import dataclass

from commands import config_schema
from commands.config import Config


@dataclass(frozen=True)
class IncidentSettings:
    channel: str  # the incidents' threads (or their announcements, with a channel each)
    channel_per_incident: bool
    pager: str  # "pagerduty" | "none"


def incident_settings(config: Config) -> IncidentSettings:
    """`[incidents]`, checked against the schema; the channel defaults to the ops channel."""
    table: config_schema.IncidentsTable = config_schema.validate_table(
        config_schema.IncidentsTable, config.raw.get("incidents"), ("incidents",), config.source
    )
    return IncidentSettings(
        channel=table.channel or config.channels.ops,
        channel_per_incident=table.channel_per_incident,
        pager=table.pager,
    )
