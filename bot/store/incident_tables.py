"""Respond tables: alerts (one row per alert, unique on its key), incidents, on-call
hand-off notes and the health watch's state per endpoint. Alert and incident rows move by compare-and-set on `rev`; an incident
declared from an alert is unique on that alert, so a double click declares once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from bot.store.tables import _ts


class AlertRow(SQLModel, table=True):
    """`ALERT-N` is `seq`. `key` (`<source>:<id at the source>`) is what makes the first
    notice of an alert, from any replica, the only one that inserts."""

    __tablename__ = "alert"
    __table_args__ = (Index("ix_alert_endpoint_received", "endpoint", "received_at"),)

    seq: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255, unique=True)
    source: str = Field(max_length=32)
    state: str = Field(max_length=16, index=True)
    policy: str = Field(sa_column=Column(Text, nullable=False))
    condition: str = Field(default="", sa_column=Column(Text, nullable=False))
    started_at: datetime | None = _ts(nullable=True)
    ended_at: datetime | None = _ts(nullable=True)
    endpoint: str | None = Field(default=None, max_length=128)
    environment: str | None = Field(default=None, max_length=32)
    summary: str = Field(default="", sa_column=Column(Text, nullable=False))
    observed: str = Field(default="", sa_column=Column(Text, nullable=False))
    url: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    documentation: str = Field(default="", sa_column=Column(Text, nullable=False))
    labels: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    received_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)
    closed_at: datetime | None = _ts(nullable=True)
    channel: str | None = Field(default=None, max_length=32)
    message_ts: str | None = Field(default=None, max_length=32)
    acknowledged_by: str | None = Field(default=None, max_length=32)
    acknowledged_at: datetime | None = _ts(nullable=True)
    incident_id: str | None = Field(default=None, max_length=32)
    paged_at: datetime | None = _ts(nullable=True)  # the bot triggered the pager for it
    rev: int = 0
    # the claim on posting its message (migration 0013): who, and until when it holds
    posting_by: str | None = Field(default=None, max_length=128)
    posting_until: datetime | None = _ts(nullable=True)


class IncidentRow(SQLModel, table=True):
    """`INC-N` is `seq`. `alert_id` is unique (NULLs apart): one incident per alert."""

    __tablename__ = "incident"
    __table_args__ = (
        Index("ix_incident_endpoint_state", "endpoint", "state"),
        Index("ix_incident_declared_at", "declared_at"),
    )

    seq: int | None = Field(default=None, primary_key=True)
    severity: str = Field(max_length=4)
    state: str = Field(max_length=16, index=True)
    summary: str = Field(sa_column=Column(Text, nullable=False))
    declared_by: str = Field(max_length=32)
    declared_at: datetime = _ts(nullable=False)
    endpoint: str | None = Field(default=None, max_length=128)
    environment: str | None = Field(default=None, max_length=32)
    commander: str | None = Field(default=None, max_length=32)
    on_call: str | None = Field(default=None, max_length=32)
    suggested_severity: str | None = Field(default=None, max_length=4)
    alert_id: str | None = Field(default=None, max_length=32, unique=True)
    detected_at: datetime | None = _ts(nullable=True)
    acknowledged_at: datetime | None = _ts(nullable=True)
    mitigated_at: datetime | None = _ts(nullable=True)
    resolved_at: datetime | None = _ts(nullable=True)
    root_cause: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    channel: str | None = Field(default=None, max_length=32)
    thread_ts: str | None = Field(default=None, max_length=32)
    runbook: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    paged_at: datetime | None = _ts(nullable=True)
    rev: int = 0


class HandoffRow(SQLModel, table=True):
    __tablename__ = "handoff"
    __table_args__ = (Index("ix_handoff_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    author: str = Field(max_length=32)
    at: datetime = _ts(nullable=False)
    text: str = Field(sa_column=Column(Text, nullable=False))
    environment: str | None = Field(default=None, max_length=32)


class HealthWatchRow(SQLModel, table=True):
    """The health watch's state of one endpoint between windows (migration 0011): the
    judge's JSON (`commands.incidents.health_watch.EndpointWatch.to_dict`), the end of the
    last window judged, and `rev`, which every write compares and bumps."""

    __tablename__ = "health_watch"

    endpoint: str = Field(primary_key=True, max_length=128)
    state: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    window_end: datetime | None = _ts(nullable=True)
    updated_at: datetime = _ts(nullable=False)
    rev: int = 0
